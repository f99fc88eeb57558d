"""Backfill strategies: one form run over N days vs N one-day runs (what `airflow backfill
create` makes: one run per daily interval), for the everflow DAG.

Both go through Airflow (dag.test, in-process, every task including the health checks), dlt,
Postgres and the loopback API stand-in, into the same database. Baseline: N one-day runs;
candidate: one run with start_date..end_date over the same N days. Rounds alternate the two;
the ratio of the medians says how much faster the form is per backfilled range. The
scheduler's own latency between runs (seconds each) comes on top for real Airflow backfills.

    .venv/bin/python bench/bench_backfill.py [days] [rounds]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "include")]
from tools import localenv  # noqa: E402

FIRST_DAY = date(2025, 4, 1)


def main(days: int = 7, rounds: int = 3) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    localenv.apply(tmp / "airflow", tmp / "dlt")
    os.environ["SIGNALROOM_TASK_RETRIES"] = "0"
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

    import psycopg2

    from signalroom.orchestration.factory import build_dag
    from signalroom.registry import REGISTRY
    from tools.standins.api import ApiStandin
    from tools.standins.postgres import find_or_start

    server = find_or_start()
    database = f"bench_backfill_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(server.url())
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{database}"')
    api = ApiStandin().start()
    os.environ.update(localenv.airflow_connection_env("signalroom_warehouse", {
        "conn_type": "postgres", "host": server.host, "port": server.port, "login": server.user,
        "password": server.password or "trust", "schema": database,
    }))
    os.environ.update(localenv.airflow_connection_env("signalroom_everflow", {
        "conn_type": "http", "host": api.url, "password": api.everflow_key,
    }))
    dag = build_dag(REGISTRY["everflow"])
    span = [FIRST_DAY + timedelta(days=i) for i in range(days)]

    def run(start: date, end: date) -> None:
        dag_run = dag.test(run_conf={"start_date": start.isoformat(), "end_date": end.isoformat()})
        if str(dag_run.state) != "success":
            raise SystemExit(f"run {start}..{end} ended {dag_run.state}")

    def daily() -> float:
        started = time.perf_counter()
        for day in span:
            run(day, day)
        return time.perf_counter() - started

    def one_range() -> float:
        started = time.perf_counter()
        run(span[0], span[-1])
        return time.perf_counter() - started

    try:
        run(span[0], span[0])  # warm-up: bundle sync, in-process execution API, first dlt import
        baseline, candidate, requests = [], [], {}
        for n in range(rounds):
            for name, fn, out in (("daily", daily, baseline), ("range", one_range, candidate))[:: 1 if n % 2 == 0 else -1]:
                api.reset_requests()
                out.append(fn())
                requests[name] = len(api.report_requests("everflow"))
        b, c = statistics.median(baseline), statistics.median(candidate)
        print(f"everflow backfill of {days} days, {rounds} rounds (median seconds):")
        print(f"  baseline  {days} one-day runs : {b:7.2f} s  ({b / days:.2f} s per day, "
              f"{requests['daily']} API requests)")
        print(f"  candidate 1 run of {days} days: {c:7.2f} s  ({requests['range']} API request(s))")
        print(f"  ratio baseline/candidate     : {b / c:7.2f}x")
    finally:
        api.stop()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
        server.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
