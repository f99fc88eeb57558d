"""`make demo` as a user runs it (in a temp folder): every DAG succeeds, twice, same tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalroom.base.naming import dag_id_for
from signalroom.registry import MODELS, REGISTRY

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run_demo(demo_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIGNALROOM_DEMO_DIR": str(demo_dir)}
    for var in ("AIRFLOW_HOME", "DLT_DATA_DIR"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "tools.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _dump_tables(warehouse: Path) -> dict[str, list]:
    import duckdb

    dumps = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for spec in REGISTRY.values():
            for resource in spec.resources:
                cols = [
                    c for (c,) in con.execute(
                        "select column_name from information_schema.columns "
                        "where table_schema = ? and table_name = ? order by ordinal_position",
                        [spec.dataset_name, resource.table],
                    ).fetchall()
                    if not c.startswith("_dlt_")
                ]
                if not cols:
                    continue
                col_list = ", ".join(f'"{c}"' for c in cols)
                dumps[f"{spec.dataset_name}.{resource.table}"] = con.execute(
                    f'select {col_list} from "{spec.dataset_name}"."{resource.table}" order by all'
                ).fetchall()
    return dumps


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    demo_dir = tmp_path_factory.mktemp("demo")
    first = _run_demo(demo_dir)
    first_tables = _dump_tables(demo_dir / "warehouse.duckdb") if first.returncode == 0 else {}
    second = _run_demo(demo_dir)
    return demo_dir, first, first_tables, second


def test_demo_runs_every_dag_to_success(demo_runs):
    demo_dir, first, _, _ = demo_runs
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert {row["dag_id"] for row in summary} == {dag_id_for(name) for name in [*REGISTRY, *MODELS]}
    for row in summary:
        assert row["state"] == "success", row
        assert row["tasks"] and all(state == "success" for state in row["tasks"].values()), row
    for name in [*REGISTRY, *MODELS]:
        assert dag_id_for(name) in first.stdout
    assert "warehouse.duckdb" in first.stdout


def test_demo_summary_shows_the_daily_performance_rows(demo_runs):
    import duckdb

    demo_dir, first, _, _ = demo_runs
    with duckdb.connect(str(demo_dir / "warehouse.duckdb"), read_only=True) as con:
        count = con.execute("select count(*) from public.daily_performance").fetchone()[0]
        mapping = con.execute("select count(*) from public.affiliate_mapping").fetchone()[0]
    assert count > 0 and mapping == 20
    assert f"public.daily_performance: {count} rows; newest day, highest cost first:" in first.stdout
    header = next(line for line in first.stdout.splitlines() if line.strip().startswith("date "))
    assert header.split()[:4] == ["date", "advertiser_id", "advertiser_label", "affiliate_label"]


def test_demo_loads_every_table(demo_runs):
    _, _, tables, _ = demo_runs
    expected = {f"{s.dataset_name}.{r.table}" for s in REGISTRY.values() for r in s.resources}
    # prospects_create is an empty prefix in the demo exports: no table is fine there
    assert {t for t, rows in tables.items() if rows} >= expected - {"s3_exports.prospects_create"}


def test_demo_second_run_changes_nothing(demo_runs):
    demo_dir, _, first_tables, second = demo_runs
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert _dump_tables(demo_dir / "warehouse.duckdb") == first_tables
