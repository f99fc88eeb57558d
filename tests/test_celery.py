"""The bundle on a distributed Airflow: CeleryExecutor with two workers that share no disk
(each its own empty DLT_DATA_DIR and task-log folder), a scheduler, a dag-processor and the
api-server, Postgres metadata, Redis broker, a Postgres warehouse (a throwaway server the tests
can restart). The stack starts once, for this module (tests/support/celery.py).

Crash matrix: a load of signalroom_redtrack is broken at each crash point; Airflow retries it
(retries=2 here), on the same worker or the other, and the run succeeds with no person acting.
Each crash run is compared with a clean run of the same DAG: full table dumps, duplicate
keys, orphan rows, the cursor the destination stores.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.celery import CeleryStack, Worker, crash_matrix_path, start_stack
from tests.support.dagrun import EXPORT_PREFIXES, cursor_of, table_dumps, yesterday_et

pytestmark = pytest.mark.celery

DAG_ID, PIPELINE, LOAD = "signalroom_redtrack", "redtrack__daily_spend", "daily_spend.load"
WARM_UP = (date(2025, 5, 1), date(2025, 5, 2))  # a backfill first: the table exists, no cursor yet
ORPHANS = """SELECT count(*) FROM redtrack.daily_spend t
             LEFT JOIN redtrack._dlt_loads l ON l.load_id = t._dlt_load_id WHERE l.load_id IS NULL"""
DUPLICATES = """SELECT count(*) FROM (SELECT date, source_id FROM redtrack.daily_spend
                GROUP BY 1, 2 HAVING count(*) > 1) d"""
MATRIX: list[dict[str, Any]] = []  # rows printed at the end of the module


@dataclass
class World:
    stack: CeleryStack
    warehouse: Any  # throwaway PostgresServer (restartable)
    api: Any
    s3: Any
    bucket: str
    root: Path

    def new_warehouse(self) -> str:
        """A fresh warehouse database, made the `signalroom_warehouse` connection; its URL."""
        import psycopg2

        name = f"sr_celery_{uuid.uuid4().hex[:8]}"
        admin = psycopg2.connect(self.warehouse.url())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        self.stack.set_connection("signalroom_warehouse", {
            "conn_type": "postgres", "host": self.warehouse.host, "port": self.warehouse.port,
            "login": self.warehouse.user, "password": "trust", "schema": name,
        })
        return self.warehouse.url(name)

    def warm_up(self, url: str) -> None:
        """A backfill of two old days through `run_load`, in a folder of this test process."""
        from signalroom.destinations import DestinationConfig
        from signalroom.pipeline import Window, run_load

        saved = os.environ.get("DLT_DATA_DIR")
        os.environ["DLT_DATA_DIR"] = str(self.root / f"warm-up-{uuid.uuid4().hex[:6]}")
        try:
            run_load("redtrack", "daily_spend", Window(start=WARM_UP[0], end=WARM_UP[1], backfill=True),
                     DestinationConfig(kind="postgres", postgres_url=url),
                     source_kwargs={"api_key": self.api.redtrack_key, "base_url": self.api.url,
                                    "request_interval": 0.06})
        finally:
            if saved is None:
                os.environ.pop("DLT_DATA_DIR", None)
            else:
                os.environ["DLT_DATA_DIR"] = saved


@pytest.fixture(scope="module")
def world(postgres_server, tmp_path_factory) -> Iterator[World]:
    from tools.standins.api import ApiStandin
    from tools.standins.exports import export_name, write_export
    from tools.standins.postgres import start_throwaway
    from tools.standins.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server

    root = tmp_path_factory.mktemp("celery")
    warehouse = start_throwaway()
    api = ApiStandin().start()
    api.rate_limit_interval = 0.05
    s3 = S3Server().start()
    stack = None
    try:
        bucket = f"exports-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(bucket)
        yesterday = yesterday_et()
        for prefix in EXPORT_PREFIXES:
            for day in (yesterday - timedelta(days=1), yesterday):
                key = f"{prefix}/{day.year}/{export_name(day, prefix)}"
                path = write_export(root / "exports" / key, day, 40)
                s3.put(bucket, key, path.read_bytes())
        stack = start_stack(root / "stack", postgres_server)
        stack.set_connection("signalroom_redtrack", {"conn_type": "http", "host": api.url,
                                                      "password": api.redtrack_key})
        stack.set_connection("signalroom_s3", {
            "conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
            "extra": {"bucket_url": f"s3://{bucket}", "endpoint_url": s3.endpoint_url, "region_name": REGION},
        })
        yield World(stack, warehouse, api, s3, bucket, root)
    finally:
        if stack is not None:
            stack.stop()
            stack.redis.stop()
        s3.stop()
        api.stop()
        warehouse.stop()
        _print_matrix(tmp_path_factory)


def query(url: str, sql: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def load_worker(stack: CeleryStack, run_id: str, try_number: int, timeout: float = 120) -> Worker:
    """The worker running (or that ran) a try of the load task: its log folder has the try's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in stack.workers:
            if try_number in worker.task_logs(DAG_ID, run_id, LOAD):
                return worker
        time.sleep(0.2)
    raise AssertionError(f"no worker started try {try_number} of {LOAD} in {run_id}")


def wait_until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def completed_jobs(worker: Worker) -> list[Path]:
    return list((worker.dlt_dir / "pipelines" / PIPELINE / "load" / "normalized").glob("*/completed_jobs/*"))


# ------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def clean(world) -> dict[str, Any]:
    """The reference runs, nothing broken: the warm-up, then signalroom_redtrack and
    signalroom_s3_exports at the same time on the two workers."""
    stack = world.stack
    url = world.new_warehouse()
    world.warm_up(url)
    runs = {dag: stack.trigger(dag) for dag in ("signalroom_s3_exports", DAG_ID)}
    states = {dag: stack.wait_run(dag, run_id) for dag, run_id in runs.items()}
    return {"dump": table_dumps(url, "redtrack"), "cursor": stored_cursor(url), "url": url,
            "runs": runs, "states": states}


def stored_cursor(url: str) -> Any:
    """The cursor a worker with an empty folder restores (dlt: the state row of the newest
    successful load): where the next scheduled run starts."""
    from dlt.common.versioned_state import decompress_state

    rows = query(url, "SELECT s.state FROM redtrack._dlt_pipeline_state s JOIN redtrack._dlt_loads l "
                      "ON l.load_id = s._dlt_load_id WHERE s.pipeline_name = 'redtrack__daily_spend' "
                      "AND l.status = 0 ORDER BY l.load_id DESC LIMIT 1")
    state = decompress_state(rows[0][0]).get("sources", {}) if rows else {}
    return cursor_of(state, "redtrack", "daily_spend")


def test_redtrack_and_s3_exports_runs_succeed_on_two_workers_without_shared_disk(world, clean):
    stack, url = world.stack, clean["url"]
    for dag, run_id in clean["runs"].items():
        assert clean["states"][dag] == "success", stack.task_instances(dag, run_id)
    assert clean["dump"]["daily_spend"][1] and clean["cursor"]  # rows and a cursor, from empty folders
    for table in ("orders_create", "orders_update"):
        assert query(url, f"SELECT count(*) FROM s3_exports.{table}")[0][0] == 80
    for worker in stack.workers:  # nothing of the warehouse on a worker: state lives in the destination
        assert not list(worker.dlt_dir.rglob("*.duckdb"))


def crash_run(world: World, clean: dict, point: str, retry_on: str) -> dict[str, Any]:
    """Trigger the DAG, break its load at `point`, let Airflow retry it on the `retry_on`
    worker ("same" or "other"), and compare the outcome with the clean run."""
    stack = world.stack
    url = world.new_warehouse()
    world.warm_up(url)
    lock = None
    if point == "extract":
        world.api.hold_after("redtrack", 1)  # the first day is read, the second request waits
    elif point == "normalize":
        for worker in stack.workers:
            worker.hold(PIPELINE, "start-normalize")
    elif point in ("load", "warehouse restart"):
        import psycopg2

        lock = psycopg2.connect(url)  # holds the merge job; staging and state jobs complete
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE redtrack.daily_spend IN ACCESS EXCLUSIVE MODE")
    run_id = stack.trigger(DAG_ID)
    first = load_worker(stack, run_id, 1)
    others = [w for w in stack.workers if w is not first]
    killed = point != "warehouse restart"
    try:
        if point == "extract":
            wait_until(world.api.holding.is_set, "the held RedTrack request")
        elif point == "normalize":
            wait_until(lambda: first.reached(PIPELINE, "start-normalize"), "normalize")
        else:  # the staging insert and the state row are in; the merge waits for the lock
            wait_until(lambda: len(completed_jobs(first)) >= 2, "two completed load jobs")
        if point == "warehouse restart":  # the merge is still waiting for the lock
            world.warehouse.restart(down_seconds=8)  # longer than dlt's own job retries
            lock = None  # its session ended with the server
        else:
            first.kill()
    finally:
        world.api.release()
        for worker in stack.workers:
            worker.unhold(PIPELINE, "start-normalize")
        if lock is not None:
            lock.rollback()
            lock.close()
    if killed and retry_on == "same":
        for worker in others:
            worker.pause()
        first.start()
        try:
            retry_worker = load_worker(stack, run_id, 2, timeout=180)
        finally:
            for worker in others:
                worker.resume()
    elif killed:
        retry_worker = load_worker(stack, run_id, 2, timeout=180)
        first.start()
    state = stack.wait_run(DAG_ID, run_id, timeout=300)
    tis = stack.task_instances(DAG_ID, run_id)
    logs = stack.task_logs(DAG_ID, run_id, LOAD)
    tries = tis[LOAD]["try_number"]
    if not killed:
        retry_worker = next(w for w in stack.workers if w.name == logs[tries][0])
    last_log = logs[tries][1]
    healed = [line for line in last_log.splitlines() if "healed:" in line]
    dump = table_dumps(url, "redtrack")
    cursor_after = stored_cursor(url)
    row = {
        "crash point": point,
        "try 1 on": first.name,
        "retry on": f"{retry_worker.name} ({'same' if retry_worker is first else 'other'})",
        "retries used": tries - 1,
        "run": state,
        "rows equal": dump == clean["dump"],
        "duplicate keys": query(url, DUPLICATES)[0][0],
        "orphans": query(url, ORPHANS)[0][0],
        "cursor equal": cursor_after is not None and cursor_after == clean["cursor"],
        "human action": "none",
        "healed": _healed_text(healed),
    }
    MATRIX.append(row)
    row["_tis"] = {k: (v["state"], v["try_number"]) for k, v in tis.items()}
    row["_log"] = last_log
    row["_state"] = (cursor_after, clean["cursor"], query(
        url, "SELECT s._dlt_load_id, s.version, l.status FROM redtrack._dlt_pipeline_state s "
             "LEFT JOIN redtrack._dlt_loads l ON l.load_id = s._dlt_load_id ORDER BY 1"))
    return row


def _healed_text(lines: list[str]) -> str:
    if not lines:
        return "-"
    text = lines[-1].split("healed: ", 1)[1]
    text = text.split('"', 1)[0]
    return text[:120]


def assert_healed(row: dict[str, Any], retry_on: str) -> None:
    assert row["run"] == "success", row["_tis"]
    assert row["retries used"] >= 1, row
    assert row["retry on"].endswith(f"({retry_on})"), row
    assert row["rows equal"] and row["cursor equal"], (row, row["_state"])
    assert row["duplicate keys"] == 0 and row["orphans"] == 0, row
    assert all(state == "success" for state, _ in row["_tis"].values()), row["_tis"]


def test_crash_during_extract_retry_on_the_other_worker(world, clean):
    row = crash_run(world, clean, "extract", "other")
    assert_healed(row, "other")
    assert row["healed"] == "-"  # an empty folder: nothing to heal, state from the destination


def test_crash_during_normalize_retry_on_the_same_worker(world, clean):
    row = crash_run(world, clean, "normalize", "same")
    assert_healed(row, "same")
    assert "dropped" in row["healed"] and "extracted only" in row["_log"], row["healed"]


def test_crash_during_load_with_jobs_done_retry_on_the_same_worker(world, clean):
    row = crash_run(world, clean, "load", "same")
    assert_healed(row, "same")
    assert "finished 1" in row["healed"], row["healed"]  # the partly loaded package, finished


def test_warehouse_restart_mid_load(world, clean):
    row = crash_run(world, clean, "warehouse restart", "any")
    assert row["run"] == "success", row["_tis"]
    assert row["retries used"] >= 1, row
    # the retry finishes the package on the same worker; on the other, its empty folder loads
    # the window from the destination's state (the package left behind is superseded later)
    same = row["retry on"].endswith("(same)")
    assert ("finished 1" in row["healed"]) if same else (row["healed"] == "-"), row
    assert row["rows equal"] and row["cursor equal"], (row, row["_state"], row["_log"][-6000:])
    assert row["duplicate keys"] == 0 and row["orphans"] == 0, row


# ------------------------------------------------------------------ fail closed, poison


def test_missing_warehouse_connection_fails_before_extract_without_duckdb(world):
    stack = world.stack
    stack.delete_connection("signalroom_warehouse")
    world.api.reset_requests()
    run_id = stack.trigger(DAG_ID)
    assert stack.wait_run(DAG_ID, run_id) == "failed"
    ti = stack.task_instances(DAG_ID, run_id)[LOAD]
    assert (ti["state"], ti["try_number"]) == ("failed", 1), ti  # no retry: retrying cannot create it
    (_, log), = stack.task_logs(DAG_ID, run_id, LOAD).values()
    assert "no Airflow connection 'signalroom_warehouse'" in log and "nothing was extracted" in log
    assert world.api.report_requests("redtrack") == []  # before extract
    for worker in stack.workers:
        assert not list(worker.dlt_dir.rglob("*.duckdb")), f"a DuckDB file on {worker.name}"


def test_poison_package_stops_without_retrying_and_maintenance_drop_unsticks(world, clean):
    stack = world.stack
    url = world.new_warehouse()
    world.warm_up(url)
    query_exec(url, "ALTER TABLE redtrack.daily_spend ADD CONSTRAINT no_rows CHECK (clicks < 0) NOT VALID")
    run_id = stack.trigger(DAG_ID)
    assert stack.wait_run(DAG_ID, run_id) == "failed"
    ti = stack.task_instances(DAG_ID, run_id)[LOAD]
    assert (ti["state"], ti["try_number"], ti["max_tries"]) == ("failed", 1, 2), ti
    (holder_name, log), = stack.task_logs(DAG_ID, run_id, LOAD).values()
    assert "poison load package" in log and PIPELINE in log and "signalroom_maintenance" in log
    load_id = log.split("poison load package ", 1)[1].split()[0]
    holder = next(w for w in stack.workers if w.name == holder_name)
    assert (holder.dlt_dir / "pipelines" / PIPELINE / "load" / "normalized" / load_id).exists()

    # the on-call fixes the cause, then drops the package on the worker holding it
    query_exec(url, "ALTER TABLE redtrack.daily_spend DROP CONSTRAINT no_rows")
    others = [w for w in stack.workers if w is not holder]
    for worker in others:
        worker.pause()
    try:
        drop = stack.trigger("signalroom_maintenance", {"pipeline": PIPELINE, "action": "drop",
                                                        "dry_run": False, "with_partial_loads": True})
        assert stack.wait_run("signalroom_maintenance", drop) == "success"
    finally:
        for worker in others:
            worker.resume()
    (_, drop_log), = stack.task_logs("signalroom_maintenance", drop, "pending_packages").values()
    assert f"dropped: {load_id}" in drop_log
    assert not (holder.dlt_dir / "pipelines" / PIPELINE / "load" / "normalized" / load_id).exists()

    rerun = stack.trigger(DAG_ID)
    assert stack.wait_run(DAG_ID, rerun) == "success", stack.task_instances(DAG_ID, rerun)
    assert table_dumps(url, "redtrack") == clean["dump"]
    assert query(url, ORPHANS)[0][0] == 0


def query_exec(url: str, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def test_both_workers_ran_load_tasks(world):
    """Each worker's own log folder holds load-task logs (the matrix forces tries on both)."""
    for worker in world.stack.workers:
        loads = list(worker.log_dir.glob("dag_id=*/run_id=*/task_id=*.load/attempt=*.log"))
        assert loads, f"{worker.name} ran no load task"
        assert any("summary " in p.read_text(errors="replace") for p in loads), worker.name


def _print_matrix(tmp_path_factory) -> None:
    if not MATRIX:
        return
    columns = ["crash point", "try 1 on", "retry on", "retries used", "run", "rows equal",
               "duplicate keys", "orphans", "cursor equal", "human action", "healed"]
    widths = [max(len(c), *(len(str(r[c])) for r in MATRIX)) for c in columns]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths, strict=True)) for r in MATRIX]
    text = "\n".join(["", "crash matrix (signalroom_redtrack, CeleryExecutor, 2 workers, no shared disk)",
                      *lines, ""])
    print(text)
    crash_matrix_path(tmp_path_factory).write_text(text)  # printed in pytest's terminal summary
    out = os.environ.get("SIGNALROOM_CRASH_MATRIX_OUT")
    if out:
        Path(out).write_text(text)
