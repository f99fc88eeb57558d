"""Intraday DAGs: `signalroom_<source>_intraday` for each source with an `intraday_schedule`
(everflow, redtrack: hourly 07:00-23:00 ET), loading today's partial day into the same tables.

A separate generated DAG, not a second timetable of the daily one: the daily DAG's
`CronDataIntervalTimetable` gives every scheduled and `airflow backfill create` run the one ET
day it loads; a multi-cron timetable would turn every backfill into 18 runs a day and lose the
data intervals. The intraday DAG shares everything else with the daily one: the registry, the
load task body, the pool, the failure alerts and the tables' asset aliases.

What keeps the daily numbers right (details: README, "Intraday numbers"):
- the window is today only, loaded like a backfill (`Window.today_partial`): merged on the
  table's keys, dlt's cursor untouched, so the next daily run re-reads today within its
  look-back and restates it, and the cursor never passes the last finished day;
- one load of a pipeline at a time across both DAGs (`signalroom.loadlock`): an intraday load
  gives way to a running daily load (its task is skipped), a daily load waits for an intraday one.
"""

from __future__ import annotations

from dataclasses import replace

from airflow.sdk import DAG, CronTriggerTimetable, TaskGroup, task

from signalroom.base.naming import START_DATE, dag_id_for, intraday_dag_id_for
from signalroom.orchestration import alerts, tasks
from signalroom.orchestration.assets import table_alias
from signalroom.orchestration.factory import default_args, load_pool
from signalroom.orchestration.schedules import check_dst_safe, describe_schedule
from signalroom.registry import REGISTRY, SourceSpec


def intraday_timetable(spec: SourceSpec) -> CronTriggerTimetable:
    """Runs at the cron's times in the source's timezone; a run's ET day is the day it is due."""
    if not spec.intraday_schedule:
        raise ValueError(f"source {spec.name!r} has no intraday_schedule in the registry")
    check_dst_safe(spec.intraday_schedule, spec.timezone)
    return CronTriggerTimetable(spec.intraday_schedule, timezone=spec.timezone)


def _callbacks(spec: SourceSpec) -> dict:
    """The daily DAG's failure alert; not its deadline ("loaded by 09:00 ET" is the daily run's)."""
    callbacks = alerts.dag_callbacks(spec)
    callbacks.pop("deadline", None)
    return callbacks


def build_intraday_dag(spec: SourceSpec) -> DAG:
    with DAG(
        dag_id=intraday_dag_id_for(spec.name),
        description=(
            f"{spec.name}: today's partial numbers (ET), restated by {dag_id_for(spec.name)}. "
            f"Runs {describe_schedule(replace(spec, schedule=spec.intraday_schedule))}."
        ),
        doc_md=(
            f"### {spec.name} intraday\n\nLoads today's partial ET day into the same tables as "
            f"`{dag_id_for(spec.name)}` (merged on the keys), `{spec.intraday_schedule}` "
            f"({spec.timezone}). The cursor does not move: the next daily run restates today. "
            "An intraday load that meets a running daily load of the same pipeline is skipped."
        ),
        schedule=intraday_timetable(spec),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={**default_args(spec), "retries": 0},  # the next hour is the retry
        tags=["signalroom", f"source:{spec.name}", "intraday", *spec.tags],
        **_callbacks(spec),
    ) as dag:
        plan = task(task_id="plan")(tasks.plan_intraday)(spec.name)
        for resource in spec.resources:
            with TaskGroup(group_id=resource.name, tooltip=f"today's rows into {resource.table}"):
                task(
                    task_id="load", pool=load_pool(), max_active_tis_per_dag=1,
                    outlets=[table_alias(spec.name, resource.name)],
                )(tasks.load_resource)(spec.name, resource.name, plan)
    return dag


def build_all_intraday_dags() -> dict[str, DAG]:
    return {
        intraday_dag_id_for(name): build_intraday_dag(spec)
        for name, spec in REGISTRY.items()
        if spec.intraday_schedule
    }
