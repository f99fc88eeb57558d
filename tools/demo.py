"""`make demo`: every registered source's DAG end to end through Airflow, then the reporting
models' DAGs (daily_performance) on what they loaded, with nothing external.

Everflow and RedTrack come from the loopback API stand-in, the S3 exports from synthetic CSVs
in a local folder (`file://`), the destination is a DuckDB file, Airflow's metadata a SQLite
file in `.airflow/`. Each DAG runs with `airflow dags test`; its output goes to
`.demo/logs/<dag_id>.log`. The summary at the end says what ran and what landed where.
Running it again loads nothing twice (merge keys and tracked files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from tools import localenv

ROOT = localenv.ROOT
# SIGNALROOM_DEMO_DIR moves all demo state (tests run the demo in a temp folder)
_DEMO_DIR = os.environ.get("SIGNALROOM_DEMO_DIR")
DEMO = Path(_DEMO_DIR) if _DEMO_DIR else ROOT / ".demo"
AIRFLOW_HOME = DEMO / "airflow" if _DEMO_DIR else ROOT / ".airflow"
DLT_DIR = DEMO / "dlt_data" if _DEMO_DIR else ROOT / ".dlt_data"
WAREHOUSE = DEMO / "warehouse.duckdb"
EXPORTS = DEMO / "exports"
LOGS = DEMO / "logs"
SETTINGS = ROOT / "tools" / "demo_settings.yaml"
DEMO_KEYS = {"everflow": "demo-everflow-key", "redtrack": "demo-redtrack-key"}  # as in SETTINGS
# Synthetic export days: the three ET days up to the last finished one, like a bucket whose
# exports are current (the freshness check compares them with the run's window end). Written
# once per demo folder, so a second demo run finds nothing new.
EXPORT_DAYS_BACK = 3
EXPORT_ROWS = 500


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def prepare_exports() -> None:
    """Write the synthetic exports once; existing files are left untouched (same size/mtime)."""
    from tools.standins.exports import write_exports

    marker = EXPORTS / ".complete"
    if marker.exists():
        return
    from signalroom.pipeline import last_finished_day

    EXPORTS.mkdir(parents=True, exist_ok=True)
    end = last_finished_day()
    days = [end - timedelta(days=n) for n in range(EXPORT_DAYS_BACK)]
    files = write_exports(EXPORTS, days, EXPORT_ROWS)
    marker.write_text("\n".join(str(f.relative_to(EXPORTS)) for f in files))


def apply_connections(api_url: str) -> None:
    """The demo's connections, through the same settings loader the compose stack uses."""
    from signalroom.deploy.airflow_settings import apply_settings, load_settings

    env = {
        "SIGNALROOM_DEMO_WAREHOUSE": str(WAREHOUSE),
        "SIGNALROOM_DEMO_API_URL": api_url,
        "SIGNALROOM_DEMO_EXPORTS_URL": EXPORTS.resolve().as_uri(),
    }
    apply_settings(load_settings(SETTINGS, env))


def run_dag(dag_id: str, env: dict[str, str]) -> float:
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(LOGS / f"{dag_id}.log", "w") as log:
        subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    return time.monotonic() - started


def newest_run_states(dag_id: str) -> tuple[str, dict[str, str]]:
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        ).first()
        if run is None:
            return "missing", {}
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        return str(run.state), {ti.task_id: str(ti.state) for ti in tis}


def table_counts() -> list[tuple[str, int]]:
    import duckdb

    from signalroom.registry import REGISTRY

    if not WAREHOUSE.exists():
        return []
    counts = []
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        existing = {
            f"{s}.{t}" for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        for spec in REGISTRY.values():
            for resource in spec.resources:
                name = f"{spec.dataset_name}.{resource.table}"
                rows = con.execute(f'select count(*) from "{spec.dataset_name}"."{resource.table}"').fetchone()[0] \
                    if name in existing else 0
                counts.append((name, rows))
    return counts


def model_rows(limit: int = 8) -> list[tuple[str, int, list[str], list[tuple]]]:
    """Per reporting model: its view, row count, columns and the newest day's costliest rows."""
    import duckdb

    from signalroom.registry import MODELS

    if not WAREHOUSE.exists():
        return []
    out = []
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        for model in MODELS.values():
            view = f'"{model.schema}"."{model.name}"'
            try:
                count = con.execute(f"select count(*) from {view}").fetchone()[0]
                cursor = con.execute(
                    f"select * from {view} where date = (select max(date) from {view}) "
                    f"order by cost desc, affiliate_label limit {limit}"
                )
            except duckdb.CatalogException:
                out.append((f"{model.schema}.{model.name}", 0, [], []))
                continue
            columns = [d[0] for d in cursor.description]
            out.append((f"{model.schema}.{model.name}", count, columns, cursor.fetchall()))
    return out


def _print_model_rows() -> None:
    for view, count, columns, rows in model_rows():
        print()
        print(f"{view}: {count} rows; newest day, highest cost first:")
        if not rows:
            continue
        cells = [columns, *[["" if v is None else str(v) for v in row] for row in rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
        for row in cells:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_summary(results: list[tuple[str, str, dict[str, str], float]]) -> bool:
    ok = True
    print()
    print(f"{'DAG':28} {'run':9} {'tasks succeeded':16} {'seconds':>7}  log")
    for dag_id, state, tasks, seconds in results:
        done = sum(1 for s in tasks.values() if s == "success")
        failed = [t for t, s in tasks.items() if s not in ("success", "skipped")]
        ok &= state == "success" and not failed
        print(f"{dag_id:28} {state:9} {done:>3}/{len(tasks):<12} {seconds:7.1f}  {LOGS / dag_id}.log")
        for task_id in failed:
            print(f"{'':28} ! {task_id}: {tasks[task_id]}")
    print()
    print(f"{'table':36} {'rows':>8}")
    for name, rows in table_counts():
        print(f"{name:36} {rows:>8}")
    _print_model_rows()
    print()
    print(f"Warehouse: {WAREHOUSE}")
    print(
        f"Query it:  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{WAREHOUSE}', "
        "read_only=True).sql('select * from everflow.daily_stats limit 5'))\""
    )
    return ok


def main() -> int:
    env_vars = localenv.apply(AIRFLOW_HOME, DLT_DIR)
    from signalroom.base.naming import dag_id_for
    from signalroom.registry import MODELS, REGISTRY
    from tools.standins.api import ApiStandin

    _say(f"Airflow metadata: {AIRFLOW_HOME} (SQLite); dlt working folder: {DLT_DIR}")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    prepare_exports()
    api = ApiStandin(everflow_key=DEMO_KEYS["everflow"], redtrack_key=DEMO_KEYS["redtrack"]).start()
    _say(f"API stand-in (Everflow + RedTrack) on {api.url}; exports in {EXPORTS}")
    apply_connections(api.url)
    env = {**os.environ, **env_vars}
    results = []
    try:
        # sources first, then the models built on what they loaded (in production the models
        # run on the sources' asset events; `dags test` runs them here, one after another)
        for name in [*REGISTRY, *MODELS]:
            dag_id = dag_id_for(name)
            _say(f"airflow dags test {dag_id} ...")
            seconds = run_dag(dag_id, env)
            state, tasks = newest_run_states(dag_id)
            results.append((dag_id, state, tasks, seconds))
    finally:
        api.stop()
    ok = print_summary(results)
    summary = DEMO / "summary.json"
    summary.write_text(json.dumps([{"dag_id": d, "state": s, "tasks": t} for d, s, t, _ in results], indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
