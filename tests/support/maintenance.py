"""Shared by the maintenance, state and plugin tests: real RedTrack loads against the loopback
API stand-in into real Postgres, through the load task's code path (`run_load`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from signalroom.destinations import DestinationConfig, data_dir
from signalroom.pipeline import Window, build_source, make_pipeline, run_load
from tests.support import db
from tests.support.db import with_password
from tools.standins.api import ApiStandin

ROOT = Path(__file__).resolve().parents[2]
SOURCE, RESOURCE, PIPELINE, DAG_ID = "redtrack", "daily_spend", "redtrack__daily_spend", "signalroom_redtrack"
KEY = "rt-maintenance-key"
INTERVAL = 0.06  # seconds between requests; the stand-in's limit is set to 0.05


def start_standin() -> ApiStandin:
    server = ApiStandin(redtrack_key=KEY).start()
    server.rate_limit_interval = 0.05
    return server


def source_kwargs(standin: ApiStandin) -> dict[str, Any]:
    return {"api_key": KEY, "base_url": standin.url, "request_interval": INTERVAL}


def postgres(url: str) -> DestinationConfig:
    return DestinationConfig(kind="postgres", postgres_url=with_password(url))


def load(standin: ApiStandin, destination: DestinationConfig, end: date) -> dict[str, Any]:
    """A scheduled-style run up to `end` (look-back from the cursor), as the load task runs it."""
    return run_load(SOURCE, RESOURCE, Window(end=end), destination, source_kwargs=source_kwargs(standin))


def extract(standin: ApiStandin, destination: DestinationConfig, end: date, normalize: bool) -> None:
    """Extract (and normalize) a window without loading it: what a crash between steps leaves."""
    pipeline = make_pipeline(SOURCE, RESOURCE, destination)
    pipeline.extract(build_source(SOURCE, RESOURCE, Window(end=end), source_kwargs(standin)))
    if normalize:
        pipeline.normalize()


def expected_keys(standin: ApiStandin, day: date) -> int:
    """Rows the stand-in serves for `day` that the source keeps (non-empty source id)."""
    return len({r["source_id"] for r in standin.redtrack_rows(day) if r["source_id"]})


def warehouse_connection(url: str) -> dict[str, str]:
    """AIRFLOW_CONN_SIGNALROOM_WAREHOUSE for a Postgres URL (Airflow's env secrets backend)."""
    return db.warehouse_connection_env(url)


def rows(url: str, sql: str) -> list[tuple]:
    return db.query(with_password(url), sql)


KILLED_LOAD = """
import sys
from datetime import date
from signalroom.destinations import DestinationConfig
from signalroom.pipeline import Window, run_load

url, end, key, base = sys.argv[1:5]
run_load("redtrack", "daily_spend", Window(end=date.fromisoformat(end)),
         DestinationConfig(kind="postgres", postgres_url=url),
         source_kwargs={"api_key": key, "base_url": base, "request_interval": 0.06})
"""


def kill_load_midway(standin, destination, end: date) -> str:
    """Run a load in a child process and SIGKILL it after some of its jobs committed.

    A lock on the target table holds the merge job; the staging insert (and usually the state
    row) complete meanwhile, so the package is partially loaded when the process dies.
    """
    import psycopg2

    package_root = data_dir() / "pipelines" / PIPELINE / "load" / "normalized"
    lock = psycopg2.connect(destination.postgres_url)
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE redtrack.daily_spend IN ACCESS EXCLUSIVE MODE")
        child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)])}
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_LOAD, destination.postgres_url, end.isoformat(), KEY, standin.url],
            env=child_env,
        )
        deadline = time.monotonic() + 120
        # the staging insert and the state row done: only the merge, held by the lock, is in flight
        while len(list(package_root.glob("*/completed_jobs/*"))) < 2:
            assert child.poll() is None, "the load ended before it could be killed"
            assert time.monotonic() < deadline, "two jobs did not complete within 120 s"
            time.sleep(0.05)
        child.kill()
        child.wait()
        return next(package_root.glob("*/completed_jobs/*")).parent.parent.name
    finally:
        lock.rollback()
        lock.close()
