"""A dlt tracking module (see sitecustomize.py here): at each step boundary of a pipeline, waits
while `$SIGNALROOM_CRASH_DIR/hold.<pipeline>.<start|end>-<step>` exists, after writing
`reached.<pipeline>.<start|end>-<step>` (with its pid) so the test knows where the load stands.

The test kills the worker while it waits, then removes the hold file so the retry goes on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _barrier(when: str, step: str, pipeline) -> None:
    folder = Path(os.environ["SIGNALROOM_CRASH_DIR"])
    point = f"{pipeline.pipeline_name}.{when}-{step}"
    hold = folder / f"hold.{point}"
    if not hold.exists():
        return
    (folder / f"reached.{point}").write_text(str(os.getpid()))
    while hold.exists():
        time.sleep(0.05)


def on_start_trace(trace, step, pipeline) -> None:
    pass


def on_start_trace_step(trace, step, pipeline) -> None:
    _barrier("start", step, pipeline)


def on_end_trace_step(trace, step, pipeline, step_info, send_state) -> None:
    _barrier("end", step, pipeline)


def on_end_trace(trace, pipeline, send_state) -> None:
    pass
