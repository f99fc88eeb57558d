"""The one code path that runs a registered source's resource for a window.

Used by the Airflow load task, `python -m signalroom run` and the tests, so that what is
debugged locally is what runs in production. Imports dlt only when a load runs.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from signalroom.destinations import DestinationConfig, data_dir
from signalroom.logs import log_load_summary, progress_collector, route_dlt_logs, tracked_files_changed
from signalroom.registry import DEFAULT_TIMEZONE, get_spec, load_source_function, pipeline_name
from signalroom.state import cursor_summary

log = logging.getLogger("signalroom.pipeline")


class PendingPackagesError(RuntimeError):
    """A crashed run left load packages; dlt would finish them instead of loading new data."""


@dataclass(frozen=True)
class Window:
    """The ET business days a run loads.

    `start=None` means "from the resource's cursor, minus the source's look-back" (scheduled
    runs). `backfill=True` loads exactly [start, end] and leaves every cursor untouched.
    """

    end: date
    start: date | None = None
    backfill: bool = False

    def __post_init__(self) -> None:
        if self.start is not None and self.start > self.end:
            raise ValueError(f"window start {self.start} is after its end {self.end}")
        if self.backfill and self.start is None:
            raise ValueError("a backfill window needs a start date")

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat(),
            "backfill": self.backfill,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        start = data.get("start")
        return cls(
            end=date.fromisoformat(data["end"]),
            start=date.fromisoformat(start) if start else None,
            backfill=bool(data.get("backfill", False)),
        )

    def describe(self) -> str:
        kind = "backfill" if self.backfill else "scheduled"
        start = self.start.isoformat() if self.start else "cursor - look-back"
        return f"{kind} window {start} .. {self.end.isoformat()} (ET days, inclusive)"


def last_finished_day(now: datetime | None = None, tz: str = DEFAULT_TIMEZONE) -> date:
    """The newest ET day that has ended at `now` (an aware datetime; default: the clock)."""
    now = now or datetime.now(ZoneInfo("UTC"))
    return now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


def prepare_dlt_env() -> None:
    """Environment dlt needs under Airflow; set before dlt is imported."""
    # dlt's Airflow secrets provider makes ~300 Variable lookups per pipeline: credentials
    # are passed explicitly instead.
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "INFO")
    os.environ.setdefault("DLT_DATA_DIR", str(data_dir()))
    # Load files are local and short-lived; gzip (level 9) of them took 28 s per 48 MB of
    # export CSV, most of an s3_exports run (bench/bench_p2_s3_load.py).
    os.environ.setdefault("DATA_WRITER__DISABLE_COMPRESSION", "true")
    # Arrow rows (s3_exports) get `_dlt_load_id` as JSON rows do, so checks can join _dlt_loads.
    os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
    route_dlt_logs()  # dlt's stderr lines would be ERROR in Airflow 3 task logs (dlt#4462)


def apply_dlt_config(source: str, resource: str) -> None:
    """The source's `dlt_config` as env defaults in its pipeline's own config section."""
    section = pipeline_name(source, resource).upper()
    for key, value in get_spec(source).dlt_config.items():
        os.environ.setdefault(f"{section}__{key.replace('.', '__').upper()}", str(value))


def make_pipeline(source: str, resource: str, destination: DestinationConfig) -> Any:
    prepare_dlt_env()
    apply_dlt_config(source, resource)
    import dlt

    return dlt.pipeline(
        pipeline_name=pipeline_name(source, resource),
        destination=destination.to_dlt(),
        dataset_name=get_spec(source).dataset_name,
        pipelines_dir=str(data_dir() / "pipelines"),
        progress=progress_collector(),  # INFO progress every SIGNALROOM_PROGRESS_SECONDS
    )


def build_source(
    source: str, resource: str, window: Window, source_kwargs: Mapping[str, Any] | None = None
) -> Any:
    """Call the registered source function for a window and keep only `resource`."""
    spec = get_spec(source)
    spec.resource(resource)  # unknown resource -> clear error before anything runs
    prepare_dlt_env()
    kwargs = {
        "lookback_days": spec.lookback_days,
        **spec.source_kwargs,
        **(source_kwargs or {}),
    }
    dlt_source = load_source_function(source)(
        start_date=window.start, end_date=window.end, backfill=window.backfill, **kwargs
    )
    return dlt_source.with_resources(resource)


def resource_state(pipeline: Any, source_name: str, resource: str) -> dict[str, Any]:
    state = pipeline.state.get("sources", {}).get(source_name, {})
    return dict(state.get("resources", {}).get(resource, {}))


SCHEMA_UPDATE_ATTEMPTS = 4


def _run_retrying_dataset_race(pipeline: Any, dlt_source: Any) -> tuple[Any, Any]:
    """`pipeline.run`, whose load step is repeated when another pipeline of the same dataset
    (a resource group running beside this one) updated the dataset's schema at the same moment.

    On a first load both create the shared dlt tables; Postgres rejects one with a catalog
    unique violation or a deadlock, which dlt raises as a schema-update error and documents as
    safe to retry (`dlt.pipeline.helpers.retry_schema_update`): the package is complete and
    pending, and loading it again applies only what is still missing.
    """
    from dlt.pipeline.helpers import retry_schema_update

    is_schema_race = retry_schema_update()
    try:
        return pipeline.run(dlt_source), pipeline.last_trace.last_normalize_info
    except Exception as exc:
        if not is_schema_race(exc):
            raise
        error: BaseException = exc
    normalize_info = pipeline.last_trace.last_normalize_info
    for attempt in range(1, SCHEMA_UPDATE_ATTEMPTS):
        log.warning(
            "%s: dataset %r was being changed by another pipeline at the same moment (%s); "
            "loading the finished package again (%d/%d)",
            pipeline.pipeline_name, pipeline.dataset_name, type(error.__context__ or error).__name__,
            attempt, SCHEMA_UPDATE_ATTEMPTS - 1,
        )
        time.sleep(0.5 * attempt)
        try:
            return pipeline.load(), normalize_info
        except Exception as exc:
            if not is_schema_race(exc):
                raise
            error = exc
    raise error


def run_load(
    source: str,
    resource: str,
    window: Window,
    destination: DestinationConfig,
    *,
    source_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Load one resource for `window` into `destination`; return a JSON-safe summary."""
    started = time.monotonic()
    dlt_source = build_source(source, resource, window, source_kwargs)
    pipeline = make_pipeline(source, resource, destination)
    name = pipeline.pipeline_name
    log.info("load %s: %s into %s", name, window.describe(), destination.describe())

    if pipeline.has_pending_data:
        raise PendingPackagesError(
            f"pipeline {name!r} has pending load packages from a crashed run; dlt would finish "
            "loading pending packages instead of extracting new data. Run the maintenance DAG "
            f"'signalroom_maintenance' (action=drop, pipeline={name}), then rerun."
        )
    try:
        pipeline.sync_destination()
    except Exception as exc:  # a destination without state yet is fine; a broken one fails below
        log.debug("sync_destination for %s: %s", name, exc)
    state_before = copy.deepcopy(resource_state(pipeline, dlt_source.name, resource))
    before = cursor_summary(state_before)

    load_info, normalize_info = _run_retrying_dataset_race(pipeline, dlt_source)

    trace = pipeline.last_trace
    rows = {
        table: count
        for table, count in (normalize_info.row_counts if normalize_info else {}).items()
        if not table.startswith("_dlt")
    }
    timings = {
        step.step: round((step.finished_at - step.started_at).total_seconds(), 3)
        for step in trace.steps
        if step.finished_at and step.started_at and step.step in ("extract", "normalize", "load")
    }
    state_after = resource_state(pipeline, dlt_source.name, resource)
    after = cursor_summary(state_after)
    summary = {
        "source": source,
        "resource": resource,
        "pipeline": name,
        "dataset": pipeline.dataset_name,
        "destination": destination.describe(),
        "window": window.to_dict(),
        "load_ids": list(load_info.loads_ids),
        "rows": rows,
        "timings": timings,
        "cursor_before": before,
        "cursor_after": after,
        "seconds": round(time.monotonic() - started, 3),
    }
    files = tracked_files_changed(state_before, state_after)
    if files:  # file-tracking resources (s3_exports): which files this run loaded
        summary["files"] = files
    log_load_summary(log, summary)
    return summary

