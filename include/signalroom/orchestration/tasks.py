"""What the generated tasks execute. Called inside task processes only; dlt is imported
through `signalroom.pipeline` when a load runs, never when a DAG file is parsed."""

from __future__ import annotations

import logging
from typing import Any

from signalroom.registry import get_spec

log = logging.getLogger("signalroom.tasks")


def plan_run(source: str) -> dict[str, Any]:
    """First task: validate the trigger form / interval into a window (fails before extract)."""
    from airflow.sdk import get_current_context

    from signalroom.orchestration.params import resolve_run

    context = get_current_context()
    dag_run = context["dag_run"]
    plan = resolve_run(
        get_spec(source),
        context["params"],
        data_interval=(context.get("data_interval_start"), context.get("data_interval_end")),
        run_after=dag_run.run_after,
        is_backfill_run=str(getattr(dag_run, "run_type", "")).endswith("backfill"),
    )
    log.info("run plan for %s: window %s, resources %s", source, plan["window"], plan["resources"])
    return plan


def load_resource(source: str, resource: str, plan: dict[str, Any]) -> dict[str, Any]:
    """Load task body: run one resource through the shared pipeline code path."""
    from airflow.sdk.exceptions import AirflowSkipException

    from signalroom.orchestration.connections import source_kwargs, warehouse_destination
    from signalroom.pipeline import Window, run_load

    if resource not in plan["resources"]:
        raise AirflowSkipException(f"resource {resource!r} not selected for this run")
    spec = get_spec(source)
    return run_load(
        source,
        resource,
        Window.from_dict(plan["window"]),
        warehouse_destination(),
        source_kwargs=source_kwargs(spec),
    )
