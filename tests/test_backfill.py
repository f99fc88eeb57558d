"""Backfills through Airflow: from the trigger form (dag.test with start_date/end_date) and
Airflow's own `airflow backfill create` executed by a real scheduler.

A backfill loads exactly its range and leaves the scheduled cursor (dlt state in the
destination and in the working folder; tracked files for s3_exports) as it was.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from signalroom.registry import REGISTRY, pipeline_name
from tests.support import db
from tests.support.dagrun import (
    BACKFILL_DAYS,
    ET,
    EXPORT_PREFIXES,
    OUTSIDE_DAY,
    STEPS,
    airflow_cli,
    airflow_scheduler,
    cursor_of,
    destination_state,
    yesterday_et,
)

SOURCES = sorted(REGISTRY)
pytestmark = pytest.mark.slow
# The scheduler test comes first: under xdist another worker meanwhile runs the shared
# dag.test scenarios (tests/dagrun_support.py) that the form tests below and test_idempotency use.


# ------------------------------------------------- Airflow's own backfill, run by a scheduler

NATIVE_DAYS = (date(2025, 5, 5), date(2025, 5, 6), date(2025, 5, 7))
NATIVE_DAGS = ("signalroom_everflow",)


@dataclass
class NativeRun:
    run_id: str
    run_type: str
    state: str
    interval: tuple[datetime, datetime]
    window: dict
    loads: list[tuple[datetime, datetime]]  # (start, end) of its load tasks
    plan_log: str


@dataclass
class NativeResult:
    runs: dict[str, list[NativeRun]]  # dag_id -> runs
    url: str
    api_days: list[tuple[date, date]]
    state_cursors: list[Any]  # the cursor in every pipeline-state row everflow's loads wrote
    dlt_dir: Path


def _xcom_window(session, dag_id: str, run_id: str) -> dict:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    value = session.scalar(
        select(XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id,
            XComModel.task_id == "plan", XComModel.key == "window",
        )
    )
    return json.loads(value) if isinstance(value, str) else (value or {})


def _plan_log(dag_id: str, run_id: str) -> str:
    folder = Path(os.environ["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=plan"
    return "".join(p.read_text() for p in sorted(folder.glob("attempt=*.log")))


def _collect(dag_ids, since: datetime) -> dict[str, list[NativeRun]]:
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out: dict[str, list[NativeRun]] = {d: [] for d in dag_ids}
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(DagRun.dag_id.in_(dag_ids), DagRun.run_type.in_(["scheduled", "backfill"]),
                                 DagRun.queued_at >= since)
        ).all()
        for run in runs:
            loads = session.execute(
                select(TaskInstance.start_date, TaskInstance.end_date).where(
                    TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
                    TaskInstance.task_id.like("%.load"),
                )
            ).all()
            out[run.dag_id].append(NativeRun(
                run_id=run.run_id, run_type=str(run.run_type), state=str(run.state),
                interval=(run.data_interval_start, run.data_interval_end),
                window=_xcom_window(session, run.dag_id, run.run_id),
                loads=[(a, b) for a, b in loads if a and b],
                plan_log=_plan_log(run.dag_id, run.run_id) if run.state in ("success", "failed") else "",
            ))
    return out


def _finished(runs: dict[str, list[NativeRun]]) -> bool:
    everflow = runs["signalroom_everflow"]
    kinds = [r.run_type for r in everflow]
    return (
        kinds.count("backfill") == len(NATIVE_DAYS) and "scheduled" in kinds
        and all(r.state in ("success", "failed") for rs in runs.values() for r in rs)
    )


@pytest.fixture(scope="module")
def native(dagrun_world) -> NativeResult:
    """`airflow backfill create` of 3 days for everflow (3 runs allowed at once), the DAG
    unpaused (it gets its scheduled run too), executed by a real scheduler with 2 workers.
    Every task runs, health checks included."""
    from dlt.common.versioned_state import decompress_state

    world = dagrun_world
    database = world.database()
    dlt_dir = world.root / "dlt-native"
    dlt_dir.mkdir()
    since = datetime.now(timezone.utc)
    try:
        with airflow_scheduler(world.env(database, dlt_dir), world.root / "scheduler-logs") as start:
            airflow_cli("dags", "reserialize")
            airflow_cli(
                "backfill", "create", "--dag-id", "signalroom_everflow",
                "--from-date", NATIVE_DAYS[0].isoformat(), "--to-date", f"{NATIVE_DAYS[-1].isoformat()}T12:00",
                "--max-active-runs", "3",
            )
            world.api.reset_requests()
            for dag_id in NATIVE_DAGS:
                airflow_cli("dags", "unpause", dag_id)
            start()
            deadline = time.monotonic() + 420
            runs = _collect(NATIVE_DAGS, since)
            while not _finished(runs):
                assert time.monotonic() < deadline, f"runs not finished in time: {runs}"
                time.sleep(2)
                runs = _collect(NATIVE_DAGS, since)
    finally:
        for dag_id in NATIVE_DAGS:
            airflow_cli("dags", "pause", dag_id)
    url = world.url(database)
    state_cursors = [
        cursor_of(decompress_state(blob).get("sources", {}), "everflow", "daily_stats")
        for blob in query_all(url, "SELECT state FROM everflow._dlt_pipeline_state "
                                   "WHERE pipeline_name = 'everflow__daily_stats' ORDER BY version")
    ]
    api_days = [r.day_range for r in world.api.report_requests("everflow") if r.status == 200]
    return NativeResult(runs, url, api_days, state_cursors, dlt_dir)


def query_all(url: str, sql: str) -> list[Any]:
    """The first column of every row."""
    return [row[0] for row in db.query(url, sql)]


def _et_day(moment: datetime) -> date:
    return moment.astimezone(ET).date()


def test_native_backfill_runs_load_their_own_interval(native):
    backfills = sorted((r for r in native.runs["signalroom_everflow"] if r.run_type == "backfill"),
                       key=lambda r: r.interval[0])
    assert [r.state for r in backfills] == ["success"] * len(NATIVE_DAYS)
    assert [_et_day(r.interval[0]) for r in backfills] == list(NATIVE_DAYS)
    for run, day in zip(backfills, NATIVE_DAYS, strict=True):
        assert run.window == {"start": str(day), "end": str(day), "backfill": True}, run
        assert f"backfill run of everflow: backfill window {day} .. {day}" in run.plan_log
    rows = dated_rows(native.url, "everflow.daily_stats")
    assert set(NATIVE_DAYS) <= set(rows)
    # each backfill asked the API for its own day only
    assert {(d, d) for d in NATIVE_DAYS} <= set(native.api_days)


def test_scheduled_run_window_and_cursor(native):
    scheduled = [r for r in native.runs["signalroom_everflow"] if r.run_type == "scheduled"]
    assert len(scheduled) == 1 and scheduled[0].state == "success"
    run = scheduled[0]
    last = _et_day(run.interval[1]) - timedelta(days=1)
    assert _et_day(run.interval[0]) == last  # one ET day per interval
    assert run.window == {"start": None, "end": str(last), "backfill": False}
    assert f"scheduled run of everflow: scheduled window cursor - look-back .. {last}" in run.plan_log
    lookback = {last - timedelta(days=n) for n in range(REGISTRY["everflow"].lookback_days)}
    # the first scheduled run read its look-back, whether the backfills ran before it or not:
    # they moved no cursor (else it would have started at a backfill day)
    assert set(native.api_days) == {(d, d) for d in NATIVE_DAYS} | {(min(lookback), last)}
    assert set(dated_rows(native.url, "everflow.daily_stats")) == set(NATIVE_DAYS) | lookback
    state = destination_state(native.url, "everflow", "everflow__daily_stats")
    assert str(cursor_of(state, "everflow", "daily_stats")) == str(last)
    # no state row ever held a backfill day as the cursor (the first load, if a backfill,
    # writes the pipeline's initial state without one)
    assert set(map(str, native.state_cursors)) <= {"None", str(last)}, native.state_cursors


def test_loads_of_one_pipeline_never_overlap(native):
    """Backfill runs (3 allowed at once) and the scheduled run share everflow__daily_stats."""
    loads = sorted(interval for run in native.runs["signalroom_everflow"] for interval in run.loads)
    assert len(loads) == len(NATIVE_DAYS) + 1
    for (_, end), (next_start, _) in zip(loads, loads[1:], strict=False):
        assert end <= next_start, loads


def dated_rows(url: str, table: str) -> dict[date, int]:
    return dict(db.query(url, f"SELECT date, count(*) FROM {table} GROUP BY date"))


# ------------------------------------------- backfills from the trigger form (dag.test)


@pytest.mark.parametrize("source", SOURCES)
def test_every_run_of_the_sequence_succeeds(dag_scenarios, source):
    scenario = dag_scenarios[source]
    for step in STEPS:
        states = scenario.steps[step].states
        assert set(states.values()) == {"success"}, (step, states)


def _loaded_resources(source):
    """Resources that have data in the stand-ins (s3_exports' prospects-create is empty)."""
    spec = REGISTRY[source]
    if source == "s3_exports":
        return [p.replace("-", "_") for p in EXPORT_PREFIXES]
    return list(spec.resource_names)


@pytest.mark.parametrize("source", SOURCES)
def test_run_without_dates_loads_up_to_yesterday_from_the_cursor(dag_scenarios, source):
    scenario, spec = dag_scenarios[source], REGISTRY[source]
    yesterday = yesterday_et()
    expected = (
        {yesterday - timedelta(days=1), yesterday}  # the exports uploaded for recent days
        if source == "s3_exports"
        else {yesterday - timedelta(days=n) for n in range(spec.lookback_days)}  # first run: look-back
    )
    for resource in _loaded_resources(source):
        assert set(scenario.dated_rows("cursor", resource)) == expected, resource


@pytest.mark.parametrize("source", SOURCES)
def test_params_backfill_loads_exactly_its_range(dag_scenarios, source):
    scenario = dag_scenarios[source]
    spec = REGISTRY[source]
    for resource in _loaded_resources(source):
        before = scenario.dated_rows("cursor2", resource)
        after = scenario.dated_rows("backfill", resource)
        assert set(after) - set(before) == set(BACKFILL_DAYS), resource
        assert OUTSIDE_DAY not in after
        # rows of every other day are exactly as they were
        res = spec.resource(resource)
        columns, rows_before = scenario.steps["cursor2"].tables[res.table]
        _, rows_after = scenario.steps["backfill"].tables[res.table]
        day = columns.index(res.date_column)
        assert [r for r in rows_after if r[day] not in BACKFILL_DAYS] == rows_before

    step = scenario.steps["backfill"]
    first, last = BACKFILL_DAYS[0], BACKFILL_DAYS[-1]
    if source == "s3_exports":  # exactly the range's files were opened, nothing else
        assert {k.split("/")[0] for k in step.files_read} == set(EXPORT_PREFIXES)
        assert all(str(first) in k or str(last) in k for k in step.files_read), step.files_read
        assert len(step.files_read) == len(EXPORT_PREFIXES) * len(BACKFILL_DAYS)
    else:  # every report request stayed inside the range
        assert step.api_days and all(first <= a <= b <= last for a, b in step.api_days), step.api_days


@pytest.mark.parametrize("source", SOURCES)
def test_params_backfill_leaves_the_cursor_alone(dag_scenarios, source):
    scenario = dag_scenarios[source]
    before, after = scenario.steps["cursor2"], scenario.steps["backfill"]
    for resource in REGISTRY[source].resource_names:
        pipeline = pipeline_name(source, resource)
        # the whole source state, not just the cursor: a backfill writes none of it
        assert after.dest_state[pipeline] == before.dest_state[pipeline], pipeline
        assert after.local_state[pipeline] == before.local_state[pipeline], pipeline
    for resource in _loaded_resources(source):
        cursor = cursor_of(before.dest_state[pipeline_name(source, resource)], source, resource)
        if source == "s3_exports":  # tracked files: the recent ones only, none of the backfill's
            assert len(cursor) == 2 and not any(str(d) in p for p in cursor for d in BACKFILL_DAYS)
        else:
            assert str(cursor) == str(yesterday_et())
