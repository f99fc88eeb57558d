"""The checks inside a real Airflow DAG run (`dag.test()`, in-process) on real Postgres:
a run that loads one resource passes its checks, skips the other resource's checks and
passes the dataset checks; a later run finding orphan rows fails its check task and,
through the trigger rules, the run — the dataset checks do not run after a failure."""

from __future__ import annotations

import psycopg2
import pytest

from signalroom import registry
from tests.support import checks_source


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.mark.slow
def test_checks_in_dag_runs(airflow_db, pg_database, dlt_data_dir, monkeypatch, capfd):
    from signalroom.orchestration.factory import build_dag

    for key, value in checks_source.warehouse_conn_env(pg_database).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(registry.REGISTRY, checks_source.SOURCE, checks_source.SPEC)
    monkeypatch.setitem(checks_source.FIXTURE, "skip_days", set())
    dag = build_dag(checks_source.SPEC)

    # a run up to the last finished ET day (the cursor moves), only `daily` selected
    first = dag.test(run_conf={"resources": ["daily"]})
    states = _states(first)
    assert str(first.state) == "success", states
    daily_checks = {t for t in states if t.startswith("daily.check_")}
    assert daily_checks == {"daily.check_indexes", "daily.check_loads_completed", "daily.check_no_orphan_rows",
                            "daily.check_unique_key", "daily.check_key_not_null", "daily.check_freshness",
                            "daily.check_volume"}
    assert {states[t] for t in daily_checks} == {"success"}
    assert {states[t] for t in states if t.startswith("events.")} == {"skipped"}  # not selected
    assert {states[t] for t in states if t.startswith("dag_checks.")} == {"success"}
    out = "".join(capfd.readouterr())
    assert "health check check_unique_key on checks_fixture.daily (postgres) passed" in out
    assert "health check pipeline_state on dataset checks_fixture (pipelines checks_fixture__daily)" in out

    # rows of a package that never completed, written an hour before the next run
    conn = psycopg2.connect(pg_database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT max(load_id) FROM checks_fixture._dlt_loads")
        orphan = f"{float(cur.fetchone()[0]) + 1:.6f}"
        cur.execute(
            "INSERT INTO checks_fixture.daily (date, id, amount, _client_id, _dlt_load_id, _dlt_id)"
            " VALUES ('2025-03-01', 77, 1, '713', %s, 'orphan-1')", (orphan,),
        )
    conn.close()

    second = build_dag(checks_source.SPEC).test()  # all resources
    states = _states(second)
    assert str(second.state) == "failed", states
    assert states["daily.check_no_orphan_rows"] == "failed"
    assert states["daily.check_loads_completed"] == "success"
    assert states["events.check_no_orphan_rows"] == "success"
    assert {states[t] for t in states if t.startswith("dag_checks.")} == {"upstream_failed"}
    out = "".join(capfd.readouterr())
    assert "health check check_no_orphan_rows on checks_fixture.daily (postgres): FAILED" in out
    assert f"{orphan} | 2025-03-01 | 77" in out  # the offending row, by load id and key
