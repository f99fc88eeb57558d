"""Harness for the tests that run whole generated DAGs (test_backfill, test_idempotency).

Everything is real: Airflow runs the DAG (dag.test, or a scheduler in test_backfill), dlt
loads into a Postgres database of the test server, Everflow/RedTrack answer from the
loopback stand-in and the exports from moto's S3 server. The environment a run needs
(Airflow connections, dlt working folder) is set only while it runs, so other test modules
never see it.

`dag_scenarios` runs each source's DAG once per session through the same sequence and keeps
what every step left behind, so the backfill and the idempotency tests assert on shared runs:

    cursor  : a run without dates (cursor + look-back, up to yesterday ET)
    cursor2 : the same again
    backfill: start_date/end_date = BACKFILL_DAYS (old days; for s3_exports their files are
              uploaded only now, with one more day outside the range)
    backfill2: the same again
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from signalroom.registry import REGISTRY, pipeline_name
from tests.support import api, db
from tools.airflow_services import wait_http

ET = ZoneInfo("America/New_York")
BACKFILL_DAYS = (date(2025, 6, 2), date(2025, 6, 3))
OUTSIDE_DAY = date(2025, 6, 4)  # an export uploaded with the backfill's files, outside its range
EXPORT_ROWS = 40
EXPORT_PREFIXES = ("orders-create", "orders-update")  # prospects-create stays empty, as it may
STEPS = ("cursor", "cursor2", "backfill", "backfill2")
IGNORED_COLUMNS = ("_dlt_load_id", "_dlt_id")  # differ per load by design
# the health checks (issue 4, tested in test_checks*) change no table: these in-process runs
# mark them successful instead of running them; the scheduler test in test_backfill runs them
CHECK_TASKS = r"(\.check_|^dag_checks\.)"


def yesterday_et() -> date:
    return datetime.now(ET).date() - timedelta(days=1)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# ----------------------------------------------------------------------------- the world


@dataclass
class World:
    """Stand-ins and a Postgres server shared by every DAG run of the session."""

    postgres: Any
    api: Any
    s3: Any
    bucket: str
    root: Path
    export_dir: Path
    databases: list[str] = field(default_factory=list)

    def database(self) -> str:
        """A fresh database on the test server; returns its name."""
        name = db.create_database(self.postgres.url(), prefix="sr_dagrun")
        self.databases.append(name)
        return name

    def drop_databases(self) -> None:
        db.drop_databases(self.postgres.url(), self.databases)

    def url(self, database: str) -> str:
        return self.postgres.url(database)

    def env(self, database: str, dlt_dir: Path) -> dict[str, str]:
        """Airflow connections (env secrets backend) and the dlt working folder of a run."""
        from tools.localenv import airflow_connection_env
        from tools.standins.api import ApiStandin  # noqa: F401 - keys below are its defaults
        from tools.standins.s3 import ACCESS_KEY, REGION, SECRET_KEY

        env = {"DLT_DATA_DIR": str(dlt_dir)}
        env.update(airflow_connection_env("signalroom_warehouse", {
            "conn_type": "postgres", "host": self.postgres.host, "port": self.postgres.port,
            "login": self.postgres.user, "password": self.postgres.password or "trust", "schema": database,
        }))
        for source, key in (("everflow", self.api.everflow_key), ("redtrack", self.api.redtrack_key)):
            env.update(airflow_connection_env(f"signalroom_{source}", {
                "conn_type": "http", "host": self.api.url, "password": key,
            }))
        env.update(airflow_connection_env("signalroom_s3", {
            "conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
            "extra": {"bucket_url": f"s3://{self.bucket}", "endpoint_url": self.s3.endpoint_url,
                      "region_name": REGION},
        }))
        return env

    @contextmanager
    def using(self, database: str, dlt_dir: Path) -> Iterator[None]:
        """Set a run's environment in this process (dag.test runs tasks in-process)."""
        env = self.env(database, dlt_dir)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def upload_exports(self, export_days: list[date]) -> list[str]:
        """One synthetic export per prefix and day; returns the bucket keys."""
        from tools.standins.exports import export_name, write_export

        keys = []
        for prefix in EXPORT_PREFIXES:
            for day in export_days:
                key = f"{prefix}/{day.year}/{export_name(day, prefix)}"
                path = write_export(self.export_dir / key, day, EXPORT_ROWS)
                self.s3.put(self.bucket, key, path.read_bytes())
                keys.append(key)
        self.s3.put(self.bucket, "prospects-create/.keep", b"")  # an empty prefix folder
        return keys


@pytest.fixture(scope="session")
def dagrun_world(airflow_db, postgres_server, tmp_path_factory) -> Iterator[World]:
    from tools.standins.api import ApiStandin
    from tools.standins.s3 import S3Server

    root = tmp_path_factory.mktemp("dagruns")
    with ApiStandin() as api, S3Server() as s3:
        bucket = f"exports-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(bucket)
        world = World(postgres_server, api, s3, bucket, root, root / "exports")
        # recent exports the cursor runs find (the API stand-ins serve every day already)
        yesterday = yesterday_et()
        world.upload_exports([yesterday - timedelta(days=1), yesterday])
        try:
            yield world
        finally:
            world.drop_databases()


# ------------------------------------------------------------------ what a run leaves behind


def table_dumps(url: str, dataset: str) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
    """Every data table of a dataset: (columns, sorted rows), dlt's per-load ids left out."""
    from psycopg2 import sql

    tables = db.query(
        url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_dlt%%' ORDER BY 1",
        (dataset,),
    )
    out = {}
    for (table,) in tables:
        names = db.query(
            url,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s ORDER BY column_name",
            (dataset, table),
        )
        columns = tuple(name for (name,) in names if name not in IGNORED_COLUMNS)
        select = sql.SQL("SELECT {} FROM {}.{}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(dataset), sql.Identifier(table)
        )
        out[table] = (columns, sorted(db.query(url, select), key=repr))
    return out


def destination_state(url: str, dataset: str, pipeline: str) -> dict[str, Any]:
    """The newest state row of a successful load: what a fresh worker restores."""
    return db.destination_state(url, dataset, pipeline)


def local_state(dlt_dir: Path, pipeline: str) -> dict[str, Any]:
    """The state in the pipeline's working folder, JSON-normalised to compare across runs."""
    return json.loads(json.dumps(api.local_state(pipeline, dlt_dir), default=str))


def resource_state(state: dict[str, Any], source: str, resource: str) -> dict[str, Any]:
    return state.get(source, {}).get("resources", {}).get(resource, {})


def cursor_of(state: dict[str, Any], source: str, resource: str) -> Any:
    """What decides the next scheduled run: the date cursor, or the tracked files."""
    res = resource_state(state, source, resource)
    if "files" in res:
        return {path: (f.get("size"), f.get("rows")) for path, f in res["files"].items()}
    return res.get("incremental", {}).get("date", {}).get("last_value")


def asset_events_of(dag_id: str, run_id: str) -> list[tuple[str, str, dict, tuple[str, ...]]]:
    """The asset events a DAG run emitted, from Airflow's metadata DB (read in the process that
    ran it: under xdist each worker has its own metadata DB)."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
            .order_by(AssetEvent.id)
        ).all()
        return [
            (e.asset.uri, e.source_task_id, dict(e.extra or {}), tuple(sorted(a.name for a in e.source_aliases)))
            for e in events
        ]


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@dataclass
class Step:
    """What one DAG run left: task states, tables, state (destination and local), requests."""

    conf: dict
    states: dict[str, str]
    tables: dict[str, Any]
    dest_state: dict[str, Any]
    local_state: dict[str, Any]
    api_days: list[tuple[date, date]] = field(default_factory=list)
    files_read: set[str] = field(default_factory=set)
    run_id: str = ""
    # (asset URI, source task, event extra, aliases) of every asset event the run emitted
    asset_events: list[tuple[str, str, dict, tuple[str, ...]]] = field(default_factory=list)


@dataclass
class Scenario:
    source: str
    database: str
    url: str
    dlt_dir: Path
    steps: dict[str, Step]

    def dated_rows(self, step: str, resource: str) -> dict[date, int]:
        """Rows per business date in a resource's table after a step."""
        spec = REGISTRY[self.source]
        res = spec.resource(resource)
        columns, rows = self.steps[step].tables.get(res.table, ((), []))
        if not columns:
            return {}
        index = columns.index(res.date_column)
        counts: dict[date, int] = {}
        for row in rows:
            counts[row[index]] = counts.get(row[index], 0) + 1
        return counts


class Scenarios:
    """Runs a source's sequence on first use and keeps it for every later assertion.

    Under pytest-xdist each worker has its own session: the first worker to need a source
    runs it and leaves a pickle in the run's shared temp folder (under a file lock), the
    others read it, so the runs happen once per test session whatever the distribution."""

    def __init__(self, world: World, shared_dir: Path | None = None) -> None:
        self.world = world
        self.shared_dir = shared_dir
        self._done: dict[str, Scenario] = {}
        self._dags: dict[str, Any] = {}

    def __getitem__(self, source: str) -> Scenario:
        if source not in self._done:
            self._done[source] = self._shared(source)
        return self._done[source]

    def _shared(self, source: str) -> Scenario:
        if self.shared_dir is None:
            return self._run(source)
        import fcntl
        import pickle

        path = self.shared_dir / f"dag-scenario-{source}.pickle"
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if path.exists():
                return pickle.loads(path.read_bytes())
            scenario = self._run(source)
            path.write_bytes(pickle.dumps(scenario))
            return scenario

    def _dag(self, source: str) -> Any:
        from signalroom.orchestration.factory import build_dag

        if source not in self._dags:
            self._dags[source] = build_dag(REGISTRY[source])
        return self._dags[source]

    def _run(self, source: str) -> Scenario:
        world, spec = self.world, REGISTRY[source]
        database = world.database()
        url = world.url(database)
        dlt_dir = world.root / f"dlt-{source}"
        dlt_dir.mkdir()
        scenario = Scenario(source, database, url, dlt_dir, {})
        backfill_conf = {"start_date": BACKFILL_DAYS[0].isoformat(), "end_date": BACKFILL_DAYS[-1].isoformat()}
        for name in STEPS:
            conf = backfill_conf if name.startswith("backfill") else {}
            if name == "backfill" and source == "s3_exports":
                world.upload_exports([*BACKFILL_DAYS, OUTSIDE_DAY])
            world.api.reset_requests()
            world.s3.reset_reads()
            with world.using(database, dlt_dir):
                dag_run = self._dag(source).test(run_conf=conf, mark_success_pattern=CHECK_TASKS)
            pipelines = [pipeline_name(source, r) for r in spec.resource_names]
            scenario.steps[name] = Step(
                conf=conf,
                states=task_states(dag_run),
                tables=table_dumps(url, spec.dataset_name),
                dest_state={p: destination_state(url, spec.dataset_name, p) for p in pipelines},
                local_state={p: local_state(dlt_dir, p) for p in pipelines},
                api_days=[r.day_range for r in world.api.report_requests(source) if r.status == 200],
                files_read={k.removeprefix(f"{world.bucket}/") for k in world.s3.reads()},
                run_id=dag_run.run_id,
                asset_events=asset_events_of(dag_run.dag_id, dag_run.run_id),
            )
        return scenario


@pytest.fixture(scope="session")
def dag_scenarios(dagrun_world, tmp_path_factory) -> Scenarios:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    # the run's basetemp is shared by its xdist workers (each has a subfolder of it)
    shared = tmp_path_factory.getbasetemp().parent if worker else None
    return Scenarios(dagrun_world, shared)


# ------------------------------------------------------------------ a real scheduler


def forget_runs(*dag_ids: str) -> None:
    """Delete the runs (and their task instances) and alert streaks that earlier tests of this
    worker's session left for `dag_ids` in the shared metadata DB: a real scheduler creates no
    scheduled run for a logical date that already has one, and a streak left by another test's
    failure would change this test's alert texts."""
    from airflow.models import DagRun
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    from signalroom.orchestration.alert_streaks import variable_key

    with create_session() as session:
        session.execute(delete(DagRun).where(DagRun.dag_id.in_(dag_ids)))
        session.execute(delete(Variable).where(Variable.key.in_([variable_key(d) for d in dag_ids])))


def airflow_cli(*argv: str) -> None:
    """Run an `airflow …` command in this process (the CLI's own code; no 10 s interpreter start)."""
    from airflow.cli import cli_parser

    args = cli_parser.get_parser().parse_args(list(argv))
    args.func(args)


@contextmanager
def airflow_scheduler(
    env: dict[str, str], log_dir: Path, *, apps: str = "execution", services: tuple[str, ...] = ("scheduler",),
    port: int | None = None,
) -> Iterator[Any]:
    """A real scheduler (LocalExecutor, 2 workers) on the session's metadata DB and the
    execution API its task processes report to; stopped (their process groups) on exit.

    The API server starts at once (it takes the longest); the body prepares the runs, then
    calls the yielded `start(**env)` to start the scheduler (and any other `services`, e.g.
    "dag-processor", "triggerer", with `env` added) once the API answers. `apps="all"` serves
    the public REST API and UI too (on `port`)."""
    import signal
    import subprocess
    import sys

    from tools.standins.postgres import free_port

    port = port or free_port()
    env = {
        **os.environ,
        **env,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",  # a 2-core machine under load
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []

    def spawn(name: str, *argv: str) -> subprocess.Popen:
        out = (log_dir / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", *argv], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: its workers are stopped with it
        )
        procs.append(proc)
        return proc

    def start(**more_env: str) -> None:
        wait_http(f"http://127.0.0.1:{port}/execution/health", 180, api)
        env.update(more_env)
        for service in services:
            spawn(service, service)

    try:
        api = spawn("api-server", "api-server", "--apps", apps, "-H", "127.0.0.1", "-p", str(port))
        yield start
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            try:  # task workers left in its group (they may ignore SIGTERM)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
