"""The plugin in a real Airflow API server on loopback: its endpoints answer with a valid token
and refuse without one, and its page, opened in headless Chromium, shows the cursors.

One API server per module (it takes a while to start); the state it shows comes from a real
RedTrack load (loopback API stand-in) into Postgres, through the load task's code path.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import httpx
import pytest

from signalroom.registry import registered_pipelines
from tests.support.api import with_password
from tests.support.headless import find_chromium, open_page
from tests.support.maintenance import (
    PIPELINE,
    RESOURCE,
    SOURCE,
    load,
    postgres,
    start_standin,
    warehouse_connection,
)
from tools.standins.postgres import free_port

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / ".artifacts" / "state-page.png"
COMPLETENESS_SCREENSHOT = ROOT / ".artifacts" / "completeness-page.png"
PREFIX = "/signalroom"


@pytest.fixture(scope="module")
def warehouse_url(postgres_server):
    """An empty database for this module (dropped afterwards)."""
    import psycopg2

    name = f"sr_plugin_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_server.url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield with_password(postgres_server.url(name))
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def started_server(airflow_db, warehouse_url, tmp_path_factory):
    """`airflow api-server` on a free loopback port, with the warehouse connection in its env.

    Started before the data is loaded (it takes longest); `api_server` waits for it.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "api-server.log"
    env = {**os.environ, **warehouse_connection(warehouse_url)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group we started (server + workers)
            proc.wait()


@pytest.fixture(scope="module")
def warehouse(started_server, warehouse_url, tmp_path_factory):
    """One real RedTrack load into the module's database; its URL and the load summary."""
    standin = start_standin()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DLT_DATA_DIR", str(tmp_path_factory.mktemp("dlt")))
            summary = load(standin, postgres(warehouse_url), date(2025, 4, 2))
    finally:
        standin.stop()
    return warehouse_url, summary


@pytest.fixture(scope="module")
def api_server(started_server, warehouse):
    base, proc, log = started_server
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, f"api-server exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"api-server not up in 180 s:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                return base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


@pytest.fixture(scope="module")
def token(api_server):
    home = Path(os.environ["AIRFLOW_HOME"])
    passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
    resp = httpx.post(f"{api_server}/auth/token", json={"username": "admin", "password": passwords["admin"]})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()["access_token"]


PATHS = [f"{PREFIX}/api/pipelines", f"{PREFIX}/api/pipelines/{PIPELINE}", f"{PREFIX}/?dag_id=signalroom_redtrack",
         f"{PREFIX}/api/completeness", f"{PREFIX}/completeness?dag_id=signalroom_redtrack"]


@pytest.mark.parametrize("path", PATHS)
def test_refuses_without_a_valid_token(api_server, path):
    assert httpx.get(api_server + path).status_code == 401
    bad = httpx.get(api_server + path, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code in (401, 403)
    forged = httpx.get(api_server + path, cookies={"_token": "eyJhbGciOiJIUzUxMiJ9.e30.x"})
    assert forged.status_code in (401, 403)


def test_lists_the_registered_pipelines(api_server, token):
    resp = httpx.get(f"{api_server}{PREFIX}/api/pipelines", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    rows = resp.json()["pipelines"]
    assert [r["pipeline"] for r in rows] == list(registered_pipelines())
    assert {r["dag_id"] for r in rows if r["source"] == "redtrack"} == {"signalroom_redtrack"}


def test_one_pipeline_state_is_the_shared_code_path(api_server, token, warehouse):
    from signalroom.state import read_pipeline_state

    url, summary = warehouse
    auth = {"Authorization": f"Bearer {token}"}
    resp = httpx.get(f"{api_server}{PREFIX}/api/pipelines/{PIPELINE}", headers=auth, timeout=60)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    same = read_pipeline_state(PIPELINE, postgres(url)).to_dict()
    assert body == json.loads(json.dumps(same))
    cursor = body["resources"][0]["cursors"][0]
    assert cursor["last_value"] == summary["cursor_after"]["incremental.date"]["last_value"] == "2025-04-02"
    assert body["last_load"]["load_id"] == summary["load_ids"][-1]
    assert "trust" not in resp.text  # the connection's password never leaves the server
    assert httpx.get(f"{api_server}{PREFIX}/api/pipelines/nope__x", headers=auth).status_code == 404
    # read-only: nothing but GET
    assert httpx.post(f"{api_server}{PREFIX}/api/pipelines/{PIPELINE}", headers=auth).status_code == 405


def test_plugin_registers_the_app_and_its_links(api_server, token):
    auth = {"Authorization": f"Bearer {token}"}
    plugins = httpx.get(f"{api_server}/api/v2/plugins", headers=auth).json()["plugins"]
    [ours] = [p for p in plugins if p["name"] == "signalroom"]
    assert [a["url_prefix"] for a in ours["fastapi_apps"]] == [PREFIX]
    views = {(v["destination"], v["name"]): v for v in ours["external_views"]}
    assert views["nav", "Pipeline state"]["href"] == "signalroom/" and views["nav", "Pipeline state"]["url_route"]
    assert views["dag", "Pipeline state"]["href"] == "signalroom/?dag_id={DAG_ID}"
    assert views["nav", "Completeness"]["href"] == "signalroom/completeness"
    assert views["dag", "Completeness"]["href"] == "signalroom/completeness?dag_id={DAG_ID}"
    errors = httpx.get(f"{api_server}/api/v2/plugins/importErrors", headers=auth).json()
    assert errors["total_entries"] == 0, errors


def test_page_in_headless_chromium_shows_the_cursors(api_server, token, warehouse):
    if find_chromium() is None:  # like conftest.require: never a silent skip under CI
        reason = "chromium not installed: run scripts/system-deps.sh"
        pytest.fail(reason) if os.environ.get("CI", "").lower() == "true" else pytest.skip(reason)
    _, summary = warehouse
    url = f"{api_server}{PREFIX}/?dag_id=signalroom_redtrack"
    cookie = {"name": "_token", "value": token, "url": api_server + "/"}  # what the UI's login sets

    page = open_page(url, cookies=[cookie])
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(page.screenshot)
    assert page.status == 200, page.text
    assert f"sources.{SOURCE}.resources.{RESOURCE}.incremental.date" in page.text
    assert "2025-04-02" in page.text and "loaded" in page.text and PIPELINE in page.text
    assert page.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(page.screenshot) > 5000

    refused = open_page(url)  # no cookie: Airflow's auth answers, not the page
    assert refused.status == 401 and "Not authenticated" in refused.text
    assert "2025-04-02" not in refused.text


# the RedTrack load above: 2025-04-02 and its 3-day look-back (03-31 .. 04-02); seen as of 04-03
COMPLETENESS_QUERY = "days=5&end=2025-04-03"
EXPECTED_DAYS = {"2025-04-03": "missing", "2025-04-02": "provisional", "2025-04-01": "provisional",
                 "2025-03-31": "final", "2025-03-30": "missing"}


def test_completeness_api(api_server, token, warehouse):
    from signalroom.completeness import read_completeness

    url, summary = warehouse
    auth = {"Authorization": f"Bearer {token}"}
    resp = httpx.get(f"{api_server}{PREFIX}/api/completeness?source=redtrack&{COMPLETENESS_QUERY}",
                     headers=auth, timeout=60)
    assert resp.status_code == 200, resp.text
    [resource] = resp.json()["resources"]
    assert resource["pipeline"] == PIPELINE and resource["error"] is None
    assert {d["day"]: d["status"] for d in resource["days"]} == EXPECTED_DAYS
    assert sum(d["rows"] for d in resource["days"]) == summary["rows"]["daily_spend"]
    # the same code path as the CLI
    [same] = read_completeness(["redtrack"], postgres(url), 5, date(2025, 4, 3))
    assert resource == json.loads(json.dumps(same.to_dict()))
    everything = httpx.get(f"{api_server}{PREFIX}/api/completeness?{COMPLETENESS_QUERY}", headers=auth, timeout=60)
    assert {r["source"] for r in everything.json()["resources"]} == {"everflow", "redtrack", "s3_exports"}
    assert httpx.get(f"{api_server}{PREFIX}/api/completeness?source=nope", headers=auth).status_code == 404
    assert httpx.get(f"{api_server}{PREFIX}/api/completeness?days=0", headers=auth).status_code == 422


def test_completeness_page_in_headless_chromium(api_server, token, warehouse):
    if find_chromium() is None:
        reason = "chromium not installed: run scripts/system-deps.sh"
        pytest.fail(reason) if os.environ.get("CI", "").lower() == "true" else pytest.skip(reason)
    url = f"{api_server}{PREFIX}/completeness?dag_id=signalroom_redtrack&{COMPLETENESS_QUERY}"
    cookie = {"name": "_token", "value": token, "url": api_server + "/"}
    page = open_page(url, cookies=[cookie])
    COMPLETENESS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    COMPLETENESS_SCREENSHOT.write_bytes(page.screenshot)
    assert page.status == 200, page.text
    for day, status in EXPECTED_DAYS.items():  # the rendered text: day, rows, status per row
        assert re.search(rf"{day}\t\d+\n{status}\b", page.text), (day, status, page.text)
    assert "everflow__daily_stats" not in page.text  # one DAG's page
    assert page.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(page.screenshot) > 5000
    across = open_page(f"{api_server}{PREFIX}/completeness?{COMPLETENESS_QUERY}", cookies=[cookie])
    assert across.status == 200 and "everflow__daily_stats" in across.text and PIPELINE in across.text
    one = open_page(f"{api_server}{PREFIX}/completeness?pipeline=s3_exports__orders_update&{COMPLETENESS_QUERY}",
                    cookies=[cookie])
    assert one.status == 200 and "s3_exports__orders_update" in one.text and PIPELINE not in one.text
    assert "s3_exports__orders_create" not in one.text
    assert open_page(url).status == 401
