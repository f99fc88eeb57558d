"""The runbook's first step under real Airflow services: a failed load task is cleared through
the public REST API (the endpoint the UI's Clear button calls) and its rerun succeeds.

One stack for the module: api-server (REST + execution API), scheduler (LocalExecutor),
dag-processor (parses the bundle, runs DAG callbacks) and triggerer (runs deadline callbacks),
on the session's metadata DB, with the deadline alert on (it is off for in-process runs). The
scheduled run of signalroom_redtrack meets a 401 from the API stand-in and fails; its deadline
is set to pass a little after that; then the task is cleared and reruns against a healthy API.

Proves: clearing answers 200 with the bundle's deadline (a queued-at deadline answered 500,
apache/airflow#70368); the missed deadline of the failed run reaches the triggerer and posts
nothing; the failure posts exactly one message (task alert, run callback silent); the rerun's
success posts one "recovered" line (after the first load's schema notice).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.dagrun import ET, airflow_scheduler, forget_runs
from tools.localenv import airflow_connection_env
from tools.standins.postgres import free_port
from tools.standins.webhook import WebhookReceiver

pytestmark = pytest.mark.slow

DAG_ID = "signalroom_redtrack"
LOAD = "daily_spend.load"


def _deadline_et(lead: timedelta) -> str:
    """An ET HH:MM at least `lead` from now: the scheduled run's deadline lands on it today."""
    moment = datetime.now(ET) + lead + timedelta(minutes=1)
    return moment.strftime("%H:%M")


def _token(base: str) -> str:
    home = Path(os.environ["AIRFLOW_HOME"])
    passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
    resp = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": passwords["admin"]})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()["access_token"]


def _wait(what: str, probe, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(every)


def _posts(hook: WebhookReceiver) -> list[str]:
    """This DAG's messages. The stack runs on the session's metadata DB: runs other tests left
    there (e.g. a backfill's last runs) may finish under this scheduler and post their own."""
    return [text for text in hook.texts() if f"*{DAG_ID}*" in text]


def _deadline_rows(run_id: str) -> list[tuple[bool, str | None]]:
    """(missed, callback state) of the run's deadlines, from the metadata DB."""
    from airflow.models import DagRun
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(Deadline).join(DagRun, Deadline.dagrun_id == DagRun.id)
            .where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id)
        ).scalars().all()
        return [(d.missed, str(getattr(d.callback, "state", None))) for d in rows]


def _deadline_serialized() -> bool:
    """The DAG's newest serialized version carries the deadline (the dag-processor parsed it
    with the deadline on): only then may the scheduler create the run, or it gets none. Other
    tests of this worker may have stored the DAG before, without one (dag.test)."""
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        newest = session.scalar(
            select(SerializedDagModel.id).where(SerializedDagModel.dag_id == DAG_ID)
            .order_by(SerializedDagModel.created_at.desc()).limit(1)
        )
        return newest is not None and session.scalar(
            select(DeadlineAlertModel.id).where(DeadlineAlertModel.serialized_dag_id == newest).limit(1)
        ) is not None


@pytest.fixture(scope="module")
def cleared(dagrun_world, tmp_path_factory):
    """Run the whole story once; return what each step saw."""
    world = dagrun_world
    database = world.database()
    dlt_dir = world.root / "dlt-clearing"
    dlt_dir.mkdir()
    logs = tmp_path_factory.mktemp("clearing-services")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    seen: dict = {"base": base}
    with WebhookReceiver() as hook:
        env = {
            **world.env(database, dlt_dir),
            **airflow_connection_env("signalroom_slack", hook.connection()),
            "SIGNALROOM_TASK_RETRIES": "0",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }
        forget_runs(DAG_ID)
        with airflow_scheduler(env, logs, apps="all", port=port,
                               services=("dag-processor", "triggerer", "scheduler")) as start:
            world.api.fail_next(1, status=401, api="redtrack")  # the first load try fails
            deadline_et = _deadline_et(timedelta(minutes=2))
            start(SIGNALROOM_DEADLINE_ET=deadline_et)
            headers = {"Authorization": f"Bearer {_token(base)}"}
            api = httpx.Client(base_url=f"{base}/api/v2", headers=headers, timeout=30)
            _wait("the DAG parsed", lambda: api.get(f"/dags/{DAG_ID}").status_code == 200, 180)
            _wait("the DAG parsed with its deadline", _deadline_serialized, 180)
            assert api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200

            def run(state: str):
                runs = api.get(f"/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
                return next((r for r in runs if r["run_type"] == "scheduled" and r["state"] == state), None)

            failed = _wait("the scheduled run failed", lambda: run("failed"), 240)
            run_id = failed["dag_run_id"]
            seen["run_id"] = run_id
            seen["deadline_et"] = deadline_et
            seen["failed_at"] = datetime.now(ET)
            # the deadline passes after the failure; the triggerer runs its callback
            seen["deadlines"] = _wait(
                "the failed run's deadline was missed and its callback ran",
                lambda: (rows := _deadline_rows(run_id)) and all(m and "success" in s for m, s in rows) and rows,
                300, every=5,
            )
            time.sleep(3)  # a post would have arrived by now (the callback ran)
            seen["posts_after_failure"] = _posts(hook)

            resp = api.post(f"/dags/{DAG_ID}/clearTaskInstances", json={
                "dry_run": False, "dag_run_id": run_id, "task_ids": [LOAD],
                "include_downstream": True, "only_failed": False, "reset_dag_runs": True,
            })
            seen["clear_status"], seen["clear_body"] = resp.status_code, resp.text
            if resp.status_code == 200:
                seen["rerun"] = _wait(
                    "the cleared run succeeded",
                    lambda: (r := api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json())["state"] in ("success", "failed")
                    and r, 300,
                )
                tis = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{LOAD}").json()
                seen["load_try"] = tis.get("try_number")
                _wait("the recovery line", lambda: any(t.startswith(":large_green_circle:") for t in _posts(hook)), 90)
                time.sleep(3)  # anything posted after it would arrive by now
            seen["posts"] = _posts(hook)
            with contextlib.suppress(httpx.HTTPError):
                api.patch(f"/dags/{DAG_ID}", json={"is_paused": True})
    return seen


def test_failed_run_posts_one_alert_and_no_deadline_alert(cleared):
    posts = cleared["posts_after_failure"]
    assert len(posts) == 1, posts
    assert posts[0].startswith(f":red_circle: *{DAG_ID}* task `{LOAD}` failed"), posts[0]
    assert "hint [api_auth]" in posts[0]
    assert f"\nlog: {cleared['base']}/dags/{DAG_ID}/runs/" in posts[0]  # links built on [api] base_url
    assert not [p for p in posts if p.startswith(":alarm_clock:")]
    # the deadline did pass and its callback did run, in the triggerer: it chose silence
    assert cleared["deadlines"] and all(missed for missed, _ in cleared["deadlines"])


def test_clearing_through_the_rest_api_reruns_the_task(cleared):
    assert cleared["clear_status"] == 200, cleared["clear_body"]
    assert LOAD in cleared["clear_body"]
    assert cleared["rerun"]["state"] == "success"
    assert cleared["load_try"] == 2


def test_the_rerun_posts_one_recovery_line(cleared):
    posts = cleared["posts"]
    # the alert; the rerun's load (the first into this database: a schema notice); the recovery
    assert len(posts) == 3, posts
    assert posts[1].startswith(f":large_blue_circle: *{DAG_ID}* schema change in `redtrack__daily_spend`")
    assert not [p for p in posts if p.startswith(":alarm_clock:")]
    assert posts[2].startswith(f":large_green_circle: *{DAG_ID}* recovered: run `{cleared['run_id']}` succeeded "
                               "after 1 failed run")
