"""What the generated tasks execute. dlt is imported through `signalroom.pipeline` only when
a load runs (inside the task), never when a DAG file is parsed."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from signalroom.base.plan import RunPlan
from signalroom.healing import PoisonPackageError
from signalroom.orchestration import alerts
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
    return plan


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
    try:
        summary = run_load(
            source, resource, run_plan.window, destination, source_kwargs=source_kwargs(get_spec(source))
        )
    except PoisonPackageError as exc:
        # the same failure would repeat on every try: fail now, the message says what to do
        log.error("load %s stopped on a poison package", exc.pipeline, exc_info=exc)
        raise AirflowFailException(f"PoisonPackageError: {exc}") from None
    alerts.post_schema_notice(summary, get_current_context())  # a notice, never a failure
    return summary
