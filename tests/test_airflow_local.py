"""`make airflow` (tools/airflow_local.py) as a user runs it: the services come up, the printed
login gets a REST API token, a DAG triggered through the API loads from the stand-ins and
succeeds, and Ctrl-C stops everything it started (no orphan process)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tools.standins.postgres import free_port

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "signalroom_redtrack"
pytestmark = pytest.mark.slow


def _request(method: str, url: str, token: str | None = None, body: dict | None = None) -> dict:
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def _wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float, seen: list[str]) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"no line matching {pattern!r}:\n{''.join(seen)[-3000:]}")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_make_airflow_runs_a_dag_through_the_rest_api_and_stops_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("AIRFLOW_HOME", "DLT_DATA_DIR", "PYTHONPATH")}
    env.update({"SIGNALROOM_DEMO_DIR": str(tmp_path / "demo"), "SIGNALROOM_AIRFLOW_PORT": str(free_port())})
    proc = subprocess.Popen([sys.executable, "-m", "tools.airflow_local"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: list[str] = []
    started: list[psutil.Process] = []
    try:
        match = _wait_for_line(proc, r"Airflow UI: (http://\S+)\s+login: (\S+) / (\S+)", 300, seen)
        url, user, password = match.groups()
        started = _descendants(proc.pid)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        # the api-server renames its process ("airflow api_server -- host:…")
        for service in ("api.server", "scheduler", "dag-processor", "triggerer"):
            assert re.search(rf"airflow {service}", names), names

        token = _request("POST", f"{url}/auth/token", body={"username": user, "password": password})["access_token"]
        deadline = time.monotonic() + 240
        while True:  # the dag-processor registers the DAGs shortly after start
            try:
                _request("GET", f"{url}/api/v2/dags/{DAG_ID}", token)
                break
            except urllib.error.HTTPError as exc:
                assert exc.code == 404 and time.monotonic() < deadline, f"{DAG_ID} never appeared"
                time.sleep(3)
        _request("PATCH", f"{url}/api/v2/dags/{DAG_ID}", token, {"is_paused": False})
        run = _request("POST", f"{url}/api/v2/dags/{DAG_ID}/dagRuns", token, {"logical_date": None})
        run_url = f"{url}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"
        deadline = time.monotonic() + 420
        state = run["state"]
        while state not in ("success", "failed") and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(seen)[-3000:]
            time.sleep(3)
            state = _request("GET", run_url, token)["state"]
        tasks = _request("GET", f"{run_url}/taskInstances", token)["task_instances"]
        assert state == "success", {t["task_id"]: t["state"] for t in tasks}
        loads = [t for t in tasks if t["task_id"].endswith(".load")]
        assert loads and all(t["state"] == "success" for t in loads)
    finally:
        started = list({p.pid: p for p in started + _descendants(proc.pid)}.values())
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            rest, _ = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        seen.append(rest or "")
    assert proc.returncode == 0, "".join(seen)[-3000:]
    assert "[airflow] stopped" in "".join(seen)
    _, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], [" ".join(p.cmdline()) for p in alive]
