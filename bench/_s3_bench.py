"""Shared set-up of the s3_exports benchmarks (P2, P4, P7): a private Airflow/dlt env,
a Postgres database, synthetic exports and the S3 stand-in. Not a benchmark itself."""

from __future__ import annotations

import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "include")]

from tools import localenv  # noqa: E402

BUCKET = "sticky-713-data-repo"
PREFIX = "orders-create"


def private_env(name: str) -> Path:
    """A throwaway AIRFLOW_HOME + DLT_DATA_DIR, set before anything imports Airflow or dlt."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    localenv.apply(tmp / "airflow", tmp / "dlt")
    return tmp


class Cpu:
    """CPU seconds of this process (+ children) and of a private Postgres cluster.

    Wall time on a shared 2-core machine swings with everyone else's load; CPU seconds of
    the work itself do not, so the benchmarks print both.
    """

    def __init__(self, postmaster_pid: int) -> None:
        import psutil

        self.postmaster = psutil.Process(postmaster_pid)

    def postgres(self) -> float:
        t = self.postmaster.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system  # exited backends
        for child in self.postmaster.children():
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except Exception:  # a backend that just exited is in children_* above
                pass
        return total

    @staticmethod
    def loader() -> float:
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def snapshot(self) -> tuple[float, float]:
        """(loader, postgres) CPU seconds; waits for closed backends to be reaped into the
        postmaster's children times first, or their CPU would be missed."""
        import time

        time.sleep(1.0)
        return self.loader(), self.postgres()


@contextmanager
def postgres_server() -> Iterator[tuple[Callable[[str], str], Cpu]]:
    """A private throwaway Postgres (so its CPU is ours alone): yields `new_database(name) -> url`
    and the CPU meter."""
    import psycopg2

    from tools.standins.postgres import start_throwaway

    server = start_throwaway()
    admin = psycopg2.connect(server.url())
    admin.autocommit = True
    # autovacuum of earlier rounds' tables would be counted as this round's CPU
    admin.cursor().execute("ALTER SYSTEM SET autovacuum = off")
    admin.cursor().execute("SELECT pg_reload_conf()")
    admin.close()

    def new_database(name: str) -> str:
        admin = psycopg2.connect(server.url())
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        admin.close()
        # dlt insists on a password; trust auth ignores it
        return server.url(name).replace(f"{server.user}@", f"{server.user}:trust@", 1)

    try:
        pid = int((server._proc_dir / "data" / "postmaster.pid").read_text().split()[0])
        yield new_database, Cpu(pid)
    finally:
        server.stop()


@contextmanager
def postgres_database() -> Iterator[tuple[str, Cpu]]:
    """One database on a private throwaway Postgres, and the CPU meter."""
    with postgres_server() as (new_database, cpu):
        yield new_database("bench"), cpu


def run_child(script: str, arg: str, env: dict[str, str]) -> dict:
    """`python -c script arg` in a fresh interpreter (its own peak memory, no warm imports) with
    `env` and BENCH_ROOT added; the JSON object its last stdout line holds."""
    import json
    import os
    import subprocess

    full_env = {**os.environ, "BENCH_ROOT": str(ROOT), **env}
    out = subprocess.run([sys.executable, "-c", script, arg], env=full_env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def copy_baseline(url: str, files: list[Path], columns: list[str]) -> tuple[float, int]:
    """(seconds, rows) for Postgres `COPY` of `files` into one plain all-text table (the P2 yardstick)."""
    import time

    import psycopg2

    conn = psycopg2.connect(url)
    cols = ", ".join(f'"{c}" text' for c in columns)
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE copy_baseline ({cols})")
    started = time.perf_counter()
    with conn, conn.cursor() as cur:
        for path in files:
            with path.open("rb") as f:
                cur.copy_expert("COPY copy_baseline FROM STDIN WITH (FORMAT csv, HEADER true)", f)
    seconds = time.perf_counter() - started
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM copy_baseline")
        rows = cur.fetchone()[0]
    conn.close()
    return seconds, rows
