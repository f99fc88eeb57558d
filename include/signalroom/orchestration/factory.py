"""Registry -> DAGs. One DAG per registered source, one TaskGroup per resource.

Cheap to parse: reads the registry (plain data) and Airflow's SDK; nothing here touches
dlt, a source module, a connection or the metadata database.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, TaskGroup, task

from signalroom.base.naming import START_DATE, dag_id_for
from signalroom.orchestration import alerts, checks, tasks
from signalroom.orchestration.assets import table_alias
from signalroom.orchestration.params import dag_params
from signalroom.orchestration.schedules import describe_schedule, timetable_for
from signalroom.registry import REGISTRY, SourceSpec


def default_args(spec: SourceSpec) -> dict:
    return {
        "owner": spec.owner,
        # SIGNALROOM_TASK_RETRIES lets tests and the demo fail fast; production keeps 3
        "retries": int(os.environ.get("SIGNALROOM_TASK_RETRIES", "3")),
        # SIGNALROOM_TASK_RETRY_DELAY (seconds) lets the distributed tests retry within seconds
        "retry_delay": timedelta(seconds=int(os.environ.get("SIGNALROOM_TASK_RETRY_DELAY", "120"))),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        **alerts.task_callbacks(spec),  # Slack alert after the last retry
    }


def load_pool() -> str:
    """Pool of the load tasks: SIGNALROOM_LOAD_POOL (the compose stack's `signalroom_loads`,
    created from airflow_settings.yaml) caps concurrent loads; unset, Airflow's default pool."""
    return os.environ.get("SIGNALROOM_LOAD_POOL") or "default_pool"


def _doc_md(spec: SourceSpec) -> str:
    rows = "\n".join(
        f"| `{r.name}` | `{spec.dataset_name}.{r.table}` | {r.describe()} | "
        f"{', '.join(r.key) or '-'} |"
        for r in spec.resources
    )
    return (
        f"### {spec.name}\n\n{spec.description}\n\n"
        f"Source `{spec.ref}`, dataset `{spec.dataset_name}`, runs {describe_schedule(spec)} "
        f"(cron `{spec.schedule}` in {spec.timezone}), look-back {spec.lookback_days} days.\n\n"
        "| resource | table | disposition | key |\n|---|---|---|---|\n"
        f"{rows}\n\n"
        "A date range: trigger with `start_date` and `end_date` (ET days, inclusive). "
        "See the README's runbook."
    )


def build_dag(spec: SourceSpec) -> DAG:
    with DAG(
        dag_id=dag_id_for(spec.name),
        description=f"{spec.description} Runs {describe_schedule(spec)}.",
        doc_md=_doc_md(spec),
        schedule=timetable_for(spec),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(spec),
        params=dag_params(spec),
        tags=["signalroom", f"source:{spec.name}", *spec.tags],
        **alerts.dag_callbacks(spec),  # run-failure alert, deadline alert
    ) as dag:
        plan = task(task_id="plan", retries=0)(tasks.plan_run)(spec.name)
        groups = []
        for resource in spec.resources:
            with TaskGroup(group_id=resource.name, tooltip=f"load then check {resource.table}") as group:
                # one load of a pipeline at a time across all runs, Airflow backfills included
                # (their runs are not bound by the DAG's max_active_runs)
                # its tables' asset events go through the resource's alias (orchestration.assets)
                load = task(
                    task_id="load", pool=load_pool(), max_active_tis_per_dag=1,
                    outlets=[table_alias(spec.name, resource.name)],
                )(tasks.load_resource)(spec.name, resource.name, plan)
                checks.resource_checks(spec, resource, load)
            groups.append(group)
        checks.dag_checks(spec, groups)
    return dag


def build_all_dags() -> dict[str, DAG]:
    return {dag_id_for(name): build_dag(spec) for name, spec in REGISTRY.items()}
