"""What the generated tasks execute. Called inside task processes only; dlt is imported
through `signalroom.pipeline` when a load runs, never when a DAG file is parsed."""

from __future__ import annotations

import logging
from typing import Any

from signalroom.registry import get_spec

log = logging.getLogger("signalroom.tasks")


def plan_run(source: str) -> dict[str, Any]:
    """First task: resolve the run (type, data interval, Params) into the window it loads.

    Invalid Params fail here, with a message naming the field and the fix, before any
    load task starts; the resolved window is logged so every run says what it loads.
    """
    from datetime import datetime, timezone

    from airflow.sdk import get_current_context

    from signalroom.orchestration.params import RunContext, describe_plan, form_values, resolve_run

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
    from airflow.sdk.exceptions import AirflowSkipException

    from signalroom.orchestration.connections import source_kwargs, warehouse_destination
    from signalroom.pipeline import Window, run_load

    if resource not in plan["resources"]:
        raise AirflowSkipException(f"resource {resource!r} not selected for this run")
    if plan.get("dry_run"):
        raise AirflowSkipException(f"dry run: {resource!r} would load {Window.from_dict(plan['window']).describe()}")
    spec = get_spec(source)
    return run_load(
        source,
        resource,
        Window.from_dict(plan["window"]),
        warehouse_destination(),
        source_kwargs=source_kwargs(spec),
    )
