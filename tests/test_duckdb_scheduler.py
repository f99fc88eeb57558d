"""The embedded destination under a real scheduler: the demo's settings (tools/demo_settings.yaml,
DuckDB warehouse file, loopback stand-ins) applied with the settings loader, a scheduler with
LocalExecutor running two tasks at once, and a manual run of every source DAG at the same time.

Without serialization, parallel resource groups (and checks reading while another group loads)
hit DuckDB's single-writer lock, and failed load steps left pending packages. Every load task
must succeed on its first try.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from signalroom.registry import REGISTRY
from tests.support.dagrun import airflow_cli, airflow_scheduler

pytestmark = pytest.mark.slow
DAGS = [f"signalroom_{name}" for name in sorted(REGISTRY)]


def _runs(since: datetime) -> dict[str, tuple[str, dict[str, tuple[str, int]]]]:
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out = {}
    with create_session() as session:
        for run in session.scalars(select(DagRun).where(DagRun.dag_id.in_(DAGS), DagRun.run_after >= since)):
            tis = session.scalars(select(TaskInstance).where(
                TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)).all()
            out[run.dag_id] = (str(run.state), {ti.task_id: (str(ti.state), ti.try_number) for ti in tis})
    return out


def test_every_source_dag_succeeds_first_try_on_duckdb_under_a_scheduler(airflow_db, tmp_path):
    from signalroom.deploy.airflow_settings import apply_settings, load_settings
    from signalroom.pipeline import last_finished_day
    from tools.demo import DEMO_KEYS, SETTINGS
    from tools.standins.api import ApiStandin
    from tools.standins.exports import write_exports

    exports = tmp_path / "exports"
    end = last_finished_day()
    write_exports(exports, [end - timedelta(days=n) for n in range(2)], 200)
    warehouse = tmp_path / "warehouse.duckdb"
    dlt_dir = tmp_path / "dlt"
    with ApiStandin(everflow_key=DEMO_KEYS["everflow"], redtrack_key=DEMO_KEYS["redtrack"]) as api:
        apply_settings(load_settings(SETTINGS, {
            "SIGNALROOM_DEMO_WAREHOUSE": str(warehouse),
            "SIGNALROOM_DEMO_API_URL": api.url,
            "SIGNALROOM_DEMO_EXPORTS_URL": exports.resolve().as_uri(),
        }))
        since = datetime.now(timezone.utc)
        env = {"DLT_DATA_DIR": str(dlt_dir), "SIGNALROOM_TASK_RETRIES": "2",
               "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}  # only the manual runs
        try:
            with airflow_scheduler(env, tmp_path / "scheduler-logs") as start:
                airflow_cli("dags", "reserialize")
                for dag_id in DAGS:
                    airflow_cli("dags", "unpause", dag_id)
                    airflow_cli("dags", "trigger", dag_id)
                start()
                deadline = time.monotonic() + 420
                runs = _runs(since)
                while len(runs) < len(DAGS) or any(s not in ("success", "failed") for s, _ in runs.values()):
                    assert time.monotonic() < deadline, f"runs not finished in time: {runs}"
                    time.sleep(2)
                    runs = _runs(since)
        finally:
            for dag_id in DAGS:
                airflow_cli("dags", "pause", dag_id)
            for conn_id in ("signalroom_warehouse", "signalroom_everflow", "signalroom_redtrack", "signalroom_s3"):
                airflow_cli("connections", "delete", conn_id)
    for dag_id, (state, tis) in runs.items():
        assert state == "success", (dag_id, tis)
        loads = {task: ti for task, ti in tis.items() if task.endswith(".load")}
        assert loads and all(ti == ("success", 1) for ti in loads.values()), (dag_id, loads)
    assert warehouse.exists() and not list(dlt_dir.rglob("*.duckdb"))
    logs = "".join(p.read_text(errors="replace") for p in (airflow_db / "logs").rglob("attempt=1.log")
                   if "task_id=" in str(p) and ".load" in str(p))
    print("load tasks that waited for the DuckDB file:", logs.count("waiting for the DuckDB file"))
