"""Readable task logs: dlt's lines at their real level, the load summary at INFO, no secrets.

The end-to-end part runs real DAGs under Airflow's real task supervisor (tests/support/supervised.py),
so the task log file is the one a worker writes, and greps it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from signalroom.logs import (
    ForwardToLogging,
    cursor_change,
    progress_seconds,
    route_dlt_logs,
    summary_lines,
)
from tests.support import db
from tests.support.dagrun import forget_runs

ROOT = Path(__file__).resolve().parent.parent


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_records():
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_dlt_records_reach_the_host_logging_at_their_level(root_records, dlt_data_dir, tmp_path, capfd):
    """A real dlt pipeline run: its INFO lines arrive through logging, none on stderr."""
    route_dlt_logs()
    import dlt

    @dlt.resource(name="numbers", write_disposition="replace")
    def numbers():
        yield [{"n": i} for i in range(3)]

    pipeline = dlt.pipeline(
        pipeline_name="log_routing_test",
        destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
        dataset_name="routing",
        pipelines_dir=str(dlt_data_dir / "pipelines"),
    )
    pipeline.run(numbers())
    # dlt re-initialises its logger on every new run context: the forwarding must survive
    dlt_logger = logging.getLogger("dlt")
    assert [type(h) for h in dlt_logger.handlers] == [ForwardToLogging]

    dlt_records = [r for r in root_records if r.name == "dlt"]
    assert dlt_records, "no dlt record reached the root logger"
    assert {r.levelno for r in dlt_records} == {logging.INFO}
    assert any("load" in r.getMessage().lower() for r in dlt_records)
    assert "|dlt|" not in capfd.readouterr().err  # dlt's own stderr format is gone


def test_route_dlt_logs_is_idempotent_and_replaces_dlts_stream_handler():
    dlt_logger = logging.getLogger("dlt")
    saved = list(dlt_logger.handlers)
    try:
        dlt_logger.handlers = [logging.StreamHandler()]  # what dlt installs: stderr
        first = route_dlt_logs()
        second = route_dlt_logs()
        assert first is second
        assert dlt_logger.handlers == [first]
    finally:
        dlt_logger.handlers = saved


def test_progress_seconds_setting(monkeypatch):
    monkeypatch.delenv("SIGNALROOM_PROGRESS_SECONDS", raising=False)
    assert progress_seconds() == 30
    monkeypatch.setenv("SIGNALROOM_PROGRESS_SECONDS", "5")
    assert progress_seconds() == 5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("SIGNALROOM_PROGRESS_SECONDS", bad)
        with pytest.raises(ValueError, match="SIGNALROOM_PROGRESS_SECONDS"):
            progress_seconds()


def test_summary_lines_say_each_fact_once():
    summary = {
        "pipeline": "everflow__daily_stats",
        "dataset": "everflow",
        "destination": "postgres 127.0.0.1:5432/db",
        "window": {"start": "2025-01-01", "end": "2025-01-03", "backfill": True},
        "load_ids": ["1795883970.16"],
        "rows": {"daily_stats": 75},
        "timings": {"extract": 0.4, "normalize": 0.1, "load": 0.9},
        "cursor_before": {"incremental.date": {"last_value": "2024-12-31"}},
        "cursor_after": {"incremental.date": {"last_value": "2025-01-03"}},
        "seconds": 2.1,
    }
    lines = summary_lines(summary)
    text = "\n".join(lines)
    assert all(line.startswith("summary everflow__daily_stats: ") for line in lines)
    assert "backfill window 2025-01-01 .. 2025-01-03 (ET days, inclusive)" in text
    assert "rows daily_stats=75 (total 75); load ids 1795883970.16" in text
    assert "extract 0.4, normalize 0.1, load 0.9, total 2.1" in text
    assert "cursor incremental.date 2024-12-31 -> 2025-01-03" in text
    assert "files" not in text
    summary["files"] = [f"orders-create/report_{i}.csv" for i in range(7)]
    assert "files 7: orders-create/report_0.csv" in "\n".join(summary_lines(summary))


def test_cursor_change_marks_unchanged_and_stateless():
    same = {"files": {"entries": 3}}
    assert cursor_change(same, same) == "files 3 entries (unchanged)"
    assert cursor_change({}, {}) == "none (resource keeps no state)"


# -- real DAG runs under Airflow's task supervisor -------------------------------------------

DAY = date(2025, 1, 6)
SECRETS = {
    "everflow_key": "ef-SECRET-key-4711",
    "wrong_everflow_key": "ef-WRONG-secret-0815",
    "redtrack_key": "rt-SECRET-key-2342",
    "warehouse_password": "pg-SECRET-pass-1337",
    "slack_token": "SECRETslackToken9001",
}


def _connections(api_url: str, warehouse: dict, webhook_url: str, everflow_key: str) -> dict[str, str]:
    from tools import localenv

    env: dict[str, str] = {}
    for conn_id, conn in {
        "signalroom_warehouse": warehouse,
        "signalroom_everflow": {"conn_type": "http", "host": api_url, "password": everflow_key},
        "signalroom_redtrack": {"conn_type": "http", "host": api_url, "password": SECRETS["redtrack_key"]},
        "signalroom_slack": {"conn_type": "slackwebhook", "password": webhook_url},
    }.items():
        env.update(localenv.airflow_connection_env(conn_id, conn))
    return env


def _supervised_runs(runs: list[dict]) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "support" / "supervised.py"), json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    results = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == len(runs), (
        f"supervised runs did not finish:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return results


@pytest.fixture(scope="module")
def runs(airflow_db, postgres_server):
    """One successful redtrack run and one everflow run failing on a rejected API key, both
    into a fresh Postgres database, with every credential a recognisable secret."""
    from tools.standins.api import ApiStandin
    from tools.standins.webhook import WebhookReceiver

    database = db.create_database(postgres_server.url(), prefix="sr_logs")
    forget_runs("signalroom_redtrack", "signalroom_everflow")  # no streak of another test's failures
    password = postgres_server.password or SECRETS["warehouse_password"]  # trust auth ignores it
    secrets = {**SECRETS, "warehouse_password": password}
    warehouse = {
        "conn_type": "postgres",
        "host": postgres_server.host,
        "port": postgres_server.port,
        "login": postgres_server.user,
        "password": password,
        "schema": database,
    }
    logs = Path(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    try:
        with (
            ApiStandin(everflow_key=SECRETS["everflow_key"], redtrack_key=SECRETS["redtrack_key"]) as api,
            WebhookReceiver(path=f"/services/T000/B000/{SECRETS['slack_token']}") as hook,
        ):
            conf = {"start_date": DAY.isoformat(), "end_date": DAY.isoformat()}
            env = {"SIGNALROOM_PROGRESS_SECONDS": "0.5"}
            ok, failed = _supervised_runs(
                [
                    {
                        "dag_id": "signalroom_redtrack",
                        "conf": conf,
                        "env": {**env, **_connections(api.url, warehouse, hook.url, SECRETS["everflow_key"])},
                    },
                    {
                        "dag_id": "signalroom_everflow",
                        "conf": conf,
                        "env": {
                            **env,
                            **_connections(api.url, warehouse, hook.url, SECRETS["wrong_everflow_key"]),
                        },
                    },
                ]
            )
            posts = hook.wait_for(2, timeout=30)
    finally:
        db.drop_databases(postgres_server.url(), [database])
    return {"ok": ok, "failed": failed, "posts": posts, "logs": logs, "secrets": secrets, "webhook": hook.url}


def _run_id(result: str) -> str:
    return result.split(" ", 2)[2]


def _task_log(runs, dag_id: str, result: str, task_id: str) -> list[dict]:
    path = (
        runs["logs"]
        / f"dag_id={dag_id}"
        / f"run_id={_run_id(result)}"
        / f"task_id={task_id}"
        / "attempt=1.log"
    )
    assert path.exists(), f"no task log at {path}"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_successful_load_logs_the_summary_at_info(runs):
    assert runs["ok"].startswith("RESULT success"), runs["ok"]
    records = _task_log(runs, "signalroom_redtrack", runs["ok"], "daily_spend.load")
    summary = {
        r["event"] for r in records if str(r.get("event", "")).startswith("summary redtrack__daily_spend:")
    }
    levels = {r["level"] for r in records if str(r.get("event", "")).startswith("summary ")}
    assert levels == {"info"}
    text = "\n".join(sorted(summary))
    assert f"backfill window {DAY} .. {DAY} (ET days, inclusive)" in text
    assert re.search(r"rows daily_spend=\d+ \(total \d+\); load ids \d+\.\d+", text), text
    assert re.search(r"seconds extract [\d.]+, normalize [\d.]+, load [\d.]+, total [\d.]+", text), text
    assert "cursor " in text
    progress = [r for r in records if r.get("logger") == "signalroom.progress"]
    assert progress and {r["level"] for r in progress} == {"info"}


@pytest.mark.slow
def test_dlt_lines_keep_their_level_and_nothing_reaches_stderr(runs):
    records = _task_log(runs, "signalroom_redtrack", runs["ok"], "daily_spend.load")
    dlt_lines = [r for r in records if r.get("logger") == "dlt"]
    assert dlt_lines, "no dlt line in the task log: RUNTIME__LOG_LEVEL=INFO not applied or routing lost"
    assert {r["level"] for r in dlt_lines} <= {"debug", "info", "warning"}
    assert not [r for r in records if r["level"] in ("error", "critical")]
    # what dlt-hub/dlt#4462 looks like: dlt's own format on stderr, recorded as ERROR
    assert not [r for r in records if r.get("logger") == "task.stderr"]


@pytest.mark.slow
def test_no_secret_in_any_task_log_or_alert(runs):
    secrets = [v for v in runs["secrets"].values() if v] + [runs["webhook"]]
    files = sorted(runs["logs"].rglob("*.log"))
    ours = [f for f in files if _run_id(runs["ok"]) in str(f) or _run_id(runs["failed"]) in str(f)]
    assert len(ours) >= 4, ours  # plan + load of each run
    for path in ours:
        text = path.read_text()
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{path}: {leaked}"
    for post in runs["posts"]:
        assert not [s for s in secrets if s in json.dumps(post)]


@pytest.mark.slow
def test_worker_posts_the_failure_alert_with_its_hint(runs):
    assert runs["failed"].startswith("RESULT failed"), runs["failed"]
    texts = [p["text"] for p in runs["posts"]]
    # the redtrack run's first load created its table: a notice; the everflow run: one alert
    notices = [t for t in texts if t.startswith(":large_blue_circle: *signalroom_redtrack* schema change")]
    (task_alert,) = [p for p in runs["posts"] if p["text"].startswith(":red_circle:")]
    assert len(notices) == 1 and len(texts) == 2, texts
    text = task_alert["text"]
    assert text.startswith(":red_circle: *signalroom_everflow* task `daily_stats.load` failed")
    assert f"run: `{_run_id(runs['failed'])}`" in text
    assert "try: 1 of 1" in text
    assert f"window: backfill window {DAY} .. {DAY} (ET days, inclusive)" in text
    assert re.search(
        r"^error: PipelineStepFailed <- ApiAuthError: everflow: POST \S+ answered 403 \(forbidden\)",
        text,
        re.M,
    )
    assert "hint [api_auth]" in text
    assert "/dags/signalroom_everflow/runs/" in text and "tasks/daily_stats.load?try_number=1" in text
    records = _task_log(runs, "signalroom_everflow", runs["failed"], "daily_stats.load")
    assert any("failure alert sent" in str(r.get("event")) for r in records)


def test_connection_secrets_are_registered_with_the_masker():
    """The mechanism the grep above relies on: what connections.py masks, Airflow redacts."""
    from airflow.sdk._shared.secrets_masker import redact

    from signalroom.orchestration.connections import destination_from_connection

    class Conn:
        conn_id, conn_type, host, port, login, schema = (
            "w",
            "postgres",
            "db.example",
            6543,
            "postgres.ref",
            "db",
        )
        password = "p@ss:w/rd-SECRET"
        extra_dejson: dict = {}

    url = destination_from_connection(Conn()).postgres_url
    assert "SECRET" not in redact(f"url={url} password={Conn.password}")


def test_file_tracking_load_names_its_files(root_records, dlt_data_dir, tmp_path):
    """s3_exports keeps per-file state: the summary lists the files this run loaded."""
    from signalroom.destinations import DestinationConfig
    from signalroom.pipeline import Window, run_load
    from tools.standins.exports import write_exports
    from tools.standins.s3 import S3Server

    write_exports(tmp_path / "exports", [DAY - timedelta(days=1), DAY], 5)
    bucket = f"exports-{uuid.uuid4().hex[:8]}"  # moto keeps buckets per process, across servers
    with S3Server() as s3:
        s3.create_bucket(bucket)
        s3.upload_folder(tmp_path / "exports", bucket)
        dest = DestinationConfig(kind="duckdb", duckdb_path=str(tmp_path / "w.duckdb"))
        kwargs = s3.source_kwargs(bucket)
        first = run_load("s3_exports", "orders_create", Window(end=DAY), dest, source_kwargs=kwargs)
        again = run_load("s3_exports", "orders_create", Window(end=DAY), dest, source_kwargs=kwargs)
    assert len(first["files"]) == 2 and all(f.startswith("orders-create/") for f in first["files"]), first
    assert "files" not in again  # nothing new: nothing listed
    lines = [
        r.getMessage()
        for r in root_records
        if r.getMessage().startswith("summary s3_exports__orders_create:")
    ]
    assert any(
        line.startswith(f"summary s3_exports__orders_create: files 2: {first['files'][0]}") for line in lines
    )
    # the last export header is resource state too (the schema-change check compares it)
    assert any(line.endswith("cursor files none -> 2 entries; header none -> 129 entries") for line in lines), lines
