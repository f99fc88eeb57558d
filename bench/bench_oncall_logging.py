"""On-call logging cost: what readable task logs add to a load, and what alerts add to a parse.

1. Load: one dlt pipeline run of N synthetic rows into DuckDB, three ways, alternating,
   each in a fresh pipeline:
   - baseline: dlt as shipped (its stderr StreamHandler, no progress collector);
   - routed: dlt's records forwarded into `logging` (signalroom.logs.route_dlt_logs);
   - routed + progress: plus the LogCollector the load task uses (period 30 s, as deployed).
   Log output of every variant goes to /dev/null, so the figure is the logging machinery,
   not the terminal. Ratio = median variant / median baseline.
2. Parse: a fresh interpreter importing the factory's parse-time modules with and without
   `signalroom.orchestration.alerts` (it imports the Slack provider's notifier). Ratio of
   medians, plus the absolute increment.

    .venv/bin/python bench/bench_oncall_logging.py [rows] [rounds]
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "include")]
from tools import localenv  # noqa: E402


def _rows(n: int):
    for i in range(n):
        yield {"id": i, "day": f"2025-01-{i % 28 + 1:02d}", "label": f"affiliate {i % 40}", "payout": i * 0.37}


def one_load(variant: str, rows: int, work: Path) -> float:
    import dlt

    from signalroom.logs import ForwardToLogging, progress_collector, route_dlt_logs

    dlt_logger = logging.getLogger("dlt")
    if variant == "baseline":  # what dlt installs: a stream handler (here to /dev/null)
        dlt_logger.handlers = [logging.StreamHandler(open(os.devnull, "w"))]
    else:
        dlt_logger.handlers = [h for h in dlt_logger.handlers if isinstance(h, ForwardToLogging)]
        route_dlt_logs()
    name = f"bench_{variant}_{time.monotonic_ns()}"
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=dlt.destinations.duckdb(str(work / f"{name}.duckdb")),
        dataset_name="bench",
        pipelines_dir=str(work / "pipelines"),
        progress=progress_collector(30) if variant == "routed+progress" else None,
    )
    started = time.perf_counter()
    pipeline.run(dlt.resource(_rows(rows), name="rows", write_disposition="replace"))
    return time.perf_counter() - started


PARSE = """
import sys, time
t = time.perf_counter()
import signalroom.orchestration.params, signalroom.orchestration.schedules, signalroom.registry
if sys.argv[1] == "alerts":
    import signalroom.orchestration.alerts
print(time.perf_counter() - t)
"""


def one_parse(variant: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PARSE, variant], capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(rows: int = 100_000, rounds: int = 5) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-oncall-"))
    localenv.apply(tmp / "airflow", tmp / "dlt")
    os.environ["RUNTIME__LOG_LEVEL"] = "INFO"
    root = logging.getLogger()
    root.handlers = [logging.StreamHandler(open(os.devnull, "w"))]  # the task log's stand-in
    root.setLevel(logging.INFO)

    variants = ("baseline", "routed", "routed+progress")
    one_load("baseline", 1000, tmp)  # warm up imports and dlt's first-run setup
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant in variants:
            times[variant].append(one_load(variant, rows, tmp))
    base = statistics.median(times["baseline"])
    print(f"load of {rows} rows into DuckDB, median of {rounds} (alternating):")
    for variant in variants:
        med = statistics.median(times[variant])
        print(f"  {variant:16} {med:7.3f} s   ratio {med / base:5.3f}")

    parse: dict[str, list[float]] = {"base": [], "alerts": []}
    for _ in range(rounds):
        for variant in parse:
            parse[variant].append(one_parse(variant))
    p_base, p_alerts = (statistics.median(parse[v]) for v in ("base", "alerts"))
    print(f"parse-time imports (fresh interpreter), median of {rounds}:")
    print(f"  without alerts  {p_base:7.3f} s")
    print(f"  with alerts     {p_alerts:7.3f} s   ratio {p_alerts / p_base:5.3f}  (+{p_alerts - p_base:.3f} s)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
