"""Pending load packages of a pipeline: list them, and drop them the way dlt does.

A crashed try leaves packages in the pipeline's working folder (`$DLT_DATA_DIR/pipelines/<name>`
of the worker it ran on). The next load on that worker heals them by itself
(`signalroom.healing`: finish what the destination lacks, drop what it has superseded or never
saw); what is left for a person is a poison package (the destination refuses it every time)
and packages healing will not decide about alone. Dropping uses dlt's own mechanism
(`Pipeline.abort_packages`, what `dlt pipeline <name> drop-pending-packages` runs in dlt 1.31):
unfinished jobs are recorded as failed, packages are removed, the local state rewinds to where
the oldest removed package started; then the state is synced from the destination.

Used by the maintenance DAG's operator and `python -m signalroom pending`; no Airflow import.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from signalroom.destinations import DestinationConfig
from signalroom.pipeline import make_pipeline
from signalroom.registry import find_pipeline
from signalroom.state import cursor_summary, text_table

log = logging.getLogger("signalroom.maintenance")

EXTRACTED, NORMALIZED, PARTIAL = "extracted", "normalized", "partially loaded"


@dataclass(frozen=True)
class PendingPackage:
    """One load package left in the working folder, as the on-call needs to judge it."""

    load_id: str
    stage: str  # extracted | normalized | partially loaded
    created_at: str  # from the load id (dlt load ids are Unix timestamps)
    age_seconds: int
    jobs: dict[str, int]  # job folder -> count (new_jobs, started_jobs, completed_jobs, failed_jobs)
    tables: list[str]

    @property
    def age(self) -> str:
        minutes, _ = divmod(self.age_seconds, 60)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        return f"{days}d {hours}h" if days else f"{hours}h {minutes}m"


@dataclass
class DropReport:
    """What a drop removed (or, in a dry run, would remove) and what it kept, and why."""

    pipeline: str
    dry_run: bool
    with_partial_loads: bool
    pending: list[PendingPackage]
    dropped: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # load id -> reason
    aborted_with_record: str | None = None  # the package dlt completes as "aborted"
    cursor_before: dict[str, Any] = field(default_factory=dict)
    cursor_after: dict[str, Any] = field(default_factory=dict)
    still_pending: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_pipeline(name: str, destination: DestinationConfig) -> Any:
    """The dlt pipeline behind a registered pipeline name, in the shared working folder."""
    spec, resource = find_pipeline(name)
    return make_pipeline(spec.name, resource.name, destination)


def _package(pipeline: Any, load_id: str, extracted: bool, now: float) -> PendingPackage:
    from dlt.common.storages import PackageStorage  # dlt: only when packages are inspected

    info = pipeline.get_load_package_info(load_id)
    jobs = {folder: len(items) for folder, items in info.jobs.items() if items}
    tables = sorted({job.job_file_info.table_name for items in info.jobs.values() for job in items})
    if extracted:
        stage = EXTRACTED
    elif PackageStorage.is_package_partially_loaded(info):
        stage = PARTIAL
    else:
        stage = NORMALIZED
    created = float(load_id)
    return PendingPackage(
        load_id=load_id,
        stage=stage,
        created_at=datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="seconds"),
        age_seconds=max(0, int(now - created)),
        jobs=jobs,
        tables=tables,
    )


def list_pending(pipeline: Any) -> list[PendingPackage]:
    """Normalized packages first (dlt loads them first), then extracted ones; oldest first."""
    now = time.time()
    normalized = sorted(pipeline.list_normalized_load_packages())
    extracted = sorted(pipeline.list_extracted_load_packages())
    return [_package(pipeline, lid, False, now) for lid in normalized] + [
        _package(pipeline, lid, True, now) for lid in extracted
    ]


def _resource_cursor(pipeline: Any, name: str) -> dict[str, Any]:
    _, resource = find_pipeline(name)
    for source_state in (pipeline.state.get("sources") or {}).values():
        res = (source_state.get("resources") or {}).get(resource.name)
        if res is not None:
            return cursor_summary(res)
    return {}


def _plan(pipeline: Any, pending: list[PendingPackage], with_partial_loads: bool) -> tuple[str | None, bool, dict]:
    """-> (abort-from load id, whether to abort at all, kept {load id: reason})."""
    partial = [p for p in pending if p.stage == PARTIAL]
    if not partial or with_partial_loads:
        return None, bool(pending), {}
    # keep the partially loaded package (always the oldest normalized one): dlt drops packages
    # from a load id onwards, so abort from the next normalized package, if there is one
    reason = (
        "partially loaded: some of its jobs already wrote to the destination; "
        "drop it with with_partial_loads=true"
    )
    kept = {p.load_id: reason for p in partial}
    newer = [p for p in pending if p.stage == NORMALIZED and p.load_id > partial[0].load_id]
    target = newer[0].load_id if newer else None
    for p in pending:
        if p.load_id in kept:
            continue
        if target is None or p.load_id < target:
            kept[p.load_id] = (
                "newer than a kept partially loaded package: dlt can only drop from a package "
                "onwards; drop with with_partial_loads=true"
            )
    return target, target is not None, kept


def drop_pending(
    name: str,
    destination: DestinationConfig,
    *,
    with_partial_loads: bool = False,
    dry_run: bool = True,
) -> DropReport:
    """Drop the pipeline's pending packages (dry run by default: then nothing changes)."""
    pipeline = open_pipeline(name, destination)
    pending = list_pending(pipeline)
    report = DropReport(
        pipeline=name,
        dry_run=dry_run,
        with_partial_loads=with_partial_loads,
        pending=pending,
        cursor_before=_resource_cursor(pipeline, name),
    )
    target, act, report.kept = _plan(pipeline, pending, with_partial_loads)
    if not act:
        report.still_pending = bool(report.kept)
        report.cursor_after = report.cursor_before
        return report
    plan = pipeline.abort_packages(load_id=target, dry_run=True)
    if plan is None:  # nothing dlt considers pending
        report.cursor_after = report.cursor_before
        return report
    head = plan["package_to_abort"]
    report.aborted_with_record = head["load_id"] if head else None
    report.dropped = sorted(
        ([head["load_id"]] if head else []) + plan["packages_to_delete"] + plan["extracted_packages_to_delete"]
    )
    if dry_run:
        report.cursor_after = report.cursor_before
        report.still_pending = bool(pending)
        return report

    log.info("dropping pending packages of %s: %s", name, ", ".join(report.dropped))
    pipeline.abort_packages(load_id=target)
    # dropping does not roll the destination back; take the state a fresh worker would restore
    pipeline.sync_destination()
    report.cursor_after = _resource_cursor(pipeline, name)
    report.still_pending = pipeline.has_pending_data
    return report


# ---------------------------------------------------------------------------------------------
# Reset one resource: drop its table(s) and its state with dlt's own drop, reload on the next run


@dataclass
class ResetReport:
    """What a reset dropped (or, in a dry run, would drop)."""

    pipeline: str
    dry_run: bool
    tables: list[str] = field(default_factory=list)  # the resource's tables (child tables too)
    state_paths: list[str] = field(default_factory=list)  # resource state dlt removes (cursor, files)
    cursor_before: dict[str, Any] = field(default_factory=dict)
    cursor_after: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reset_resource(name: str, destination: DestinationConfig, *, dry_run: bool = True) -> ResetReport:
    """Drop one pipeline's resource table(s) and its state with dlt's `pipeline_drop` (what
    `dlt pipeline <name> drop <resource>` runs): a load package that drops the tables in the
    destination and stores the state without the resource's part, so the next run loads the
    resource from scratch (its initial window, or every export file). The runbook's fix for a
    type mismatch. Dry run by default: then nothing changes."""
    from dlt.pipeline.helpers import pipeline_drop  # dlt: only when a reset runs

    _, resource = find_pipeline(name)
    pipeline = open_pipeline(name, destination)
    if pipeline.has_pending_data:
        raise RuntimeError(
            f"pipeline {name} has pending load packages: drop them first (maintenance DAG "
            f"action=drop, pipeline={name}), then reset"
        )
    pipeline.sync_destination()  # a fresh worker: schema and state as the destination holds them
    report = ResetReport(pipeline=name, dry_run=dry_run, cursor_before=_resource_cursor(pipeline, name))
    if not pipeline.default_schema_name:
        report.note = "nothing to reset: the pipeline never loaded into this destination"
        return report
    drop = pipeline_drop(pipeline, resources=[resource.name])
    report.tables = sorted(drop.info["tables"])
    report.state_paths = sorted(
        [*drop.info["state_paths"], *(f"resources.{r}" for r in drop.info["resource_states"])]
    )
    if drop.is_empty:
        report.note = f"nothing to reset: no table or state of resource {resource.name!r}"
        report.cursor_after = report.cursor_before
        return report
    if dry_run:
        report.cursor_after = report.cursor_before
        return report
    log.info("resetting %s: dropping tables %s and state %s", name, report.tables, report.state_paths)
    drop()
    report.cursor_after = _resource_cursor(pipeline, name)
    return report


def format_reset(report: ResetReport) -> str:
    verb = "would drop" if report.dry_run else "dropped"
    lines = [
        f"reset {report.pipeline}" + (" (dry run: nothing changed)" if report.dry_run else ""),
        f"  tables {verb}: {', '.join(report.tables) or 'none'}",
        f"  state {verb}: {', '.join(report.state_paths) or 'none'}",
        f"  cursor: {report.cursor_before or '-'} -> {report.cursor_after or '-'}",
    ]
    if report.note:
        lines.append(f"  {report.note}")
    if not report.dry_run and report.tables:
        lines.append("  the next run of the source's DAG loads the resource from scratch")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Text for the task log and the terminal

PACKAGE_HEADER = ["load id", "stage", "created (UTC)", "age", "jobs", "tables"]


def format_packages(packages: list[PendingPackage]) -> str:
    if not packages:
        return "no pending load packages"
    rows = [
        [
            p.load_id,
            p.stage,
            p.created_at,
            p.age,
            ", ".join(f"{k.removesuffix('_jobs')} {v}" for k, v in sorted(p.jobs.items())),
            ", ".join(p.tables),
        ]
        for p in packages
    ]
    return text_table(PACKAGE_HEADER, rows)


def format_report(report: DropReport) -> str:
    verb = "would drop" if report.dry_run else "dropped"
    lines = [
        f"pipeline {report.pipeline}: {len(report.pending)} pending package(s)"
        + (" (dry run: nothing changed)" if report.dry_run else ""),
        format_packages(report.pending),
        f"{verb}: {', '.join(report.dropped) or 'nothing'}",
    ]
    if report.aborted_with_record:
        lines.append(
            f"  {report.aborted_with_record} is completed as 'aborted' (its unfinished jobs recorded "
            "as failed); the others are deleted"
        )
    for load_id, reason in report.kept.items():
        lines.append(f"kept {load_id}: {reason}")
    if not report.dry_run:
        lines.append(f"cursor before: {report.cursor_before}")
        lines.append(f"cursor after (synced from the destination): {report.cursor_after}")
    if report.still_pending and not report.dry_run:
        lines.append("packages are still pending: the next load will refuse to start")
    return "\n".join(lines)
