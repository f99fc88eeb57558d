"""Volume anomaly check: the rows of each business day a run touched vs that resource's own
trailing history, read from the destination by its date column.

A health check proves a load is internally consistent; it cannot tell that yesterday's
numbers are a third of normal or that an export never arrived. This compares, per touched
day D, the rows the table holds for D with the median of the `history_days` days before D
(days that have rows; a day without rows is "missing"):

- ratio below `fail_below` (or above `fail_above`) -> the check fails;
- below `warn_below` (or above `warn_above`) -> a WARNING line, the run stays green;
- fewer than `min_history_days` days of history -> the comparison is only logged;
- a finished day inside the history window with no rows while the history is otherwise
  dense (a day that normally has rows) is named as missing: for s3_exports, a missing export
  day of that prefix.

Two small queries, both index-backed (`indexes.py`: `_dlt_load_id` and the date column): the
days this run's load ids wrote, then counts per day over [first touched - history, last
touched]. Cost follows the run's days, not the table's history (bench/bench_p6_checks.py).

Pure: SQL text and arithmetic; the operator in orchestration/check_operators.py runs it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable, Iterable, Mapping, Sequence

from signalroom.checks.indexes import LOAD_ID_COLUMN
from signalroom.checks.scope import in_list
from signalroom.registry import VolumeBands

OK, WARN, FAIL, LOG_ONLY = "ok", "warn", "fail", "log only"


Quote = Callable[[str], str]  # the dialect's identifier quoting (names validated before)


def touched_days_sql(quote: Quote, dataset: str, table: str, date_column: str, load_ids: Sequence[str]) -> str:
    """The business days this run's load ids wrote (index on `_dlt_load_id`)."""
    t = f"{quote(dataset)}.{quote(table)}"
    d = quote(date_column)
    return (
        f"SELECT DISTINCT {d} FROM {t} WHERE {quote(LOAD_ID_COLUMN)} IN ({in_list(tuple(load_ids))}) "
        f"AND {d} IS NOT NULL"
    )


def counts_sql(quote: Quote, dataset: str, table: str, date_column: str, first: date, last: date) -> str:
    """Rows per day over [first, last] (index on the date column: a range scan)."""
    t = f"{quote(dataset)}.{quote(table)}"
    d = quote(date_column)
    return (
        f"SELECT {d}, count(*) FROM {t} WHERE {d} >= DATE '{first.isoformat()}' "
        f"AND {d} <= DATE '{last.isoformat()}' GROUP BY {d} ORDER BY {d}"
    )


def history_range(
    touched: Iterable[date], bands: VolumeBands, last_finished: date | None = None
) -> tuple[date, date] | None:
    """The days `counts_sql` must cover: each touched day's history, up to the last finished day."""
    days = sorted(touched)
    if not days:
        return None
    end = max(days[-1], last_finished or days[-1])
    first = min(days[0] - timedelta(days=bands.history_days), end - timedelta(days=bands.history_days - 1))
    return first, end


@dataclass(frozen=True)
class DayVerdict:
    day: date
    rows: int
    median: float | None
    history: int  # days with rows among the `history_days` before `day`
    status: str

    def describe(self) -> str:
        if self.median is None or self.status == LOG_ONLY:
            return f"{self.day}: {self.rows} rows; history {self.history} day(s), too little to compare"
        return (
            f"{self.day}: {self.rows} rows vs median {self.median:g} of {self.history} day(s) "
            f"({self.rows / self.median:.0%}) -> {self.status}"
        )


@dataclass(frozen=True)
class VolumeResult:
    days: tuple[DayVerdict, ...]
    missing_days: tuple[date, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        statuses = {d.status for d in self.days}
        for status in (FAIL, WARN):
            if status in statuses:
                return status
        return OK

    def lines(self, missing_label: str = "day without rows") -> list[str]:
        lines = [d.describe() for d in self.days]
        lines += [f"missing: {day} ({missing_label}; the days around it have rows)" for day in self.missing_days]
        return lines


def _status(ratio: float, bands: VolumeBands) -> str:
    if ratio < bands.fail_below or (bands.fail_above is not None and ratio > bands.fail_above):
        return FAIL
    if ratio < bands.warn_below or (bands.warn_above is not None and ratio > bands.warn_above):
        return WARN
    return OK


def evaluate(
    counts: Mapping[date, int], touched: Iterable[date], bands: VolumeBands, last_finished: date | None = None
) -> VolumeResult:
    """Verdicts for the touched days from the counts per day (days absent = no rows)."""
    verdicts = []
    for day in sorted(set(touched)):
        history = [
            counts[d] for i in range(1, bands.history_days + 1) if (d := day - timedelta(days=i)) in counts
        ]
        rows = counts.get(day, 0)
        if len(history) < bands.min_history_days:
            verdicts.append(DayVerdict(day, rows, None, len(history), LOG_ONLY))
            continue
        median = float(statistics.median(history))
        status = _status(rows / median, bands) if median > 0 else OK
        verdicts.append(DayVerdict(day, rows, median, len(history), status))
    return VolumeResult(tuple(verdicts), tuple(missing_days(counts, touched, bands, last_finished)))


def missing_days(
    counts: Mapping[date, int], touched: Iterable[date], bands: VolumeBands, last_finished: date | None
) -> list[date]:
    """Finished days in the history window of the newest touched day (and up to the run's
    last finished day) without rows, when at least `min_history_days` of those days have rows
    (the resource normally has rows every day)."""
    days = sorted(set(touched))
    if not days:
        return []
    end = max(days[-1], last_finished or days[-1])
    window = [end - timedelta(days=i) for i in range(bands.history_days)]
    present = [d for d in window if counts.get(d, 0) > 0]
    if len(present) < max(bands.min_history_days, 1):
        return []
    first_seen = min(present)
    return sorted(d for d in window if d > first_seen and counts.get(d, 0) == 0)
