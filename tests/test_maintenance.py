"""Pending packages on real Postgres: left on purpose or by a load killed mid-way, listed by a
dry run that changes nothing, dropped when asked, and the next run loads fresh data.

Loads are real RedTrack loads against the loopback API stand-in, through the load task's code
path (`run_load`); the maintenance DAG runs through Airflow (`dag.test`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from signalroom.destinations import data_dir
from tests.support.api import fast_retries
from tests.support.maintenance import (
    DAG_ID,
    PIPELINE,
    RESOURCE,
    expected_keys,
    extract,
    kill_load_midway,
    load,
    postgres,
    rows,
    start_standin,
    warehouse_connection,
)

ROOT = Path(__file__).resolve().parent.parent
D1, D2, D3 = date(2025, 3, 10), date(2025, 3, 12), date(2025, 3, 14)


@pytest.fixture
def env(monkeypatch, dlt_data_dir, pg_database):
    """A fresh database, working folder and API stand-in; (url, destination, stand-in)."""
    fast_retries(monkeypatch)
    standin = start_standin()
    yield pg_database, postgres(pg_database), standin
    standin.stop()


def folder_fingerprint(path: Path) -> str:
    """Every file under `path` with its content hash: a dry run must leave it equal."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def leave_pending(standin, destination, end: date) -> None:
    """A normalized package (extract + normalize, no load), then an extracted one for the next
    day (extract only): what crashes between dlt's steps leave in the working folder."""
    extract(standin, destination, end, normalize=True)
    extract(standin, destination, end + timedelta(days=1), normalize=False)


def days_loaded(url: str) -> list[date]:
    return [r[0] for r in rows(url, "SELECT DISTINCT date FROM redtrack.daily_spend ORDER BY 1")]


def last_value(summary: dict) -> str:
    return summary["cursor_after"]["incremental.date"]["last_value"]


def test_dry_run_lists_then_drop_unsticks_and_next_run_loads_fresh_data(env):
    from signalroom.maintenance import EXTRACTED, NORMALIZED, drop_pending, format_report
    from signalroom.state import read_pipeline_state

    url, destination, standin = env
    first = load(standin, destination, D1)
    assert last_value(first) == D1.isoformat()
    leave_pending(standin, destination, D2)

    folder = data_dir() / "pipelines" / PIPELINE
    before = folder_fingerprint(folder)
    report = drop_pending(PIPELINE, destination)  # dry run is the default
    assert report.dry_run and folder_fingerprint(folder) == before
    assert [p.stage for p in report.pending] == [NORMALIZED, EXTRACTED]
    normalized, extracted = report.pending
    assert {RESOURCE, "_dlt_pipeline_state"} <= set(normalized.tables)
    assert normalized.jobs == {"new_jobs": 2} and extracted.jobs == {"new_jobs": 2}
    assert 0 <= normalized.age_seconds < 600 and normalized.created_at.startswith("20")
    assert report.dropped == sorted([normalized.load_id, extracted.load_id])
    text = format_report(report)
    assert "dry run: nothing changed" in text and normalized.load_id in text and "would drop" in text

    # the same through the terminal command, in a fresh process
    cli_env = {**os.environ, "SIGNALROOM_DESTINATION": "postgres",
               "DESTINATION__POSTGRES__CREDENTIALS": destination.postgres_url,
               "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-m", "signalroom", "pending", PIPELINE, "--json"],
                         env=cli_env, capture_output=True, text=True, check=True)
    cli = json.loads(out.stdout)
    assert [p["load_id"] for p in cli["pending"]] == [normalized.load_id, extracted.load_id]
    assert cli["dry_run"] is True and folder_fingerprint(folder) == before

    dropped = drop_pending(PIPELINE, destination, dry_run=False)
    assert dropped.dropped == report.dropped and not dropped.still_pending
    # state after the drop is what the destination holds (the D1 load), not the dropped extract's
    stored = read_pipeline_state(PIPELINE, destination)
    assert dropped.cursor_after == stored.sources_summary[RESOURCE] == first["cursor_after"]

    fresh = load(standin, destination, D2)
    assert fresh["load_ids"] and fresh["load_ids"][0] not in report.dropped
    assert last_value(fresh) == D2.isoformat() and days_loaded(url)[-1] == D2


def test_load_killed_midway_is_partially_loaded_and_dropped_only_when_asked(env):
    from signalroom.maintenance import PARTIAL, drop_pending

    url, destination, standin = env
    first = load(standin, destination, D1)
    kill_load_midway(standin, destination, D2)

    report = drop_pending(PIPELINE, destination)
    assert [p.stage for p in report.pending] == [PARTIAL]
    assert report.pending[0].jobs.get("completed_jobs") and report.dropped == []
    assert "with_partial_loads" in report.kept[report.pending[0].load_id]

    kept = drop_pending(PIPELINE, destination, dry_run=False)  # without partial loads: kept
    assert kept.dropped == [] and kept.still_pending

    dropped = drop_pending(PIPELINE, destination, with_partial_loads=True, dry_run=False)
    assert dropped.dropped == [report.pending[0].load_id] and dropped.aborted_with_record
    assert not dropped.still_pending
    assert dropped.cursor_after == first["cursor_after"]  # rewound to the last successful load

    fresh = load(standin, destination, D2)
    assert last_value(fresh) == D2.isoformat()
    # every day of both windows is complete, each key once (merge), nothing half-loaded
    counts = dict(rows(url, "SELECT date, count(*) FROM redtrack.daily_spend GROUP BY 1"))
    window = [D1 - timedelta(days=2) + timedelta(days=i) for i in range((D2 - D1).days + 3)]
    assert counts == {day: expected_keys(standin, day) for day in window}


# ---------------------------------------------------------------------------------------------
# The maintenance DAG, run by Airflow


def _xcom(dag_id: str, run_id: str, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def _states(dag_run) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def _live_run(dag_id: str, state: str | None):
    """Add (state) or remove (None) a live run of `dag_id` in the metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    run_id = "test_live_load_run"
    with create_session() as session:
        session.execute(delete(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if state:
            session.add(
                DagRun(dag_id=dag_id, run_id=run_id, run_type="manual", state=state,
                       run_after=timezone.utcnow(), logical_date=None, conf={})
            )


@pytest.mark.slow
def test_maintenance_dag_inspects_refuses_while_live_then_drops(env, airflow_db, monkeypatch, capfd):
    from signalroom.orchestration.maintenance import build_maintenance_dag

    url, destination, standin = env
    monkeypatch.setenv(*next(iter(warehouse_connection(url).items())))
    load(standin, destination, D1)
    leave_pending(standin, destination, D2)
    folder = data_dir() / "pipelines" / PIPELINE
    before = folder_fingerprint(folder)
    dag = build_maintenance_dag()

    inspect = dag.test(run_conf={"pipeline": PIPELINE, "action": "inspect"})
    assert str(inspect.state) == "success", _states(inspect)
    listed = _xcom(dag.dag_id, inspect.run_id, "pending_packages")
    assert len(listed["pending"]) == 2 and listed["dry_run"] is True
    assert folder_fingerprint(folder) == before
    state = _xcom(dag.dag_id, inspect.run_id, "pipeline_state")
    assert state["resources"][0]["cursors"][0]["last_value"] == D1.isoformat()

    drop = {"pipeline": PIPELINE, "action": "drop", "dry_run": False}
    capfd.readouterr()
    _live_run(DAG_ID, "running")
    try:
        refused = dag.test(run_conf=drop)
    finally:
        _live_run(DAG_ID, None)
    assert _states(refused)["pending_packages"] == "failed"
    log = "".join(capfd.readouterr())
    assert f"refusing to drop pending packages of {PIPELINE}" in log
    assert f"DAG {DAG_ID} has 1 run(s) running or queued" in log
    assert folder_fingerprint(folder) == before

    dropped = dag.test(run_conf=drop)
    assert str(dropped.state) == "success", _states(dropped)
    result = _xcom(dag.dag_id, dropped.run_id, "pending_packages")
    assert result["dropped"] == sorted(p["load_id"] for p in listed["pending"])
    assert result["still_pending"] is False

    fresh = load(standin, destination, D3)
    assert last_value(fresh) == D3.isoformat() and days_loaded(url)[-1] == D3


def _table(url: str) -> list[tuple]:
    """The resource's rows without dlt's per-load columns (they differ per load by design)."""
    return rows(url, "SELECT date, source_id, clicks, cost FROM redtrack.daily_spend ORDER BY date, source_id")


def test_reset_dry_run_refused_while_live_then_drops_and_the_next_run_reloads_exactly(
    env, airflow_db, monkeypatch, capfd
):
    """The runbook's type-mismatch fix as a task: dlt's drop of the resource's table and state,
    dry run first, refused while the source's DAG runs; the next run reloads the same rows."""
    from signalroom.orchestration.maintenance import build_maintenance_dag

    url, destination, standin = env
    monkeypatch.setenv(*next(iter(warehouse_connection(url).items())))
    first = load(standin, destination, D1)
    before = _table(url)
    assert before and last_value(first) == D1.isoformat()
    dag = build_maintenance_dag()

    dry = dag.test(run_conf={"pipeline": PIPELINE, "action": "reset"})
    assert str(dry.state) == "success", _states(dry)
    plan = _xcom(dag.dag_id, dry.run_id, "reset_resource")
    assert plan["dry_run"] is True and plan["tables"] == ["daily_spend"]
    assert f"resources.{RESOURCE}" in " ".join(plan["state_paths"])
    assert _table(url) == before  # a dry run changes nothing

    reset = {"pipeline": PIPELINE, "action": "reset", "dry_run": False}
    capfd.readouterr()
    _live_run(DAG_ID, "queued")
    try:
        refused = dag.test(run_conf=reset)
    finally:
        _live_run(DAG_ID, None)
    assert _states(refused)["reset_resource"] == "failed"
    assert f"refusing to reset {PIPELINE}: DAG {DAG_ID} has 1 run(s) running or queued" in "".join(capfd.readouterr())
    assert _table(url) == before

    done = dag.test(run_conf=reset)
    assert str(done.state) == "success", _states(done)
    result = _xcom(dag.dag_id, done.run_id, "reset_resource")
    assert result["dry_run"] is False and result["tables"] == ["daily_spend"]
    assert rows(url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'redtrack' "
                     "AND table_name = 'daily_spend'") == [(0,)]
    state = _xcom(dag.dag_id, done.run_id, "pipeline_state")
    assert not any(r["resource"] == RESOURCE and r["cursors"] for r in state["resources"])  # cursor gone

    again = load(standin, destination, D1)  # the next run: from scratch, the same window
    assert _table(url) == before
    assert again["rows"] == first["rows"] and last_value(again) == D1.isoformat()
