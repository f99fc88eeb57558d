"""A distributed Airflow for the tests, started once per session: Postgres metadata (a fresh
database on the test server), Redis on a free loopback port, api-server, scheduler,
dag-processor and two Celery workers, each worker with its own empty `DLT_DATA_DIR` and its own
task-log folder (nothing shared between them but the broker and the databases).

The same settings as the compose `celery` profile (docker-compose.yaml): CeleryExecutor, Redis
broker, Postgres result backend, the execution API of the api-server. Test-only differences:
short heartbeat timeouts (a SIGKILLed worker's task is retried within seconds, not minutes),
short retry delays, scheduled runs off (the tests trigger every run), and the crash barrier
(tests/support/crashpoints) on the workers' PYTHONPATH.

The test process talks to the stack like a user: Airflow's REST API (trigger, connections,
task instances) and the task log files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CRASHPOINTS = Path(__file__).resolve().parent / "crashpoints"
CRASH_MATRIX = "crash-matrix.txt"  # tests/test_celery.py's table, printed in pytest's summary (conftest)
TERMINAL = ("success", "failed")


def stack_env(*, meta_url: str, redis_url: str, api_port: int, home: Path) -> dict[str, str]:
    """What every service of the stack shares (the compose `celery` profile sets the same keys)."""
    from tools.localenv import airflow_env

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(airflow_env(home, home / "dlt-unused"))
    sqla = meta_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqla,
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta_url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs the tests trigger
        # a SIGKILLed worker's task is retried ~20 s later; heartbeats every 2 s leave room for a
        # busy 2-core machine (a live task must never look dead)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "SIGNALROOM_TASK_RETRIES": "2",
        "SIGNALROOM_TASK_RETRY_DELAY": "2",
        "SIGNALROOM_TEST_WORKERS": "celery",
    })
    return env


@dataclass
class Worker:
    """One Celery worker: its own working folder, task logs, crash-barrier folder."""

    name: str
    root: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def dlt_dir(self) -> Path:
        return self.root / "dlt"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def crash_dir(self) -> Path:
        return self.root / "crash"

    def start(self) -> None:
        for folder in (self.dlt_dir, self.log_dir, self.crash_dir):
            folder.mkdir(parents=True, exist_ok=True)
        from tools.standins.postgres import free_port

        env = {
            **self.env,
            "DLT_DATA_DIR": str(self.dlt_dir),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_dir),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "SIGNALROOM_CRASH_DIR": str(self.crash_dir),
            # only the crash barrier: the DAG files put their bundle's include/ on the path
            "PYTHONPATH": os.pathsep.join(p for p in (str(CRASHPOINTS), self.env.get("PYTHONPATH")) if p),
        }
        out = (self.root / "worker.log").open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "celery", "worker", "-H", f"{self.name}@%h",
             "-c", "2", "--without-gossip", "--without-mingle", "-q", "default"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker and every process under it, as a lost machine: the task process
        too (Airflow's supervisor puts it in a process group of its own)."""
        import psutil

        if self.proc is None:
            return
        try:
            tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        psutil.wait_procs(tree, timeout=10)
        self.proc = None

    def task_pids(self) -> list[int]:
        import psutil

        return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)] if self.proc else []

    def pause(self) -> None:
        """Stop taking tasks (SIGSTOP the Celery main process; its idle pool waits).

        Waits out the broker poll it may have issued just before (kombu's BRPOP times out after
        1 s): a message arriving meanwhile would go to this stopped process and wait there."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        time.sleep(2.5)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def hold(self, pipeline: str, point: str) -> None:
        """Make the next load of `pipeline` wait at `point` (e.g. "start-normalize")."""
        (self.crash_dir / f"reached.{pipeline}.{point}").unlink(missing_ok=True)
        (self.crash_dir / f"hold.{pipeline}.{point}").touch()

    def reached(self, pipeline: str, point: str) -> bool:
        return (self.crash_dir / f"reached.{pipeline}.{point}").exists()

    def unhold(self, pipeline: str, point: str) -> None:
        (self.crash_dir / f"hold.{pipeline}.{point}").unlink(missing_ok=True)

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> dict[int, str]:
        """try number -> that try's task log, for the tries this worker ran."""
        folder = self.log_dir / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return {int(p.stem.split("=")[1]): p.read_text(errors="replace") for p in folder.glob("attempt=*.log")}


@dataclass
class CeleryStack:
    root: Path
    env: dict[str, str]
    api_port: int
    meta_url: str
    workers: list[Worker] = field(default_factory=list)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    # -- lifecycle --------------------------------------------------------------------------

    def _spawn(self, name: str, *argv: str) -> subprocess.Popen:
        out = (self.root / f"{name}.log").open("a")
        proc = subprocess.Popen([sys.executable, "-m", "airflow", *argv], env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self, worker_count: int = 2) -> None:
        migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=self.env,
                                 capture_output=True, text=True)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-3000:]}")
        api = self._spawn("api-server", "api-server", "-H", "127.0.0.1", "-p", str(self.api_port))
        self._spawn("dag-processor", "dag-processor")
        for i in range(worker_count):
            worker = Worker(f"worker{i + 1}", self.root / f"worker{i + 1}", self.env)
            worker.start()
            self.workers.append(worker)
        self._wait_api(api, timeout=240)
        self._spawn("scheduler", "scheduler")
        self.wait_dags(timeout=240)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.proc is not None:
                try:
                    os.kill(worker.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            worker.kill()
        for proc in reversed(list(self.procs.values())):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _wait_api(self, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"api-server exited: {(self.root / 'api-server.log').read_text()[-3000:]}")
            try:
                self.api("GET", "/api/v2/version")
                return
            except (OSError, RuntimeError):
                time.sleep(1)
        raise RuntimeError(f"api-server did not answer within {timeout:.0f} s")

    def wait_dags(self, timeout: float) -> None:
        """Until the dag-processor has serialized every SignalRoom DAG."""
        from signalroom.registry import REGISTRY

        wanted = {f"signalroom_{name}" for name in REGISTRY} | {"signalroom_maintenance"}
        deadline = time.monotonic() + timeout
        while True:
            dags = {d["dag_id"] for d in self.api("GET", "/api/v2/dags?limit=100")["dags"]}
            if wanted <= dags:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAGs not parsed in {timeout:.0f} s: missing {sorted(wanted - dags)}")
            time.sleep(1)

    # -- REST API ---------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode()[:2000]}") from exc
        return json.loads(text) if text else None

    def set_connection(self, conn_id: str, conn: dict[str, Any]) -> None:
        body = {"connection_id": conn_id, **{k: v for k, v in conn.items() if k != "extra"}}
        if "extra" in conn:
            body["extra"] = json.dumps(conn["extra"])
        self.delete_connection(conn_id)
        self.api("POST", "/api/v2/connections", body)

    def delete_connection(self, conn_id: str) -> None:
        try:
            self.api("DELETE", f"/api/v2/connections/{conn_id}")
        except RuntimeError as exc:
            if "HTTP 404" not in str(exc):
                raise

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{dag_id} {run_id} still {state} after {timeout:.0f} s: "
                                     f"{self.task_instances(dag_id, run_id)}")
            time.sleep(1)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return {ti["task_id"]: ti for ti in tis["task_instances"]}

    def wait_task(self, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...],
                  timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            ti = self.task_instances(dag_id, run_id).get(task_id, {})
            if ti.get("state") in states:
                return ti
            if time.monotonic() > deadline:
                raise AssertionError(f"{task_id} of {run_id} not in {states} after {timeout:.0f} s: {ti}")
            time.sleep(0.5)

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> dict[int, tuple[str, str]]:
        """try number -> (worker name, log text), gathered from every worker's own log folder."""
        found = {}
        for worker in self.workers:
            for try_number, text in worker.task_logs(dag_id, run_id, task_id).items():
                found[try_number] = (worker.name, text)
        return found


def start_stack(root: Path, postgres_server: Any) -> CeleryStack:
    """Create the metadata database, start Redis and every service; the caller stops both."""
    import psycopg2

    from tools.standins.postgres import free_port

    meta_db = f"sr_airflow_meta_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_server.url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{meta_db}"')
    admin.close()
    root.mkdir(parents=True, exist_ok=True)
    api_port = free_port()
    from tools.standins.redis import start_redis

    redis = start_redis()
    env = stack_env(meta_url=postgres_server.url(meta_db), redis_url=redis.url(), api_port=api_port,
                    home=root / "airflow-home")
    stack = CeleryStack(root, env, api_port, postgres_server.url(meta_db))
    stack.redis = redis  # type: ignore[attr-defined]
    stack.meta_db = meta_db  # type: ignore[attr-defined]
    try:
        stack.start()
    except BaseException:
        stack.stop()
        redis.stop()
        raise
    return stack


def crash_matrix_path(tmp_path_factory: Any) -> Path:
    """Where the crash matrix is written: the run's own base temp folder (under xdist, the
    controller's, one level above this worker's), where conftest's summary hook finds it."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / CRASH_MATRIX
