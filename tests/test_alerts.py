"""Failure and deadline alerts: the right hint for each error class of the on-call table,
delivered by the real notifier to a loopback Slack-webhook stand-in; silence without one.

Error classes are injected for real (wrong password on a password-checking Postgres, a refused
port, the API stand-in answering 401 / 429, a unique index, an altered column type, a crashed
run's pending package, missing AWS credentials): each produces a real exception from
`signalroom.pipeline.run_load`, which the real notifier turns into a posted alert. Full DAG runs
(`dag.test()`) prove the callbacks are wired and fire from Airflow itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from signalroom.destinations import DestinationConfig
from signalroom.hints import HINTS, UNKNOWN, match_hint, scrub, summarize_error
from signalroom.orchestration import alerts
from signalroom.pipeline import Window, run_load
from signalroom.registry import REGISTRY, UnknownSourceError
from tests.support import db
from tools.standins.webhook import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
SLACK_ENV = "AIRFLOW_CONN_SIGNALROOM_SLACK"


@pytest.fixture
def webhook(monkeypatch):
    """The stand-in, with the `signalroom_slack` connection pointing at it (env secrets backend)."""
    import json

    with WebhookReceiver() as receiver:
        monkeypatch.setenv(SLACK_ENV, json.dumps(receiver.connection()))
        yield receiver


@pytest.fixture(scope="module")
def dags():
    from signalroom.orchestration.factory import build_all_dags

    return build_all_dags()


@pytest.fixture(scope="module")
def deadline_dags():
    """The DAGs as a deployment parses them: the test env (tools/localenv.py) turns deadlines
    off because in-process dag.test() cannot run them (see alerts._under_dags_test)."""
    from signalroom.orchestration.factory import build_all_dags

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SIGNALROOM_DEADLINE_ET", raising=False)
        yield build_all_dags()


def _hint_key(text: str) -> str:
    found = re.search(r"^hint \[(\w+)\]", text, re.M)
    assert found, f"no hint line in alert:\n{text}"
    return found.group(1)


# -- the table and the runbook --------------------------------------------------------------


def test_every_hint_has_a_runbook_section_and_back():
    runbook = (ROOT / "docs" / "RUNBOOK.md").read_text()
    sections = set(re.findall(r"^### hint-([a-z-]+)$", runbook, re.M))
    keys = {h.key.replace("_", "-") for h in (*HINTS, UNKNOWN)} | {"deadline"}
    assert sections == keys
    assert "docs/RUNBOOK.md" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    "text, key",
    [
        # the RedTrack key rides in the query string: a 429 must not read as an auth problem
        (
            "429 Client Error: Too Many Requests for url: http://h/report?api_key=abc&date_from=x",
            "rate_limit",
        ),
        ("HTTPError: 401 Client Error: Unauthorized for url: http://127.0.0.1:9/v1", "api_auth"),
        ("S3 endpoint: Could not connect to the endpoint URL: http://127.0.0.1:1/b", "api_unreachable"),
        ('connection to server at "127.0.0.1", port 1 failed: Connection refused', "connection_refused"),
        ("an export writer process (pid 4242) ended without a result, exit code -9 (negative: killed by that "
         "signal, e.g. -9 out of memory)", "writer_killed"),
        ("load id 1795883970.401 failed for an unforeseen reason", "unknown"),
        ("port 54290 closed", "unknown"),
    ],
)
def test_match_order_on_texts(text, key):
    assert match_hint(text).key == key


def test_scrub_masks_url_passwords_and_key_parameters():
    text = "postgresql://postgres.ref:p%40ss@host:6543/db failed; GET /report?api_key=KEY123&x=1"
    cleaned = scrub(text)
    assert "p%40ss" not in cleaned and "KEY123" not in cleaned
    assert "postgresql://postgres.ref:***@host:6543/db" in cleaned and "x=1" in cleaned


def test_summary_names_raised_class_and_root_cause():
    try:
        try:
            raise ValueError("inner first line\nsecond line")
        except ValueError as inner:
            raise RuntimeError("outer\n") from inner
    except RuntimeError as exc:
        summary = summarize_error(exc)
    assert summary.describe() == "RuntimeError <- ValueError: inner first line"


# -- real errors from run_load, through the real notifier ------------------------------------


def _alert_for(error: BaseException, dag, webhook: WebhookReceiver, source: str) -> str:
    """Post the task-failure alert for `error` as Airflow would after the last retry."""
    webhook.clear()
    with contextlib.suppress(Exception):  # no metadata DB in some of these tests: no streak either
        _forget_streak(dag.dag_id)
    notifier = alerts.SignalroomFailureNotifier(source)
    notifier({"dag": dag, "run_id": f"manual__test_{uuid.uuid4().hex[:8]}", "exception": error, "params": {}})
    return webhook.wait_for(1, timeout=10)[0]["text"]


def test_unknown_source(dags, webhook, dlt_data_dir):
    with pytest.raises(UnknownSourceError) as raised:
        run_load("nosuchsource", "r", Window(end=date(2025, 1, 2)), DestinationConfig(kind="duckdb"))
    text = _alert_for(raised.value, dags["signalroom_everflow"], webhook, "everflow")
    assert _hint_key(text) == "unknown_source"
    assert "error: UnknownSourceError: unknown source 'nosuchsource'" in text


# -- deadline -----------------------------------------------------------------------------------


def test_deadline_interval_from_schedule_and_et_time():
    assert alerts.deadline_interval("0 3 * * *", "09:00") == timedelta(hours=6)
    assert alerts.deadline_interval("30 6 * * *", "06:00") == timedelta(hours=23, minutes=30)
    assert alerts.deadline_interval("0 6 * * *", "06:00") == timedelta(hours=24)
    assert alerts.deadline_interval("0 7-23 * * *", "09:00") is None  # not once a day
    assert alerts.deadline_interval("@daily", "09:00") is None


def test_deadline_time_setting(monkeypatch):
    monkeypatch.delenv("SIGNALROOM_DEADLINE_ET", raising=False)
    monkeypatch.delenv("SIGNALROOM_DEADLINE_ET_S3_EXPORTS", raising=False)
    assert alerts.deadline_time("s3_exports") == "09:00"
    monkeypatch.setenv("SIGNALROOM_DEADLINE_ET", "08:15")
    monkeypatch.setenv("SIGNALROOM_DEADLINE_ET_S3_EXPORTS", "10:30")
    assert alerts.deadline_time("everflow") == "08:15"
    assert alerts.deadline_time("s3_exports") == "10:30"
    monkeypatch.setenv("SIGNALROOM_DEADLINE_ET", "off")
    assert alerts.deadline_time("everflow") is None
    monkeypatch.setenv("SIGNALROOM_DEADLINE_ET", "9am")
    with pytest.raises(ValueError, match=r"SIGNALROOM_DEADLINE_ET='9am' is not an ET time: use HH:MM"):
        alerts.deadline_time("everflow")


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_every_dag_has_failure_callbacks_and_a_deadline(deadline_dags, source, monkeypatch):
    from airflow.sdk import DeadlineReference

    monkeypatch.delenv("SIGNALROOM_DEADLINE_ET", raising=False)
    dag = deadline_dags[f"signalroom_{source}"]
    assert any(isinstance(cb, alerts.SignalroomFailureNotifier) for cb in _as_list(dag.on_failure_callback))
    for task in dag.tasks:
        assert any(
            isinstance(cb, alerts.SignalroomFailureNotifier) for cb in _as_list(task.on_failure_callback)
        )
        assert not _as_list(task.on_retry_callback)  # a retry alerts nobody
    assert any(isinstance(cb, alerts.SignalroomRecoveryNotifier) for cb in _as_list(dag.on_success_callback))
    (deadline,) = dag.deadline
    # not queued-at: clearing a run with a queued-at deadline is HTTP 500 (apache/airflow#70368)
    assert deadline.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    expected = alerts.deadline_span(REGISTRY[source], alerts.deadline_time(source))
    assert deadline.interval == expected


def test_deadline_span_counts_from_the_logical_date():
    """The logical date is the data interval start, a day before the scheduled run starts."""
    assert alerts.deadline_span(REGISTRY["everflow"], "09:00") == timedelta(hours=30)  # 03:00 + 1 day -> 09:00
    assert alerts.deadline_span(REGISTRY["s3_exports"], "09:00") == timedelta(hours=27)  # 06:00 + 1 day


def test_no_deadline_where_dag_test_runs_it(dags, monkeypatch):
    """Local runs (test env, `airflow dags test`) get none: no scheduler would evaluate it, and
    Airflow 3.3.2's dag.test() fails a successful run of a DAG that has one."""
    assert all(not dag.deadline for dag in dags.values())
    monkeypatch.delenv("SIGNALROOM_DEADLINE_ET", raising=False)
    monkeypatch.setattr("sys.argv", ["airflow", "dags", "test", "signalroom_everflow"])
    assert alerts.deadline_alert(REGISTRY["everflow"]) is None
    monkeypatch.setattr("sys.argv", ["airflow", "dag-processor"])
    assert alerts.deadline_alert(REGISTRY["everflow"]) is not None


def test_parsing_the_dags_does_not_import_the_slack_provider():
    """The provider's notifier and hook (~0.3 s of imports) load when an alert is sent, not on
    every DAG parse (Airflow's provider discovery still reads the package's metadata)."""
    import subprocess
    import sys

    code = (
        "import sys; from signalroom.orchestration.factory import build_all_dags; build_all_dags();"
        "print(sorted(m for m in sys.modules if m.startswith(('airflow.providers.slack.notifications',"
        " 'airflow.providers.slack.hooks', 'slack_sdk'))))"
    )
    from tools.localenv import cli_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=cli_env())
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _run_deadline_callback(dag, **run) -> list[dict]:
    """What the triggerer does with a missed deadline: Airflow's CallbackTrigger, fed with the
    callback as the scheduler stores it (serialized DAG) and the context it attaches."""
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.triggers.callback import CallbackTrigger

    stored = DagSerialization.serialize_dag(dag)["deadline"][0]["callback"]["__data__"]
    deadline_time = run.pop("deadline_time", "2025-01-03T14:00:00+00:00")
    context = {
        "dag_run": {
            "dag_id": dag.dag_id,
            "dag_run_id": "scheduled__2025-01-02T08:00:00+00:00",
            "run_type": "scheduled",
            "state": "running",
            "logical_date": "2025-01-02T08:00:00+00:00",
            "queued_at": "2025-01-03T08:00:05+00:00",
            "start_date": "2025-01-03T08:00:09+00:00",
            **run,
        },
        "deadline": {"id": "0", "deadline_time": deadline_time},
    }
    trigger = CallbackTrigger(
        callback_path=stored["path"], callback_kwargs={**stored["kwargs"], "context": context}
    )

    async def events():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(events())


def test_deadline_callback_posts_through_the_triggerer_path(deadline_dags, webhook):
    payloads = _run_deadline_callback(deadline_dags["signalroom_everflow"])
    assert payloads[-1]["state"] == "success", payloads
    (post,) = webhook.wait_for(1)
    text = post["text"]
    assert text.startswith(":alarm_clock: *signalroom_everflow* run not finished by 09:00 ET")
    assert "scheduled__2025-01-02T08:00:00+00:00" in text and "hint [deadline]" in text
    assert "deadline: 2025-01-03 09:00 ET (the daily 09:00 ET deadline of everflow)" in text
    assert "see docs/RUNBOOK.md#hint-deadline" in text


@pytest.mark.parametrize("state", ["failed", "success"])
def test_no_deadline_alert_for_a_finished_run(deadline_dags, webhook, state, caplog):
    with caplog.at_level("INFO"):
        payloads = _run_deadline_callback(deadline_dags["signalroom_everflow"], state=state)
    assert payloads[-1]["state"] == "success", payloads
    assert webhook.posts == []
    assert f"deadline alert not sent: the run already finished ({state})" in caplog.text


def test_deadline_text_of_a_manual_run_states_its_own_deadline(deadline_dags, webhook, monkeypatch):
    monkeypatch.setenv("SIGNALROOM_RUNBOOK_URL", "https://git.example/signalroom/blob/main/docs/RUNBOOK.md")
    payloads = _run_deadline_callback(
        deadline_dags["signalroom_everflow"], dag_run_id="manual__2025-01-05T15:00:00+00:00",
        run_type="manual", logical_date="2025-01-05T15:00:00+00:00", queued_at="2025-01-05T15:00:01+00:00",
        deadline_time="2025-01-06T21:00:00+00:00",
    )
    assert payloads[-1]["state"] == "success", payloads
    text = webhook.wait_for(1)[0]["text"]
    assert text.startswith(":alarm_clock: *signalroom_everflow* manual run not finished by 2025-01-06 16:00 ET")
    assert "deadline: 2025-01-06 16:00 ET = logical date 2025-01-05 10:00 ET + 1 day, 6:00:00" in text
    assert "09:00 ET" not in text.splitlines()[0]
    assert "see https://git.example/signalroom/blob/main/docs/RUNBOOK.md#hint-deadline" in text


def test_no_deadline_alert_for_a_backfill_queued_after_its_deadline(deadline_dags, webhook):
    payloads = _run_deadline_callback(
        deadline_dags["signalroom_everflow"], run_type="backfill", queued_at="2025-03-01T12:00:00+00:00",
    )
    assert payloads[-1]["state"] == "success", payloads
    assert webhook.posts == []


def test_deadline_callback_is_silent_without_a_connection(deadline_dags, monkeypatch):
    monkeypatch.delenv(SLACK_ENV, raising=False)
    with WebhookReceiver() as receiver:
        payloads = _run_deadline_callback(deadline_dags["signalroom_everflow"])
        assert payloads[-1]["state"] == "success", payloads
        assert receiver.posts == []


# -- full DAG runs: Airflow fires the callbacks ---------------------------------------------


def _forget_streak(dag_id: str) -> None:
    from airflow.models.variable import Variable

    from signalroom.orchestration.alert_streaks import variable_key

    Variable.delete(variable_key(dag_id))


@pytest.mark.slow
def test_dag_run_with_invalid_input_posts_one_alert(airflow_db, dags, webhook):
    """A real `dag.test()`: the plan task rejects the trigger form; the task alert is the run's
    one message (the run-level callback fires too and stays silent)."""
    dag = dags["signalroom_everflow"]
    _forget_streak(dag.dag_id)
    run = dag.test(run_conf={"start_date": "2025-03-02", "end_date": "2025-03-01"})
    assert run.state == "failed"
    (task_alert,) = webhook.wait_for(1)
    assert len(webhook.posts) == 1, webhook.texts()
    assert task_alert["text"].startswith(":red_circle: *signalroom_everflow* task `plan` failed")
    assert _hint_key(task_alert["text"]) == "invalid_params"
    assert "end_date=2025-03-01 is before start_date=2025-03-02: swap them" in task_alert["text"]
    assert "window: not resolved: invalid trigger input" in task_alert["text"]
    assert f"run: `{run.run_id}`" in task_alert["text"]
    assert "try: 1 of 1" in task_alert["text"]
    assert re.search(
        r"^log: http\S+/dags/signalroom_everflow/runs/\S+/tasks/plan\?try_number=1$", task_alert["text"], re.M
    )
    _forget_streak(dag.dag_id)


@pytest.mark.slow
def test_repeats_are_counted_and_recovery_posts_one_line(
    airflow_db, dags, webhook, standin, pg_database, dlt_data_dir, monkeypatch
):
    """Real DAG runs: a failing run posts exactly one alert, five repeats of the same error
    within the window post nothing until the streak ends, then one follow-up with count 5, and
    the next success one "recovered" line."""
    from tools.localenv import airflow_connection_env

    dag = dags["signalroom_redtrack"]
    _forget_streak(dag.dag_id)
    monkeypatch.setenv("SIGNALROOM_ALERT_REPEAT_MINUTES", "60")
    for key, value in {
        **db.warehouse_connection_env(pg_database),
        **airflow_connection_env("signalroom_redtrack", {
            "conn_type": "http", "host": standin.url, "password": standin.redtrack_key}),
    }.items():
        monkeypatch.setenv(key, value)
    bad = {"start_date": "2025-01-05", "end_date": "2025-01-01"}  # end before start: plan fails

    first = dag.test(run_conf=bad)
    assert first.state == "failed"
    assert len(webhook.posts) == 1, webhook.texts()
    assert webhook.texts()[0].startswith(":red_circle: *signalroom_redtrack* task `plan` failed")
    for _ in range(5):
        assert dag.test(run_conf=bad).state == "failed"
    assert len(webhook.posts) == 1, webhook.texts()  # counted, not posted

    ok = dag.test(run_conf={"start_date": "2025-01-02", "end_date": "2025-01-02"},
                  mark_success_pattern=r"(\.check_|^dag_checks\.)")
    assert ok.state == "success"
    # the load task's notice first (the first load into this database creates the table), then
    # the run's end: the count of the repeats, the recovery
    notice, followup, recovered = webhook.texts()[1:]
    assert len(webhook.posts) == 4, webhook.texts()
    assert notice.startswith(":large_blue_circle: *signalroom_redtrack* schema change in `redtrack__daily_spend`")
    assert "- new table daily_spend (" in notice
    assert followup.startswith(":repeat: *signalroom_redtrack* same error in 5 more failed runs since ")
    assert "task `plan`: InvalidRunParams" in followup
    assert recovered.startswith(
        f":large_green_circle: *signalroom_redtrack* recovered: run `{ok.run_id}` succeeded after 6 failed runs"
    )
    from signalroom.orchestration.alert_streaks import load_streak

    assert load_streak(dag.dag_id) is None  # the streak is closed


@pytest.mark.slow
def test_dag_run_without_webhook_connection_is_quiet(airflow_db, dags, monkeypatch, caplog):
    monkeypatch.delenv(SLACK_ENV, raising=False)
    with WebhookReceiver() as receiver, caplog.at_level("INFO"):
        run = dags["signalroom_redtrack"].test(
            run_conf={"start_date": "2025-01-05", "end_date": "2025-01-01"}
        )
    assert run.state == "failed"
    assert receiver.posts == []
    notes = [r for r in caplog.records if r.name == "signalroom.alerts"]
    assert notes and all(r.levelname == "INFO" and "not sent" in r.getMessage() for r in notes)
    assert not [r for r in caplog.records if "Callback failed" in r.getMessage()]


# -- each error class of the table, injected for real -----------------------------------------

DAY = date(2025, 1, 6)
ONE_DAY = Window(start=DAY, end=DAY, backfill=True)
NEXT_DAY = Window(start=DAY + timedelta(days=1), end=DAY + timedelta(days=1), backfill=True)


@pytest.fixture(scope="module")
def standin():
    from tools.standins.api import ApiStandin

    with ApiStandin() as api:
        yield api


def _api_kwargs(standin, source: str, **overrides) -> dict:
    key = standin.everflow_key if source == "everflow" else standin.redtrack_key
    return {"api_key": key, "base_url": standin.url, **overrides}


def _pg(url: str) -> DestinationConfig:
    return DestinationConfig(kind="postgres", postgres_url=db.with_password(url))


def _failure(source: str, window: Window, dest: DestinationConfig, resource: str | None = None, **kwargs):
    resource = resource or REGISTRY[source].resource_names[0]
    with pytest.raises(Exception) as raised:
        run_load(source, resource, window, dest, source_kwargs=kwargs)
    return raised.value


def _assert_alert(error, dags, webhook, source: str, key: str) -> str:
    text = _alert_for(error, dags[f"signalroom_{source}"], webhook, source)
    assert _hint_key(text) == key, text
    assert f"runbook: docs/RUNBOOK.md#hint-{key.replace('_', '-')}" in text
    return text


def test_wrong_password_on_a_password_checking_postgres(dags, webhook, standin, dlt_data_dir):
    from tools.standins.postgres import start_throwaway

    server = start_throwaway(auth="scram-sha-256", password="right-Pass-1")
    try:
        dest = DestinationConfig(
            kind="postgres",
            postgres_url=f"postgresql://postgres:wrong-Pass-2@127.0.0.1:{server.port}/postgres",
        )
        error = _failure("everflow", ONE_DAY, dest, **_api_kwargs(standin, "everflow"))
    finally:
        server.stop()
    text = _assert_alert(error, dags, webhook, "everflow", "pg_password")
    assert "password authentication failed" in text and "wrong-Pass-2" not in text


def test_refused_port(dags, webhook, standin, dlt_data_dir):
    from tools.standins.postgres import free_port

    dest = DestinationConfig(
        kind="postgres", postgres_url=f"postgresql://postgres:pw@127.0.0.1:{free_port()}/db"
    )
    error = _failure("everflow", ONE_DAY, dest, **_api_kwargs(standin, "everflow"))
    _assert_alert(error, dags, webhook, "everflow", "connection_refused")


def test_401_from_the_api(dags, webhook, standin, dlt_data_dir, tmp_path):
    """The stand-in answers 401 (a revoked key); a wrong key (403) is in test_task_logs."""
    dest = DestinationConfig(kind="duckdb", duckdb_path=str(tmp_path / "w.duckdb"))
    standin.fail_next(1, 401, api="redtrack")
    error = _failure("redtrack", ONE_DAY, dest, **_api_kwargs(standin, "redtrack"))
    text = _assert_alert(error, dags, webhook, "redtrack", "api_auth")
    assert "answered 401 (unauthorized)" in text and standin.redtrack_key not in text


def test_missing_api_key_alert_names_the_connection_field(dags, webhook, standin, dlt_data_dir, tmp_path,
                                                          monkeypatch):
    """The source names only its dlt config key; the alert maps it to the connection field
    through the registry."""
    monkeypatch.delenv("SOURCES__REDTRACK__API_KEY", raising=False)
    dest = DestinationConfig(kind="duckdb", duckdb_path=str(tmp_path / "w.duckdb"))
    error = _failure("redtrack", ONE_DAY, dest, base_url=standin.url)
    text = _assert_alert(error, dags, webhook, "redtrack", "missing_config")
    assert "sources.redtrack.api_key" in text
    assert "set in Airflow: sources.redtrack.api_key: password of the Airflow connection 'signalroom_redtrack'" in text


def test_429_until_the_retries_run_out(dags, webhook, dlt_data_dir, tmp_path, monkeypatch):
    from tools.standins.api import ApiStandin

    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.02")
    with ApiStandin() as throttled:  # its own: the 429s left over must not reach other tests
        throttled.retry_after = ""
        throttled.throttle_next(50, api="redtrack")
        dest = DestinationConfig(kind="duckdb", duckdb_path=str(tmp_path / "w.duckdb"))
        error = _failure("redtrack", ONE_DAY, dest, **_api_kwargs(throttled, "redtrack"))
        assert [r.status for r in throttled.report_requests("redtrack")] == [429, 429, 429]
    text = _assert_alert(error, dags, webhook, "redtrack", "rate_limit")
    assert throttled.redtrack_key not in text


def test_duplicate_key(dags, webhook, standin, dlt_data_dir, pg_database):
    """A unique index the merge key does not cover (one row per affiliate and advertiser,
    across days): loading a second day violates it."""
    dest = _pg(pg_database)
    kwargs = _api_kwargs(standin, "everflow")
    run_load("everflow", "daily_stats", ONE_DAY, dest, source_kwargs=kwargs)
    _sql(dest, "CREATE UNIQUE INDEX legacy_pair ON everflow.daily_stats (affiliate_id, advertiser_id)")
    error = _failure("everflow", NEXT_DAY, dest, **kwargs)
    _assert_alert(error, dags, webhook, "everflow", "duplicate_key")


def test_type_mismatch(dags, webhook, standin, dlt_data_dir, pg_database):
    """A column whose type changed under the pipeline (here: by hand) fails the next merge."""
    dest = _pg(pg_database)
    kwargs = _api_kwargs(standin, "everflow")
    run_load("everflow", "daily_stats", ONE_DAY, dest, source_kwargs=kwargs)
    _sql(dest, "ALTER TABLE everflow.daily_stats ALTER COLUMN clicks TYPE boolean USING clicks > 0")
    error = _failure("everflow", NEXT_DAY, dest, **kwargs)
    _assert_alert(error, dags, webhook, "everflow", "type_mismatch")


def test_leftover_package_heals_instead_of_alerting(standin, dlt_data_dir, tmp_path):
    """A run that crashed after extract leaves a package; the next load drops it and loads."""
    from signalroom.pipeline import build_source, make_pipeline

    dest = DestinationConfig(kind="duckdb", duckdb_path=str(tmp_path / "w.duckdb"))
    kwargs = _api_kwargs(standin, "everflow")
    make_pipeline("everflow", "daily_stats", dest).extract(
        build_source("everflow", "daily_stats", ONE_DAY, kwargs)
    )
    summary = run_load("everflow", "daily_stats", ONE_DAY, dest, source_kwargs=kwargs)
    assert len(summary["healed"]["dropped"]) == 1 and summary["load_ids"]


def test_poison_package_through_the_load_task(dags, webhook, standin, dlt_data_dir, pg_database, monkeypatch):
    """The warehouse refuses the rows (a constraint): the load task fails without retrying and
    the alert carries the poison hint, the pipeline, the load id and the maintenance action."""
    from airflow.sdk.exceptions import AirflowFailException

    from signalroom.orchestration.tasks import load_resource

    dest = _pg(pg_database)
    kwargs = _api_kwargs(standin, "everflow")
    run_load("everflow", "daily_stats", ONE_DAY, dest, source_kwargs=kwargs)
    _sql(dest, "ALTER TABLE everflow.daily_stats ADD CONSTRAINT refuse CHECK (clicks < 0) NOT VALID")
    for key, value in db.warehouse_connection_env(pg_database).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_CONN_SIGNALROOM_EVERFLOW", json.dumps(
        {"conn_type": "http", "host": standin.url, "password": standin.everflow_key}))
    plan = {"resources": ["daily_stats"], "window": NEXT_DAY.to_dict()}
    with pytest.raises(AirflowFailException) as raised:  # AirflowFailException: no retry
        load_resource("everflow", "daily_stats", plan)
    text = _assert_alert(raised.value, dags, webhook, "everflow", "poison_package")
    assert "everflow__daily_stats" in text and "signalroom_maintenance" in text
    assert re.search(r"poison load package \d+\.\d+", text), text


def test_missing_aws_credentials(dags, webhook, dlt_data_dir, tmp_path, monkeypatch):
    """The S3 connection without its keys: botocore finds none (no env, no ~/.aws here)."""
    from tools.standins.exports import write_exports
    from tools.standins.s3 import S3Server

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    write_exports(tmp_path / "exports", [DAY], 5)
    bucket = f"exports-{uuid.uuid4().hex[:8]}"  # moto keeps buckets per process, across servers
    with S3Server() as s3:
        s3.create_bucket(bucket)
        s3.upload_folder(tmp_path / "exports", bucket)
        kwargs = s3.source_kwargs(bucket)
        del kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"]
        dest = DestinationConfig(kind="duckdb", duckdb_path=str(tmp_path / "w.duckdb"))
        error = _failure("s3_exports", ONE_DAY, dest, resource="orders_create", **kwargs)
    text = _assert_alert(error, dags, webhook, "s3_exports", "aws_credentials")
    assert "NoCredentialsError: Unable to locate credentials" in text


def _sql(dest: DestinationConfig, statement: str) -> None:
    db.query(dest.postgres_url, statement)


# -- quiet alerts: the streak rules (pure) -----------------------------------------------------


def test_streak_rules():
    from datetime import datetime, timezone

    from signalroom.orchestration.alert_streaks import decide_failure, decide_success

    t0 = datetime(2025, 1, 6, 8, tzinfo=timezone.utc)
    window = timedelta(hours=1)

    def fail(streak, run, minutes, sig="load|api_auth|HTTPError|HTTPError"):
        return decide_failure(streak, signature=sig, summary="task `load`: HTTPError: 401", run_id=run,
                              now=t0 + timedelta(minutes=minutes), window=window)

    posts, s = fail(None, "r1", 0)
    assert [p.kind for p in posts] == ["alert"]
    assert fail(s, "r1", 1)[0] == []  # a second failed task of the same run: the run has its message
    posts, s = fail(s, "r2", 10)
    assert posts == [] and s.repeats == 1
    posts, s = fail(s, "r3", 70)  # the first repeat after the window: one follow-up, this one counted
    assert [(p.kind, p.count) for p in posts] == [("followup", 2)] and s.repeats == 0
    posts, s = fail(s, "r4", 75)
    posts, s = fail(s, "r5", 80, sig="load|duplicate_key|UniqueViolation|UniqueViolation")  # another error
    assert [(p.kind, p.count) for p in posts] == [("followup", 1), ("alert", 0)]
    assert s.failed_runs == 5 and s.first_failure == t0.isoformat()
    assert [(p.kind, p.failed_runs) for p in decide_success(s)] == [("recovered", 5)]
    assert decide_success(None) == []


def test_repeat_window_setting(monkeypatch):
    from signalroom.orchestration.alert_streaks import repeat_window

    monkeypatch.delenv("SIGNALROOM_ALERT_REPEAT_MINUTES", raising=False)
    assert repeat_window() == timedelta(hours=12)
    monkeypatch.setenv("SIGNALROOM_ALERT_REPEAT_MINUTES", "soon")
    with pytest.raises(ValueError, match=r"SIGNALROOM_ALERT_REPEAT_MINUTES='soon' is not a number of minutes"):
        repeat_window()
