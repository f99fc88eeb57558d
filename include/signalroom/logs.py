"""dlt's log lines into the host's logging at their real level (dlt-hub/dlt#4462).

dlt gives its logger ("dlt") its own stderr StreamHandler and `propagate = False`. Under
Airflow 3 a task's stderr is recorded line by line at level ERROR ("task.stderr"), so a
green load writes dozens of ERROR lines and a real error drowns in them. Airflow routes the
stdlib `logging` tree of a task process to the task log with each record's own level and
through its secret masker. So: put one forwarding handler first on dlt's logger. dlt reuses
the first handler it finds whenever it (re)initialises its logger, so the forwarding survives
dlt's re-initialisation; any stream handler dlt already attached is removed.

Also used by the CLI: there the records reach whatever `logging.basicConfig` set up.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from signalroom.base.schema_changes import describe as describe_schema_changes
from signalroom.base.summary import LoadSummary

DLT_LOGGER = "dlt"
# records keep their own name ("dlt"); they are handed to the handlers of this logger's tree
FORWARD_THROUGH = "signalroom.dlt"
PROGRESS_LOGGER = "signalroom.progress"
ENV_PROGRESS_SECONDS = "SIGNALROOM_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 30.0


class ForwardToLogging(logging.Handler):
    """Hands each dlt record to the `signalroom.dlt` logger, which propagates to the root."""

    def __init__(self, target: str = FORWARD_THROUGH) -> None:
        super().__init__()
        self.target = logging.getLogger(target)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.target.handle(record)
        except Exception:  # logging must never fail a load
            self.handleError(record)


def route_dlt_logs(logger_name: str = DLT_LOGGER) -> logging.Handler:
    """Idempotent: make `ForwardToLogging` the only handler of dlt's logger; return it."""
    dlt_logger = logging.getLogger(logger_name)
    forward = next((h for h in dlt_logger.handlers if isinstance(h, ForwardToLogging)), None)
    for handler in list(dlt_logger.handlers):
        if handler is not forward:
            dlt_logger.removeHandler(handler)  # dlt's stderr StreamHandler
    if forward is None:
        forward = ForwardToLogging()
        dlt_logger.addHandler(forward)
    return forward


def progress_seconds() -> float:
    """How often a long load logs its progress (SIGNALROOM_PROGRESS_SECONDS, default 30)."""
    raw = os.environ.get(ENV_PROGRESS_SECONDS, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_PROGRESS_SECONDS
    except ValueError:
        raise ValueError(
            f"{ENV_PROGRESS_SECONDS}={raw!r} is not a number of seconds: set e.g. {ENV_PROGRESS_SECONDS}=30"
        ) from None
    if value <= 0:
        raise ValueError(f"{ENV_PROGRESS_SECONDS}={raw!r} must be > 0 seconds")
    return value


def progress_collector(log_period: float | None = None):
    """dlt's `LogCollector` writing progress (items, files, memory) at INFO every N seconds."""
    from dlt.common.runtime.collector import LogCollector  # dlt: only when a load runs

    return LogCollector(
        log_period=log_period or progress_seconds(),
        logger=logging.getLogger(PROGRESS_LOGGER),
        log_level=logging.INFO,
        dump_system_stats=True,
    )


def _cursor_value(entry: Any) -> Any:
    if entry is None:
        return "none"
    if isinstance(entry, dict) and "last_value" in entry:
        return entry["last_value"]
    if isinstance(entry, dict) and "entries" in entry:
        return f"{entry['entries']} entries"
    return entry


def cursor_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """`incremental.date 2025-01-02 -> 2025-01-03; files 3 entries -> 4 entries` (readable diff)."""
    parts = []
    for key in sorted(set(before) | set(after)):
        old, new = _cursor_value(before.get(key)), _cursor_value(after.get(key))
        parts.append(f"{key} {old} -> {new}" if old != new else f"{key} {new} (unchanged)")
    return "; ".join(parts) or "none (resource keeps no state)"


def tracked_files_changed(before: dict[str, Any], after: dict[str, Any], key: str = "files") -> list[str]:
    """Files a file-tracking resource recorded as new or changed during a run (sorted)."""
    old, new = before.get(key) or {}, after.get(key) or {}
    if not isinstance(new, dict):
        return []
    return sorted(name for name, entry in new.items() if old.get(name) != entry)


def summary_lines(summary: LoadSummary | Mapping[str, Any]) -> list[str]:
    """The load summary as a few short lines (one fact each), in the order the on-call reads."""
    if not isinstance(summary, LoadSummary):
        summary = LoadSummary.from_dict(summary)
    name, rows, timings = summary.pipeline, summary.rows, summary.timings
    lines = [
        f"summary {name}: {summary.window.describe()} "
        f"into {summary.destination} dataset {summary.dataset}",
    ]
    files = summary.files
    if files:
        shown = ", ".join(str(f) for f in files[:5]) + (
            f" (+{len(files) - 5} more)" if len(files) > 5 else ""
        )
        lines.append(f"summary {name}: files {len(files)}: {shown}")
    lines += [
        f"summary {name}: rows "
        + (", ".join(f"{table}={count}" for table, count in sorted(rows.items())) or "none")
        + f" (total {summary.total_rows}); load ids {', '.join(summary.load_ids) or 'none'}",
        f"summary {name}: seconds extract {timings.get('extract', '-')}, normalize "
        f"{timings.get('normalize', '-')}, load {timings.get('load', '-')}, total {summary.seconds}",
        f"summary {name}: cursor {cursor_change(dict(summary.cursor_before), dict(summary.cursor_after))}",
    ]
    lines += [f"summary {name}: schema: {line}" for line in describe_schema_changes(summary.schema_changes)]
    healed = summary.healed
    if healed.get("finished") or healed.get("dropped"):  # what an earlier try left, and what became of it
        dropped = healed.get("dropped") or {}
        lines.append(
            f"summary {name}: healed: finished {', '.join(healed.get('finished') or []) or 'none'}; "
            f"dropped {', '.join(f'{lid} ({why})' for lid, why in dropped.items()) or 'none'}; "
            f"new {', '.join(summary.load_ids) or 'none'}"
        )
    return lines


def log_load_summary(logger: logging.Logger, summary: LoadSummary | Mapping[str, Any]) -> None:
    for line in summary_lines(summary):
        logger.info("%s", line)
