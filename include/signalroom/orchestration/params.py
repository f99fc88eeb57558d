"""Trigger-form Params and the run window they resolve to.

`dag_params` builds the form at parse time (plain Airflow Params); `resolve_run` runs in the
DAG's first task and turns Params or the data interval into a `Window` plus the selected
resources, failing with a message that names the field and the fix before any extract.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from airflow.sdk import Param

from signalroom.registry import SourceSpec


class InvalidRunParams(ValueError):
    """Trigger-form input that cannot be loaded."""


def dag_params(spec: SourceSpec) -> dict[str, Param]:
    return {
        "start_date": Param(
            None,
            type=["null", "string"],
            title="Backfill start date (ET)",
            description="First America/New_York day to load, YYYY-MM-DD. Leave empty for a "
            "normal run (new data since the last load plus the look-back).",
        ),
        "end_date": Param(
            None,
            type=["null", "string"],
            title="Backfill end date (ET, inclusive)",
            description="Last America/New_York day to load, YYYY-MM-DD, not in the future. "
            "Required with start_date.",
        ),
        "resources": Param(
            list(spec.resource_names),
            type="array",
            items={"type": "string", "enum": list(spec.resource_names)},
            title="Resources",
            description="Which resources (task groups) to load; the others are skipped.",
        ),
    }


def _parse_day(field: str, value: Any) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidRunParams(
            f"{field}={value!r} is not a date: use YYYY-MM-DD (an America/New_York day), "
            f"e.g. {field}=2025-01-31"
        ) from None


def et_day(moment: datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date()


def resolve_run(
    spec: SourceSpec,
    params: Mapping[str, Any],
    *,
    data_interval: tuple[datetime | None, datetime | None],
    run_after: datetime,
    is_backfill_run: bool = False,
) -> dict[str, Any]:
    """Params + interval -> {"window": Window dict, "resources": [...]} or InvalidRunParams."""
    from signalroom.pipeline import Window

    resources = params.get("resources") or list(spec.resource_names)
    if isinstance(resources, str):
        resources = [r.strip() for r in resources.split(",") if r.strip()]
    unknown = [r for r in resources if r not in spec.resource_names]
    if unknown:
        raise InvalidRunParams(
            f"resources={unknown} not known for source {spec.name!r}: choose from "
            f"{list(spec.resource_names)}"
        )

    today = et_day(run_after, spec.timezone)
    start = _parse_day("start_date", params.get("start_date"))
    end = _parse_day("end_date", params.get("end_date"))
    if start or end:
        if not (start and end):
            missing = "end_date" if start else "start_date"
            raise InvalidRunParams(f"{missing} is empty: a backfill needs both start_date and end_date")
        if end < start:
            raise InvalidRunParams(
                f"end_date={end} is before start_date={start}: swap them or fix the range"
            )
        if end >= today:
            raise InvalidRunParams(
                f"end_date={end} is not a finished ET day (today in {spec.timezone} is {today}): "
                f"use {today - timedelta(days=1)} or earlier"
            )
        days = (end - start).days + 1
        if days > spec.max_backfill_days:
            raise InvalidRunParams(
                f"start_date..end_date spans {days} days, over the maximum of "
                f"{spec.max_backfill_days} for {spec.name!r}: split it into smaller backfills"
            )
        window = Window(start=start, end=end, backfill=True)
    else:
        interval_start, interval_end = data_interval
        if interval_end is not None and interval_start is not None and interval_end > interval_start:
            end = et_day(interval_end, spec.timezone) - timedelta(days=1)
            start = et_day(interval_start, spec.timezone) if is_backfill_run else None
            window = Window(start=start, end=end, backfill=is_backfill_run)
        else:  # manual run without dates: the last finished ET day, from the cursor
            window = Window(end=today - timedelta(days=1))
    return {"window": window.to_dict(), "resources": list(resources)}
