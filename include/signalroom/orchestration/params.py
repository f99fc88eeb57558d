"""Trigger-form Params and the run window they resolve to.

`dag_params` builds the form at parse time (plain Airflow Params); `resolve_run` runs in the
DAG's first task and turns the run (its type, data interval and Params) into a `Window` plus
the selected resources, or fails with a message naming the field and the fix.

Where validation happens is deliberate: Airflow checks Param JSON schemas when a run is
*created*, and its messages ("'x' is not a 'date'") neither name the fix nor reach the run's
log. So the schemas below only describe what the form renders: date pickers (`format: date`:
the one rule left to Airflow, which refuses a non-date string when a run is triggered through
REST or the CLI, naming the param), a multi-select fed by `examples` rather than a strict
`enum`, a checkbox. Every rule about the values (dates included, for runs created without
Airflow's check) is checked here, in the first task, before anything is extracted.

The form's section is "Date range (optional)", not "Backfill": Airflow's trigger dialog has
its own "Backfill" option (one run per interval), which is a different thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from airflow.sdk import Param

from signalroom.base.plan import RunPlan
from signalroom.base.window import Window
from signalroom.registry import SourceSpec

PARAM_NAMES = ("start_date", "end_date", "resources", "dry_run")
FORM_SECTION = "Date range (optional)"  # not "Backfill": Airflow's dialog has its own Backfill option
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

# Airflow run types (DagRunType values) as they reach the task context
SCHEDULED, BACKFILL, MANUAL = "scheduled", "backfill", "manual"


class InvalidRunParams(ValueError):
    """Trigger-form input that cannot be loaded; the message names the field and the fix."""


def dag_params(spec: SourceSpec) -> dict[str, Param]:
    resources = list(spec.resource_names)
    return {
        "start_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Start date (ET day)",
            description="First America/New_York day to load, YYYY-MM-DD. Leave empty for a "
            "normal run: new data since the last load plus the look-back "
            f"({spec.lookback_days} days).",
            section=FORM_SECTION,
        ),
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="End date (ET day, inclusive)",
            description="Last America/New_York day to load, YYYY-MM-DD; a finished day (before "
            f"today in ET). Required with start_date; at most {spec.max_backfill_days} days "
            "after it. A date-range run loads exactly this range and leaves the scheduled cursor alone.",
            section=FORM_SECTION,
        ),
        "resources": Param(
            resources,
            type="array",
            examples=resources,
            title="Resources",
            description="Which resources (task groups) to load; the others are skipped. "
            f"Choices: {', '.join(resources)}.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Validate the form and log the window each resource would load; "
            "extract and load nothing.",
        ),
    }


def form_values(spec: SourceSpec, conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """The form's defaults overlaid with a run's conf (Airflow's `params` for that run)."""
    return {**{name: param.value for name, param in dag_params(spec).items()}, **(conf or {})}


@dataclass(frozen=True)
class RunContext:
    """What `resolve_run` needs to know of an Airflow run (plain values: easy to test)."""

    run_type: str
    run_after: datetime
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    conf: Mapping[str, Any] | None = None
    now: datetime | None = None  # when the plan runs (a cleared run keeps its old run_after)

    @property
    def clock(self) -> datetime:
        return self.now or self.run_after

    @property
    def has_interval(self) -> bool:
        start, end = self.data_interval_start, self.data_interval_end
        return start is not None and end is not None and end > start


def et_day(moment: datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date()


def _parse_day(field: str, value: Any) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip() if isinstance(value, str) else None
    if text is not None and _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise InvalidRunParams(
        f"{field}={value!r} is not a date: use YYYY-MM-DD (an America/New_York calendar day), "
        f"e.g. {field}=2025-01-31, or leave it empty for a normal run"
    )


def _parse_resources(spec: SourceSpec, value: Any) -> list[str]:
    known = list(spec.resource_names)
    if value is None:
        return known
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidRunParams(
            f"resources={value!r} is not a list of resource names: pass e.g. "
            f'["{known[0]}"] (choices: {known})'
        )
    if not value:
        raise InvalidRunParams(
            f"resources is empty: select at least one of {known} (all are selected by default)"
        )
    unknown = [r for r in value if r not in known]
    if unknown:
        raise InvalidRunParams(
            f"resources={unknown} not known for source {spec.name!r}: choose from {known}"
        )
    return [r for r in known if r in value]  # registry order, duplicates dropped


def _parse_dry_run(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidRunParams(f"dry_run={value!r} is not a boolean: use true or false")


def _check_unknown_keys(conf: Mapping[str, Any] | None) -> None:
    unknown = sorted(set(conf or {}) - set(PARAM_NAMES))
    if unknown:
        raise InvalidRunParams(
            f"unknown parameter(s) {unknown} in the run configuration: the known ones are "
            f"{list(PARAM_NAMES)} (a misspelt start_date would otherwise run a normal load)"
        )


def _backfill_window(spec: SourceSpec, start: date | None, end: date | None, today: date) -> Window:
    if not (start and end):
        missing, given = ("end_date", "start_date") if start else ("start_date", "end_date")
        raise InvalidRunParams(
            f"{missing} is empty but {given} is set: a backfill needs both start_date and "
            "end_date (clear both for a normal run)"
        )
    if end < start:
        raise InvalidRunParams(
            f"end_date={end} is before start_date={start}: swap them (end_date must be on or "
            "after start_date)"
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
            f"{spec.max_backfill_days} for {spec.name!r}: split it into backfills of at most "
            f"{spec.max_backfill_days} days"
        )
    return Window(start=start, end=end, backfill=True)


def resolve_run(spec: SourceSpec, params: Mapping[str, Any], run: RunContext) -> dict[str, Any]:
    """Params + run -> plan dict (`window`, `resources`, `dry_run`, `run_type`) or InvalidRunParams.

    - scheduled run: the last ET day finished at the interval's end, from the cursor minus
      the look-back (`start=None`); a scheduled run of an interval older than the look-back
      (a cleared old run, or catch-up) loads exactly its interval, as the cursor path would
      find nothing to re-read there;
    - Airflow backfill run (`airflow backfill create`): exactly its own data interval;
    - manual run with start_date/end_date: exactly that range;
    - manual run without dates: like a scheduled run ending yesterday (ET) at trigger time.

    Returns the plan as JSON (`RunPlan.to_dict()`): it crosses XCom.
    """
    _check_unknown_keys(run.conf)
    resources = _parse_resources(spec, params.get("resources"))
    dry_run = _parse_dry_run(params.get("dry_run"))
    start = _parse_day("start_date", params.get("start_date"))
    end = _parse_day("end_date", params.get("end_date"))
    today = et_day(run.clock, spec.timezone)
    run_type = str(getattr(run.run_type, "value", run.run_type))

    if run_type == BACKFILL and run.has_interval:
        if start or end:
            raise InvalidRunParams(
                "start_date/end_date are set in the conf of an Airflow backfill run: each backfill "
                "run loads its own data interval. Drop them from --dag-run-conf, or trigger one "
                "manual run with start_date and end_date instead"
            )
        first = et_day(run.data_interval_start, spec.timezone)
        last = et_day(run.data_interval_end, spec.timezone) - timedelta(days=1)
        window = Window(start=first, end=max(first, last), backfill=True)
    elif start or end:
        window = _backfill_window(spec, start, end, today)
    elif run_type == SCHEDULED and run.has_interval:
        first = et_day(run.data_interval_start, spec.timezone)
        last = et_day(run.data_interval_end, spec.timezone) - timedelta(days=1)
        if last < today - timedelta(days=max(spec.lookback_days, 1)):
            window = Window(start=first, end=max(first, last), backfill=True)
        else:
            window = Window(end=last)
    else:  # manual (or asset-triggered) run without dates, or no usable interval
        window = Window(end=today - timedelta(days=1))
    return RunPlan(window=window, resources=tuple(resources), dry_run=dry_run, run_type=run_type).to_dict()


def describe_plan(source: str, plan: Mapping[str, Any], run: RunContext) -> str:
    """One log line saying exactly what this run will load (and why)."""
    typed = RunPlan.from_dict(plan)
    window = typed.window
    interval = (
        f"{run.data_interval_start.isoformat()} .. {run.data_interval_end.isoformat()}"
        if run.has_interval
        else "none"
    )
    past = typed.run_type == SCHEDULED and window.backfill
    return (
        f"{typed.run_type} run of {source}: {window.describe()}"
        + (" (an interval older than the look-back: exactly its days, cursor untouched)" if past else "")
        + f"; resources "
        f"{', '.join(typed.resources)}; data interval {interval}"
        + ("; DRY RUN: nothing is extracted or loaded" if typed.dry_run else "")
    )
