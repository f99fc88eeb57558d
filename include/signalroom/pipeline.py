"""The one code path that runs a registered source's resource for a window.

Used by the Airflow load task, `python -m signalroom run` and the tests, so that what is
debugged locally is what runs in production. Imports dlt only when a load runs.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any, Mapping

from signalroom.base.schema_changes import schema_changes
from signalroom.base.summary import LoadSummary
from signalroom.base.window import Window, last_finished_day
from signalroom.destinations import DestinationConfig, data_dir
from signalroom.dltenv import prepare_dlt_env
from signalroom.healing import PoisonPackageError, heal, terminal_failure, where_it_is
from signalroom.logs import log_load_summary, progress_collector, tracked_files_changed
from signalroom.registry import get_spec, load_source_function, pipeline_name
from signalroom.state import cursor_summary

# the CLI, tools and tests take these from here, beside run_load
__all__ = ["Window", "last_finished_day", "prepare_dlt_env", "run_load", "build_source", "make_pipeline"]

log = logging.getLogger("signalroom.pipeline")


class PendingPackagesError(RuntimeError):
    """Load packages are pending in the working folder; dlt would finish them instead of
    loading new data. The message names what each package recorded (its stage, failed jobs)."""


def pending_cause(pipeline: Any) -> str:
    """What the pending packages recorded, in words: the stage each stopped at (extracted =
    the run stopped before normalize; normalized = before or during load; partially loaded =
    during load, some jobs wrote) and the first failed job's message, if dlt recorded one."""
    from dlt.common.storages import PackageStorage  # dlt: only when packages are pending

    parts = []
    for load_id in sorted(pipeline.list_normalized_load_packages()):
        info = pipeline.get_load_package_info(load_id)
        failed = info.jobs.get("failed_jobs") or []
        stage = "partially loaded" if PackageStorage.is_package_partially_loaded(info) else "normalized, not loaded"
        text = f"{load_id} {stage}"
        if failed:
            message = (getattr(failed[0], "failed_message", None) or "").strip().splitlines()
            text += f", {len(failed)} failed job(s)" + (f": {message[-1][:200]}" if message else "")
        parts.append(text)
    parts += [f"{lid} extracted, not normalized" for lid in sorted(pipeline.list_extracted_load_packages())]
    return "; ".join(parts) or "none listed"


def apply_dlt_config(source: str, resource: str) -> None:
    """The source's `dlt_config` as env defaults in its pipeline's own config section."""
    section = pipeline_name(source, resource).upper()
    for key, value in get_spec(source).dlt_config.items():
        os.environ.setdefault(f"{section}__{key.replace('.', '__').upper()}", str(value))


def make_pipeline(source: str, resource: str, destination: DestinationConfig) -> Any:
    prepare_dlt_env()
    apply_dlt_config(source, resource)
    import dlt  # heavy (~1 s): only when a load runs, never when a DAG file is parsed

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


def row_counts(trace: Any) -> dict[str, int]:
    """Rows per table as normalized; a file imported as it is (s3_exports' csv load files)
    counts 0 in dlt's normalize, so its rows come from the count given at extract."""
    normalized = trace.last_normalize_info
    counts = dict(normalized.row_counts) if normalized else {}
    extracted = trace.last_extract_info
    for metrics in extracted.metrics.values() if extracted else ():
        for step in metrics:
            for table, table_metrics in step["table_metrics"].items():
                if not counts.get(table) and table_metrics.items_count:
                    counts[table] = table_metrics.items_count
    return counts


SCHEMA_UPDATE_ATTEMPTS = 4


def _retrying_dataset_race(pipeline: Any, first: Any) -> Any:
    """`first()` (a run or a load), whose load step is repeated when another pipeline of the same
    dataset (a resource group running beside this one) updated the dataset's schema at the same
    moment.

    On a first load both create the shared dlt tables; Postgres rejects one with a catalog
    unique violation or a deadlock, which dlt raises as a schema-update error and documents as
    safe to retry (`dlt.pipeline.helpers.retry_schema_update`): the package is complete and
    pending, and loading it again applies only what is still missing.
    """
    from dlt.pipeline.helpers import retry_schema_update  # dlt: only when a load runs

    is_schema_race = retry_schema_update()
    try:
        return first()
    except Exception as exc:
        if not is_schema_race(exc):
            raise
        error: BaseException = exc
    for attempt in range(1, SCHEMA_UPDATE_ATTEMPTS):
        log.warning(
            "%s: dataset %r was being changed by another pipeline at the same moment (%s); "
            "loading the finished package again (%d/%d)",
            pipeline.pipeline_name, pipeline.dataset_name, type(error.__context__ or error).__name__,
            attempt, SCHEMA_UPDATE_ATTEMPTS - 1,
        )
        time.sleep(0.5 * attempt)
        try:
            return pipeline.load()
        except Exception as exc:
            if not is_schema_race(exc):
                raise
            error = exc
    raise error


def _known_tables(pipeline: Any) -> dict[str, list[str]]:
    """Tables and columns of the pipeline's schema before this run (as synced from the
    destination): what a schema update is measured against."""
    name = pipeline.default_schema_name
    if not name or name not in pipeline.schemas:
        return {}
    return {table: list(spec.get("columns") or {}) for table, spec in pipeline.schemas[name].tables.items()}


def _run(pipeline: Any, dlt_source: Any) -> tuple[Any, Any]:
    """This try's own extract + normalize + load; a terminal job failure is a poison package."""
    counts: list[Any] = [{}]

    def run() -> Any:
        try:
            return pipeline.run(dlt_source)
        finally:  # a repeated load step has no extract/normalize info of its own: keep this run's
            counts[0] = row_counts(pipeline.last_trace)

    try:
        load_info = _retrying_dataset_race(pipeline, run)
    except Exception as exc:
        failure = terminal_failure(exc)
        if failure is None:
            raise
        raise PoisonPackageError(pipeline.pipeline_name, getattr(failure, "load_id", "?"), failure,
                                 where_it_is()) from exc
    return load_info, counts[0]


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

    with destination.writing():  # DuckDB: one writer per file (Postgres: no lock)
        # what an earlier try left in this working folder: finished or dropped before extracting
        healed = heal(pipeline, lambda: _retrying_dataset_race(pipeline, pipeline.load))
        # nothing local is newer than the destination now: start from the destination's state,
        # as a worker with an empty folder does, whatever this folder held (another warehouse,
        # a restored one): dlt would keep a local state of a higher version
        pipeline.drop()
        try:
            pipeline.sync_destination()
        except Exception as exc:  # a destination without state yet is fine; a broken one fails below
            log.debug("sync_destination for %s: %s", name, exc)
        state_before = copy.deepcopy(resource_state(pipeline, dlt_source.name, resource))
        before = cursor_summary(state_before)
        known_tables = _known_tables(pipeline)

        load_info, counts = _run(pipeline, dlt_source)

    trace = pipeline.last_trace
    rows = {table: count for table, count in counts.items() if not table.startswith("_dlt")}
    timings = {
        step.step: round((step.finished_at - step.started_at).total_seconds(), 3)
        for step in trace.steps
        if step.finished_at and step.started_at and step.step in ("extract", "normalize", "load")
    }
    state_after = resource_state(pipeline, dlt_source.name, resource)
    after = cursor_summary(state_after)
    summary = LoadSummary(
        source=source,
        resource=resource,
        pipeline=name,
        dataset=pipeline.dataset_name,
        destination=destination.describe(),
        window=window,
        load_ids=tuple(load_info.loads_ids),
        rows=rows,
        timings=timings,
        cursor_before=before,
        cursor_after=after,
        seconds=round(time.monotonic() - started, 3),
        # file-tracking resources (s3_exports): which files this run loaded
        files=tuple(tracked_files_changed(state_before, state_after)),
        schema_changes=schema_changes(
            known_tables,
            [package.schema_update for package in load_info.load_packages],
            state_before.get("header"),
            state_after.get("header"),
        ),
        healed=healed.to_dict(),
    )
    log_load_summary(log, summary)
    return summary.to_dict()  # JSON: the load task's XCom

