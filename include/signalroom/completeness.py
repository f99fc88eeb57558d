"""Completeness: rows per resource per ET business day, and whether that day is settled.

For the last N finished ET days of each dated resource (registry `date_column`):

- `final`       rows present, the day is outside the source's look-back: scheduled runs no
                longer re-read it;
- `provisional` rows present, inside the look-back: the next scheduled runs re-read it and
                may restate it (the source's numbers can still change);
- `missing`     no rows for that day.

One query per resource, bounded by the N days asked (rows per day over a date range: the
date-column index the volume check uses). Shared by the plugin page, its JSON API and
`python -m signalroom completeness`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Iterable, Mapping

from signalroom.base.window import last_finished_day
from signalroom.destinations import DestinationConfig
from signalroom.dltenv import prepare_dlt_env
from signalroom.registry import REGISTRY, SourceSpec, get_spec, pipeline_name

FINAL, PROVISIONAL, MISSING = "final", "provisional", "missing"
DEFAULT_DAYS = 14
MAX_DAYS = 400


@dataclass(frozen=True)
class DayRow:
    day: str  # ISO ET day
    rows: int
    status: str


@dataclass
class ResourceCompleteness:
    source: str
    resource: str
    pipeline: str
    table: str
    lookback_days: int
    days: list[DayRow] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_statuses(
    counts: Mapping[date, int], last_finished: date, days: int, lookback_days: int
) -> list[DayRow]:
    """Newest day first; the last `lookback_days` finished days are provisional (pure)."""
    settled_before = last_finished - timedelta(days=lookback_days - 1)  # first provisional day
    out = []
    for i in range(days):
        day = last_finished - timedelta(days=i)
        rows = int(counts.get(day, 0))
        status = MISSING if rows == 0 else (PROVISIONAL if day >= settled_before else FINAL)
        out.append(DayRow(day.isoformat(), rows, status))
    return out


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days={days} is out of range: ask for 1 to {MAX_DAYS} days")
    return days


def read_completeness(
    sources: Iterable[str] | None,
    destination: DestinationConfig,
    days: int = DEFAULT_DAYS,
    last_finished: date | None = None,
) -> list[ResourceCompleteness]:
    """Every dated resource of the given sources (all when None), one query each."""
    check_days(days)
    specs: list[SourceSpec] = [get_spec(s) for s in sources] if sources else list(REGISTRY.values())
    prepare_dlt_env()
    # dlt (heavy): only when the view is read
    import dlt
    from dlt.dataset.utils import get_destination_clients

    dest = destination.to_dlt()
    results = []
    for spec in specs:
        end = last_finished or last_finished_day(tz=spec.timezone)
        first = end - timedelta(days=days - 1)
        members = [
            ResourceCompleteness(spec.name, r.name, pipeline_name(spec.name, r.name),
                                 f"{spec.dataset_name}.{r.table}", spec.lookback_days)
            for r in spec.resources if r.date_column
        ]
        if not members:
            continue
        results += members
        try:
            client = get_destination_clients(
                dlt.Schema(spec.name), destination=dest, destination_dataset_name=spec.dataset_name
            )[0]
            with client:
                sql = client.sql_client
                for item, resource in zip(members, [r for r in spec.resources if r.date_column], strict=True):
                    table = sql.make_qualified_table_name(resource.table)
                    column = sql.escape_column_name(resource.date_column)
                    try:
                        rows = sql.execute_sql(
                            f"SELECT {column}, count(*) FROM {table} WHERE {column} >= %s AND {column} <= %s "
                            f"GROUP BY {column}", first, end,
                        )
                    except Exception as exc:  # a table the source never created: every day missing
                        item.error = f"{item.table}: {str(exc).splitlines()[0][:200]}"
                        rows = []
                    counts = {_as_date(d): int(n) for d, n in rows or []}
                    item.days = day_statuses(counts, end, days, spec.lookback_days)
        except Exception as exc:  # connection, auth: named, never with the password
            for item in members:
                item.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                item.days = day_statuses({}, end, days, spec.lookback_days)
    return results


def format_completeness(results: list[ResourceCompleteness]) -> str:
    """A text table: one row per day, one column per resource (`rows status`)."""
    if not results:
        return "no dated resources"
    header = ["ET day"] + [r.pipeline for r in results]
    days = [d.day for d in results[0].days]
    cells = {(r.pipeline, d.day): f"{d.rows} {d.status}" for r in results for d in r.days}
    table = [header] + [[day] + [cells.get((r.pipeline, day), "-") for r in results] for day in days]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    notes = [f"{r.pipeline}: {r.error}" for r in results if r.error]
    legend = ("final = outside the look-back (settled); provisional = inside it (the next runs re-read and "
              "may restate it); missing = no rows")
    return "\n".join(lines + [legend] + notes)
