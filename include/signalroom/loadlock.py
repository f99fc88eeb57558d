"""One load of a pipeline at a time, whichever DAG (daily, intraday, backfill) or CLI runs it.

Airflow's `max_active_tis_per_dag` serialises a load task within one DAG only; the intraday DAG
of a source loads the same pipelines. The lock lives where both runs meet: a transaction-level
advisory lock in the Postgres warehouse, taken in a transaction the loading process keeps open
on its own connection for the whole load (released when it ends, or when the process dies; a
transaction also pins the server connection behind a transaction-mode pooler such as
Supabase's, where a session-level lock would stay behind on a pooled connection), or a file
lock beside the DuckDB file (one host).

`wait=False` (intraday): take it or give up at once — the daily run has priority and the next
hour catches up. `wait=True` (daily, backfill): wait up to `timeout` seconds for the intraday
load to finish.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from signalroom.destinations import DestinationConfig, data_dir


class PipelineBusyError(RuntimeError):
    """Another load of the same pipeline holds the lock."""


def _key(pipeline: str) -> int:
    """A stable signed 64-bit advisory-lock key for a pipeline name."""
    return int.from_bytes(hashlib.sha1(f"signalroom:{pipeline}".encode()).digest()[:8], "big", signed=True)


def _busy(pipeline: str, waited: float) -> PipelineBusyError:
    return PipelineBusyError(
        f"another load of pipeline {pipeline!r} is running (the daily or the intraday run of its "
        f"source); waited {waited:.0f} s. It finishes on its own: rerun this task afterwards"
    )


@contextmanager
def _postgres_lock(url: str, pipeline: str, wait: bool, timeout: float, poll: float) -> Iterator[None]:
    import psycopg2  # the Postgres driver dlt uses; only when a load runs

    conn = psycopg2.connect(url)  # not autocommit: the transaction holds the lock
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (_key(pipeline),))
                if cur.fetchone()[0]:
                    break
                if not wait or time.monotonic() - started >= timeout:
                    raise _busy(pipeline, time.monotonic() - started)
                time.sleep(poll)
        yield
    finally:
        conn.close()  # ends the transaction (rolled back, nothing was written): the lock goes with it


@contextmanager
def _file_lock(path: Path, pipeline: str, wait: bool, timeout: float, poll: float) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or time.monotonic() - started >= timeout:
                    raise _busy(pipeline, time.monotonic() - started) from None
                time.sleep(poll)
        yield  # released when the file closes (or the process dies)


def pipeline_lock(
    destination: DestinationConfig, pipeline: str, *, wait: bool, timeout: float = 1800, poll: float = 2.0
):
    """Context manager: hold the pipeline's load lock; PipelineBusyError if it cannot be had."""
    if destination.kind == "postgres" and destination.postgres_url:
        return _postgres_lock(destination.postgres_url, pipeline, wait, timeout, poll)
    base = Path(destination.duckdb_path) if destination.duckdb_path else data_dir() / "warehouse.duckdb"
    return _file_lock(base.parent / f".{base.name}.{pipeline}.lock", pipeline, wait, timeout, poll)
