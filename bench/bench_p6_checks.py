"""P6: all health checks of one run, with a long history vs an empty one (target ratio <= 2).

Two Postgres databases receive the same two real dlt loads of a small merge resource
(everflow-sized: 25 rows a day, 3-day look-back) through `signalroom.pipeline.run_load`;
the history database also gets, between the two loads, `--loads` (100k) rows in `_dlt_loads`,
`--rows` (1M) rows in the table (dates over 3 years, a load id each) and one state row per
history load in `_dlt_pipeline_state`, all older than the measured run, then ANALYZE (what
autovacuum does). Then every check task of the run — `check_indexes`, the six resource
checks (volume included) and the three dataset checks, as built by the DAG factory — is executed, `--rounds`
times alternating between the databases, and the medians compared.

Printed as well: the one-off index build on the history database (first run after this
lands) and the same checks on the history database without the indexes, which is what the
indexes buy.

    .venv/bin/python bench/bench_p6_checks.py [--loads 100000] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "include")]
from tools import localenv  # noqa: E402

SOURCE = "bench_p6"
DAY = date.today() - timedelta(days=1)


def bench_source(start_date, end_date, backfill, lookback_days, client_id="713", **_):
    import dlt

    first = start_date or end_date - timedelta(days=lookback_days - 1)

    @dlt.resource(name="daily", primary_key=("date", "id"), write_disposition="merge")
    def daily():
        if not backfill:
            dlt.current.resource_state()["last_day"] = end_date.isoformat()
        yield [
            {"date": first + timedelta(days=d), "id": i, "amount": float(i), "_client_id": client_id}
            for d in range((end_date - first).days + 1)
            for i in range(25)
        ]

    @dlt.source(name=SOURCE)
    def source():
        return daily

    return source()


def _spec():
    from signalroom.registry import ResourceSpec, SourceSpec

    return SourceSpec(
        name=SOURCE, ref="bench_p6_checks:bench_source", description="P6 benchmark", lookback_days=3,
        resources=(ResourceSpec("daily", table="daily", primary_key=("date", "id"), date_column="date"),),
    )


@contextlib.contextmanager
def quiet():
    """Task logs to /dev/null while timing (they are the same in both databases)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)


def _use(url: str) -> None:
    parts = urlsplit(url)
    os.environ["AIRFLOW_CONN_SIGNALROOM_WAREHOUSE"] = json.dumps({
        "conn_type": "postgres", "host": parts.hostname, "port": parts.port or 5432,
        "login": parts.username or "postgres", "password": parts.password or "unused",
        "schema": parts.path.lstrip("/"),
    })


def _load(url: str, end: date) -> dict:
    from signalroom.orchestration.connections import warehouse_destination
    from signalroom.pipeline import Window, run_load

    _use(url)
    with quiet():
        return run_load(SOURCE, "daily", Window(end=end), warehouse_destination())


def _add_history(url: str, loads: int, rows: int, before: float) -> float:
    """History strictly older than the measured run; returns seconds spent."""
    import psycopg2

    started = time.perf_counter()
    span = 3 * 365 * 86400
    first_ts = before - span
    days = 3 * 365
    per_day = max(1, rows // days)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            f"""INSERT INTO {SOURCE}._dlt_loads (load_id, schema_name, status, inserted_at, schema_version_hash)
            SELECT to_char({first_ts} + i * {span / loads}, 'FM0000000000.000000'), %s, 0,
                   to_timestamp({first_ts} + i * {span / loads} + 5), 'h'
            FROM generate_series(0, {loads - 1}) AS i""",
            (SOURCE,),
        )
        cur.execute(
            f"""INSERT INTO {SOURCE}._dlt_pipeline_state
                (version, engine_version, pipeline_name, state, created_at, version_hash, _dlt_load_id, _dlt_id)
            SELECT -{loads} + i, s.engine_version,
                   CASE WHEN i % 3 = 0 THEN s.pipeline_name ELSE 'other_' || (i % 3) END,
                   s.state, to_timestamp({first_ts} + i * {span / loads}), 'h',
                   to_char({first_ts} + i * {span / loads}, 'FM0000000000.000000'), md5(i::text)
            FROM generate_series(0, {loads - 1}) AS i,
                 (SELECT * FROM {SOURCE}._dlt_pipeline_state LIMIT 1) AS s""",
        )
        # row k: day k / per_day of the 3 years, written by the first history load of the next day
        cur.execute(
            f"""INSERT INTO {SOURCE}.daily (date, id, amount, _client_id, _dlt_load_id, _dlt_id)
            SELECT DATE '{(date.fromtimestamp(first_ts)).isoformat()}' + (k / {per_day})::int,
                   1000 + k % {per_day}, k, '713',
                   to_char({first_ts} + i * {span / loads}, 'FM0000000000.000000'),
                   md5('r' || k::text)
            FROM generate_series(0, {rows - 1}) AS k,
                 LATERAL (SELECT LEAST({loads - 1},
                         ((k / {per_day} + 1) * 86400.0 * {loads} / {span})::bigint) AS i) AS l""",
        )
    with psycopg2.connect(url) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"ANALYZE {SOURCE}._dlt_loads; ANALYZE {SOURCE}._dlt_pipeline_state; ANALYZE {SOURCE}.daily")
    return time.perf_counter() - started


class _XCom:
    def __init__(self, summaries):
        self.summaries = summaries

    def xcom_pull(self, task_ids, key="return_value"):
        return self.summaries.get(task_ids)


def run_checks(dag, summary: dict, url: str, include_index_task: bool = True, per_task: dict | None = None) -> float:
    """Seconds for every check task of the run (what the DAG runs after `daily.load`)."""
    _use(url)
    context = {"ti": _XCom({"daily.load": summary})}
    checks = sorted(t for t in dag.task_dict if t.startswith(("daily.check_", "dag_checks.")))
    task_ids = [t for t in checks if include_index_task or not t.endswith(".check_indexes")]
    total = 0.0
    with quiet():
        for task_id in task_ids:
            started = time.perf_counter()
            dag.get_task(task_id).execute(context)
            elapsed = time.perf_counter() - started
            total += elapsed
            if per_task is not None:
                per_task.setdefault(task_id, []).append(elapsed)
    return total


def _with_password(url: str) -> str:
    """dlt's Postgres credentials want a password; a trust-auth test server ignores it."""
    parts = urlsplit(url)
    if parts.password:
        return url
    return url.replace(f"//{parts.username}@", f"//{parts.username}:unused@", 1)


def _drop_indexes(url: str) -> None:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT schemaname, indexname FROM pg_indexes WHERE indexname LIKE 'sr\\_%'")
        for schema, name in cur.fetchall():
            cur.execute(f'DROP INDEX "{schema}"."{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-p6-"))
    localenv.apply(tmp / "airflow", tmp / "dlt")
    sys.modules.setdefault("bench_p6_checks", sys.modules[__name__])  # the registry ref's module
    import psycopg2

    from signalroom import registry
    from signalroom.orchestration.factory import build_dag
    from tools.standins.postgres import find_or_start

    spec = _spec()
    registry.REGISTRY[SOURCE] = spec
    server = find_or_start()
    names = {kind: f"bench_p6_{kind}_{uuid.uuid4().hex[:6]}" for kind in ("empty", "history")}
    admin = psycopg2.connect(server.url())
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'CREATE DATABASE "{name}"')
        urls = {kind: _with_password(server.url(name)) for kind, name in names.items()}
        summaries, extra = {}, {}
        for kind, url in urls.items():
            os.environ["DLT_DATA_DIR"] = str(tmp / f"dlt_{kind}")  # a pipeline folder per warehouse
            _load(url, DAY - timedelta(days=1))  # creates the tables: the previous run
            if kind == "history":
                extra["history_seconds"] = _add_history(url, args.loads, args.rows, before=time.time() - 60)
            summaries[kind] = _load(url, DAY)  # the measured run
        dag = build_dag(spec)

        # first run after the checks land: the indexes get built (one-off)
        extra["index_build_history"] = run_checks(dag, summaries["history"], urls["history"])
        extra["index_build_empty"] = run_checks(dag, summaries["empty"], urls["empty"])
        times: dict[str, list[float]] = {"empty": [], "history": []}
        per_task: dict[str, dict] = {"empty": {}, "history": {}}
        for _ in range(args.rounds):
            for kind in ("empty", "history"):
                times[kind].append(run_checks(dag, summaries[kind], urls[kind], per_task=per_task[kind]))
        _drop_indexes(urls["history"])
        no_index = [run_checks(dag, summaries["history"], urls["history"], include_index_task=False)
                    for _ in range(3)]
    finally:
        with admin.cursor() as cur:
            for name in names.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        server.stop()

    empty, history, bare = (statistics.median(v) for v in (times["empty"], times["history"], no_index))
    print(f"P6 health checks of one run ({len([t for t in dag.task_dict if 'check' in t])} tasks), "
          f"median of {args.rounds} rounds")
    print(f"  history: {args.loads:,} rows in _dlt_loads, {args.rows:,} rows in the table, "
          f"{args.loads:,} state rows (inserted in {extra['history_seconds']:.1f} s)")
    print(f"  empty history          : {empty * 1000:8.1f} ms")
    print(f"  long history, indexed  : {history * 1000:8.1f} ms")
    print(f"  long history, no index : {bare * 1000:8.1f} ms   (ratio {bare / empty:.2f}, what the indexes buy)")
    print(f"  one-off first run (builds the indexes): {extra['index_build_history'] * 1000:.0f} ms with history,"
          f" {extra['index_build_empty'] * 1000:.0f} ms empty")
    print("  per task, median ms      empty   history")
    for task_id in sorted(per_task["empty"]):
        e, h = (statistics.median(per_task[k][task_id]) * 1000 for k in ("empty", "history"))
        print(f"    {task_id:30} {e:7.1f} {h:9.1f}")
    ratio = history / empty
    print(f"P6 ratio (long history / empty history) = {ratio:.2f}  (target <= 2.0) -> "
          f"{'OK' if ratio <= 2.0 else 'OVER TARGET'}")
    if ratio > 2.0:
        sys.exit(1)


if __name__ == "__main__":
    main()
