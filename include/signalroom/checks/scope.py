"""What one run's checks look at, taken from the load tasks' summaries (their XCom).

Everything here ends up inside SQL, so every value is validated before it is rendered as a
literal: load ids must look like dlt's (`<epoch seconds>.<fraction>`), pipeline names like
identifiers, dates must parse. Scoping by the run's load ids is what keeps the checks' cost
proportional to the run, not to the table's history.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from signalroom.base.summary import LoadSummary
from signalroom.checks.identifiers import validate_identifier

# dlt's load id is str(time.time()) at extract: "1795884136.6060138".
_LOAD_ID = re.compile(r"\A[0-9]{1,12}(\.[0-9]{1,12})?\Z")
RECENT_DAYS = 7  # orphan scan and failed-load look-back
MAX_OFFENDING_ROWS = 20


class InvalidLoadSummary(ValueError):
    """A load task's XCom that the checks cannot scope themselves to."""


def _load_ids(summary: Mapping[str, Any], origin: str) -> tuple[str, ...]:
    ids = summary.get("load_ids")  # checked on the raw XCom: a bad type must not be coerced
    if not isinstance(ids, (list, tuple)):
        raise InvalidLoadSummary(f"{origin}: 'load_ids' is {ids!r}, expected a list of dlt load ids")
    for load_id in ids:
        if not isinstance(load_id, str) or not _LOAD_ID.match(load_id):
            raise InvalidLoadSummary(
                f"{origin}: load id {load_id!r} is not a dlt load id (digits, one '.', digits)"
            )
    return tuple(sorted(set(ids)))


def literal(value: str) -> str:
    """A SQL string literal for an already validated value."""
    return "'" + value.replace("'", "''") + "'"


def in_list(values: tuple[str, ...]) -> str:
    """Contents of `IN (...)`; `NULL` for no values, which matches nothing in either dialect."""
    return ", ".join(literal(v) for v in values) if values else "NULL"


def horizon_load_id(load_ids: tuple[str, ...], now: float | None = None) -> str:
    """The smallest load id written in the `RECENT_DAYS` before this run's first load.

    Load ids are epoch seconds with 10 integer digits (2001-2286), so comparing them as text
    orders them in time, and the `_dlt_load_id` index serves the range.
    """
    start = min(float(i) for i in load_ids) if load_ids else (now if now is not None else time.time())
    return str(int(start - RECENT_DAYS * 86400))


@dataclass(frozen=True)
class ResourceRun:
    """One resource's load in this run, as its load task reported it."""

    pipeline: str
    load_ids: tuple[str, ...]
    window_end: date
    rows: int  # rows this run wrote to the resource's table (0: the source had none)
    cursor_moved: bool  # the incremental cursor changed, so dlt must have stored new state

    @classmethod
    def from_summary(cls, summary: Any, table: str, origin: str) -> ResourceRun:
        if not isinstance(summary, Mapping):
            raise InvalidLoadSummary(
                f"{origin} returned {type(summary).__name__}, not a load summary: the checks "
                "need the load task's return value (pipeline.run_load's summary dict)"
            )
        load_ids = _load_ids(summary, origin)
        try:
            typed = LoadSummary.from_dict(summary)
            pipeline = validate_identifier(typed.pipeline, f"{origin}: pipeline name")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidLoadSummary(f"{origin}: load summary without a usable window/pipeline: {exc}") from None
        return cls(
            pipeline=pipeline,
            load_ids=load_ids,
            window_end=typed.window.end,
            rows=int(typed.rows.get(table, 0)),
            cursor_moved=typed.cursor_moved,
        )
