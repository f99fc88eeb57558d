"""The checks in a real source's DAG run: `signalroom_s3_exports` (the DAG of the dags folder's
factory) on real Postgres, reading synthetic exports from a local folder (`file://`).

One prefix is empty (its table never appears: nothing to check), one resource is not
selected (skipped with its checks), one loads and passes every check; the dataset checks
cover what loaded. What each check fails on is shown in test_checks.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support import checks_source
from tools.standins.exports import write_exports


@pytest.mark.slow
def test_s3_exports_run_checks_on_postgres(airflow_db, pg_database, dlt_data_dir, tmp_path, monkeypatch, capfd):
    from signalroom.orchestration.factory import build_dag
    from signalroom.pipeline import last_finished_day
    from signalroom.registry import REGISTRY

    end = last_finished_day()  # a manual run without dates loads up to the last finished ET day
    days = [end - timedelta(days=n) for n in (2, 1, 0)]
    write_exports(tmp_path / "exports", days, 200, empty_prefixes=("prospects-create",))
    for key, value in checks_source.warehouse_conn_env(pg_database).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_CONN_SIGNALROOM_S3", json.dumps(
        {"conn_type": "aws", "extra": {"bucket_url": (tmp_path / "exports").as_uri()}}))

    run = build_dag(REGISTRY["s3_exports"]).test(run_conf={"resources": ["orders_create", "prospects_create"]})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    out = "".join(capfd.readouterr())
    assert str(run.state) == "success", states
    checks = [t for t in states if ".check_" in t or t.startswith("dag_checks.")]
    assert {t for t in checks if states[t] == "skipped"} == {t for t in checks if t.startswith("orders_update.")}
    assert {states[t] for t in checks if not t.startswith("orders_update.")} == {"success"}
    for check in ("check_loads_completed", "check_no_orphan_rows", "check_unique_key",
                  "check_key_not_null", "check_freshness"):
        assert f"health check {check} on s3_exports.orders_create (postgres) passed" in out
    assert "s3_exports.prospects_create does not exist (the source never had a row" in out
    assert "health check pipeline_state on dataset s3_exports (pipelines s3_exports__orders_create" in out
