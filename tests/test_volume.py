"""Volume anomaly check: rows per touched day vs the resource's trailing history.

The bands and the history rules on plain numbers, then the check task itself (the operator the
DAG factory builds) on real Postgres: a table with 14 days of history and a day with 70% fewer
rows, written with this run's load id, exactly as a load leaves them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from signalroom.checks import volume
from signalroom.registry import REGISTRY, VolumeBands
from tests.support import db
from tests.support.checks_source import XComFromSummaries

BANDS = VolumeBands()  # warn < 0.5x, fail < 0.2x of the median of 14 days, at least 7 of them
DAY = date(2025, 6, 20)


def _history(rows: int = 100, days: int = 14, skip: tuple[date, ...] = ()) -> dict[date, int]:
    return {DAY - timedelta(days=i): rows for i in range(1, days + 1) if DAY - timedelta(days=i) not in skip}


@pytest.mark.parametrize("rows, bands, status", [
    (30, BANDS, volume.WARN),  # a 70% drop: below warn (0.5x), above fail (0.2x)
    (30, replace(BANDS, fail_below=0.4), volume.FAIL),  # the same drop with a tighter fail band
    (95, BANDS, volume.OK),
    (400, BANDS, volume.WARN),  # 4x: above warn_above (3x)
    (400, replace(BANDS, fail_above=3.5), volume.FAIL),
])
def test_bands(rows, bands, status):
    result = volume.evaluate({**_history(), DAY: rows}, [DAY], bands, DAY)
    assert result.status == status
    (verdict,) = result.days
    assert verdict.median == 100 and verdict.history == 14
    assert f"{DAY}: {rows} rows vs median 100 of 14 day(s)" in verdict.describe()


def test_too_little_history_only_logs():
    result = volume.evaluate({**_history(days=6), DAY: 1}, [DAY], BANDS, DAY)
    assert result.status == volume.OK and result.days[0].status == volume.LOG_ONLY
    assert "history 6 day(s), too little to compare" in result.lines()[0]


def test_a_missing_day_is_named():
    gap = DAY - timedelta(days=3)
    result = volume.evaluate({**_history(skip=(gap,)), DAY: 100}, [DAY], BANDS, DAY)
    assert result.missing_days == (gap,)
    assert f"missing: {gap} (missing export day of orders_create" in "\n".join(
        result.lines("missing export day of orders_create"))
    # a resource that only sometimes has rows names nothing
    sparse = {DAY - timedelta(days=i): 5 for i in (2, 9)}
    assert volume.evaluate({**sparse, DAY: 5}, [DAY], BANDS, DAY).missing_days == ()


def test_the_history_range_covers_every_touched_day_and_the_window_end():
    first, last = volume.history_range([DAY - timedelta(days=2), DAY], BANDS, DAY + timedelta(days=1))
    assert first == DAY - timedelta(days=2 + 14) and last == DAY + timedelta(days=1)
    # a late window end: its own 14 days are counted too (missing days are looked for there)
    first, _ = volume.history_range([DAY - timedelta(days=30)], BANDS, DAY)
    assert first == DAY - timedelta(days=44)


def test_every_dated_resource_gets_the_check_and_its_index():
    from signalroom.checks import catalog
    from signalroom.checks.indexes import table_indexes

    for spec in REGISTRY.values():
        for resource in spec.resources:
            names = [c.name for c in catalog.resource_checks_for(resource)]
            assert ("check_volume" in names) == bool(resource.date_column), resource.name
    # s3_exports: _file_date is not its key, so it gets an index; redtrack's key starts with date
    s3 = REGISTRY["s3_exports"].resource("orders_create")
    assert ("_file_date",) in [i.columns for i in table_indexes(s3.table, s3.key, True, s3.date_column)]
    rt = REGISTRY["redtrack"].resource("daily_spend")
    assert [i.columns for i in table_indexes(rt.table, rt.key, True, rt.date_column)] == [
        ("_dlt_load_id",), rt.key]


# ---------------------------------------------------------------- the task, on real Postgres

RUN_LOAD_ID = "1750000000.5"


@pytest.fixture
def warehouse(pg_database, monkeypatch):
    """`s3_exports.orders_create` with 14 days x 100 rows of history (old load ids), and the
    run's day written by this run's load id; `signalroom_warehouse` pointing at it."""
    for key, value in db.warehouse_connection_env(pg_database).items():
        monkeypatch.setenv(key, value)

    def fill(run_rows: int, gap: date | None = None) -> None:
        db.query(pg_database, "DROP SCHEMA IF EXISTS s3_exports CASCADE")
        db.query(pg_database, "CREATE SCHEMA s3_exports")
        db.query(pg_database, 'CREATE TABLE s3_exports.orders_create (_file_date date, "_dlt_load_id" text, x int)')
        db.query(pg_database, (
            "INSERT INTO s3_exports.orders_create SELECT d::date, '1749000000.1', 1 "
            f"FROM generate_series(DATE '{DAY - timedelta(days=14)}', DATE '{DAY - timedelta(days=1)}', "
            "interval '1 day') d, generate_series(1, 100)"
            + (f" WHERE d::date <> DATE '{gap}'" if gap else "")
        ))
        db.query(pg_database, (
            f"INSERT INTO s3_exports.orders_create SELECT DATE '{DAY}', '{RUN_LOAD_ID}', 1 "
            f"FROM generate_series(1, {run_rows})"
        ))

    return fill


def _check_task(bands: VolumeBands):
    from signalroom.orchestration.factory import build_dag

    spec = REGISTRY["s3_exports"]
    resources = tuple(replace(r, volume=bands) if r.name == "orders_create" else r for r in spec.resources)
    return build_dag(replace(spec, resources=resources)).get_task("orders_create.check_volume")


def _context() -> dict:
    summary = {"pipeline": "s3_exports__orders_create", "window": {"end": DAY.isoformat()},
               "load_ids": [RUN_LOAD_ID], "rows": {"orders_create": 30}}
    return {"ti": XComFromSummaries({"orders_create.load": summary})}


def _output(capfd) -> str:
    """What the task logged (Airflow's task logging writes to the console here)."""
    return "".join(capfd.readouterr())


def test_a_70_percent_drop_warns_and_passes(warehouse, capfd):
    warehouse(30)
    capfd.readouterr()
    _check_task(BANDS).execute(_context())
    out = _output(capfd)
    assert "volume check on s3_exports.orders_create: warn" in out
    assert f"{DAY}: 30 rows vs median 100 of 14 day(s) (30%) -> warn" in out
    assert "warning" in out.lower()


def test_a_70_percent_drop_fails_with_a_tighter_band(warehouse):
    from airflow.sdk.exceptions import AirflowFailException

    warehouse(30)
    with pytest.raises(AirflowFailException, match=rf"{DAY}: 30 rows vs median 100 .* -> fail"):
        _check_task(replace(BANDS, fail_below=0.4)).execute(_context())


def test_too_little_history_only_logs_on_postgres(warehouse, capfd):
    warehouse(30)
    capfd.readouterr()
    _check_task(replace(BANDS, min_history_days=20, history_days=14)).execute(_context())
    out = _output(capfd)
    assert "volume check on s3_exports.orders_create: ok" in out
    assert "history 14 day(s), too little to compare" in out


def test_a_missing_export_day_is_named_on_postgres(warehouse, capfd):
    gap = DAY - timedelta(days=4)
    warehouse(100, gap=gap)
    capfd.readouterr()
    _check_task(BANDS).execute(_context())
    assert f"missing: {gap} (missing export day of orders_create; the days around it have rows)" in _output(capfd)
