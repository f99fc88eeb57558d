"""What the generated tasks execute. dlt is imported through `signalroom.pipeline` only when
a load runs (inside the task), never when a DAG file is parsed."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from signalroom.base.naming import pipeline_name
from signalroom.base.plan import RunPlan
from signalroom.base.window import Window
from signalroom.healing import PoisonPackageError
from signalroom.loadlock import PipelineBusyError, pipeline_lock
from signalroom.orchestration import alerts
from signalroom.orchestration.assets import emit_table_events
from signalroom.orchestration.connections import (
    WarehouseConnectionMissing,
    source_kwargs,
    warehouse_destination,
)
from signalroom.orchestration.params import RunContext, describe_plan, form_values, resolve_run
from signalroom.pipeline import run_load
from signalroom.registry import get_spec

log = logging.getLogger("signalroom.tasks")


def plan_run(source: str) -> dict[str, Any]:
    """First task: resolve the run (type, data interval, Params) into the window it loads.

    Invalid Params fail here, with a message naming the field and the fix, before any
    load task starts; the resolved window is logged so every run says what it loads.
    Returns `RunPlan.to_dict()` (XCom is JSON).
    """
    context = get_current_context()
    dag_run = context["dag_run"]
    run = RunContext(
        run_type=dag_run.run_type,
        run_after=dag_run.run_after,
        data_interval_start=context.get("data_interval_start"),
        data_interval_end=context.get("data_interval_end"),
        conf=dag_run.conf,
        now=datetime.now(timezone.utc),
    )
    spec = get_spec(source)
    # the run's own conf over the form defaults: what context["params"] holds in a fresh task
    # process, without the Param objects an in-process run (dag.test) shares with earlier runs
    plan = resolve_run(spec, form_values(spec, dag_run.conf), run)
    log.info("run plan: %s", describe_plan(source, plan, run))
    # which bundle version's code this run executes (include/bundle_path.py)
    log.info("signalroom package: %s", Path(__file__).resolve().parents[1])
    return plan


def plan_intraday(source: str) -> dict[str, Any]:
    """First task of an intraday run: today's ET day (the day the run is due, not the worker's
    clock), every resource, loaded without moving the cursor (`Window.today_partial`)."""
    context = get_current_context()
    dag_run = context["dag_run"]
    spec = get_spec(source)
    due = dag_run.run_after or datetime.now(timezone.utc)
    day = due.astimezone(ZoneInfo(spec.timezone)).date()
    run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
    plan = RunPlan(window=Window.today_partial(day), resources=spec.resource_names, run_type=run_type)
    log.info("run plan: %s intraday run of %s: %s; resources %s; due %s", run_type, source,
             plan.window.describe(), ", ".join(plan.resources), due.isoformat())
    return plan.to_dict()


def load_resource(source: str, resource: str, plan: dict[str, Any]) -> dict[str, Any]:
    """Load task body: run one resource through the shared pipeline code path."""
    run_plan = RunPlan.from_dict(plan)
    if resource not in run_plan.resources:
        raise AirflowSkipException(f"resource {resource!r} not selected for this run")
    if run_plan.dry_run:
        raise AirflowSkipException(f"dry run: {resource!r} would load {run_plan.window.describe()}")
    try:
        destination = warehouse_destination()  # before anything is extracted
    except WarehouseConnectionMissing as exc:
        raise AirflowFailException(f"WarehouseConnectionMissing: {exc}") from None  # retrying cannot create it
    intraday = run_plan.window.intraday
    try:
        # one load of a pipeline at a time across its daily and intraday DAGs (loadlock):
        # an intraday load gives way at once, a daily or backfill load waits for it
        with pipeline_lock(destination, pipeline_name(source, resource), wait=not intraday):
            summary = run_load(
                source,
                resource,
                run_plan.window,
                destination,
                source_kwargs=source_kwargs(get_spec(source)),
            )
    except PipelineBusyError as exc:
        if intraday:
            raise AirflowSkipException(f"{exc}. Intraday run skipped: the next one loads today") from None
        raise
    except PoisonPackageError as exc:
        # the same failure would repeat on every try: fail now, the message says what to do
        log.error("load %s stopped on a poison package", exc.pipeline, exc_info=exc)
        raise AirflowFailException(f"PoisonPackageError: {exc}") from None
    alerts.post_schema_notice(summary, get_current_context())  # a notice, never a failure
    # the tables it wrote become asset events (none when it wrote no rows): orchestration.assets
    emit_table_events(get_current_context()["outlet_events"], destination, summary, run_plan.run_type)
    return summary
