"""Intraday numbers: `signalroom_<source>_intraday` at 11:00 ET loads that day's partial rows
into the daily table, the next daily run restates them, and the cursor never passes the last
finished ET day. Real Airflow (`dag.test()`), dlt, Postgres and the API stand-in.

The day D is yesterday (ET): the intraday run is the one due at D 11:00 ET, the daily run the
one triggered now (D is then the last finished day). Before, a daily load up to D-1 (the CLI's
code path, `pipeline.run_load`) sets the cursor a daily run would have left that morning.
"""

from __future__ import annotations

import time as clock
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest

from signalroom.registry import REGISTRY, pipeline_name
from tests.support import db
from tests.support.dagrun import ET, asset_events_of, cursor_of, destination_state, task_states, yesterday_et

pytestmark = pytest.mark.slow

METRICS = {"everflow": ("conversions", "payout"), "redtrack": ("clicks", "cost")}


def _day_rows(url: str, source: str, day) -> dict[tuple, tuple]:
    """{key: metrics} of one day in the source's table."""
    spec = REGISTRY[source]
    resource = spec.resources[0]
    key, metrics = resource.primary_key, METRICS[source]
    rows = db.query(url, f'SELECT {", ".join(key + metrics)} FROM {spec.dataset_name}.{resource.table} '
                         "WHERE date = %s", (day,))
    return {r[:len(key)]: tuple(Decimal(str(v)) for v in r[len(key):]) for r in rows}


def _served(api, source: str, day) -> dict[tuple, tuple]:
    """What the stand-in serves for the day now (its rows with a key; the others are dropped)."""
    rows = api.everflow_rows(day) if source == "everflow" else api.redtrack_rows(day)
    key, metrics = REGISTRY[source].resources[0].primary_key, METRICS[source]
    return {
        tuple(r[k] for k in key): tuple(Decimal(str(r[m] if r[m] is not None else 0)) for m in metrics)
        for r in rows if all(r[k] not in (None, "") for k in key)
    }


def _cursors(url: str, source: str) -> list:
    spec = REGISTRY[source]
    resource = spec.resources[0].name
    from dlt.common.versioned_state import decompress_state

    blobs = db.query(url, f"SELECT state FROM {spec.dataset_name}._dlt_pipeline_state "
                          "WHERE pipeline_name = %s ORDER BY version", (pipeline_name(source, resource),))
    cursors = [cursor_of(decompress_state(b).get("sources", {}), source, resource) for (b,) in blobs]
    return [None if c is None else str(c) for c in cursors]


@pytest.mark.parametrize("source", ["everflow", "redtrack"])
def test_intraday_loads_today_then_the_daily_run_restates_it(dagrun_world, source, monkeypatch):
    from signalroom.destinations import DestinationConfig
    from signalroom.orchestration.factory import build_dag
    from signalroom.orchestration.intraday import build_intraday_dag
    from signalroom.pipeline import Window, run_load

    world = dagrun_world
    spec = REGISTRY[source]
    resource = spec.resources[0].name
    database = world.database()
    url = world.url(database)
    dlt_dir = world.root / f"dlt-intraday-{source}"
    dlt_dir.mkdir()
    day = yesterday_et()
    key = world.api.redtrack_key if source == "redtrack" else world.api.everflow_key

    with world.using(database, dlt_dir):
        monkeypatch.setenv(spec.config_env_var("api_key"), key)
        monkeypatch.setenv(spec.config_env_var("base_url"), world.api.url)
        # the morning of D: the daily run has loaded up to D-1
        run_load(source, resource, Window(end=day - timedelta(days=1)),
                 DestinationConfig("postgres", postgres_url=db.with_password(url)))
        assert _cursors(url, source)[-1] == str(day - timedelta(days=1))

        # D 11:00 ET: the intraday run loads D's rows so far
        due = datetime.combine(day, time(11), ET)
        intraday = build_intraday_dag(spec).test(run_after=due, logical_date=due)
        assert set(task_states(intraday).values()) == {"success"}, task_states(intraday)
        partial = _served(world.api, source, day)
        assert partial and _day_rows(url, source, day) == partial
        assert _cursors(url, source)[-1] == str(day - timedelta(days=1))  # the cursor did not move
        [(uri, task, extra, aliases)] = asset_events_of(intraday.dag_id, intraday.run_id)
        assert extra["intraday"] is True and extra["backfill"] is False
        assert extra["window"] == f"intraday window {day} (today so far, ET; cursor untouched)"

        # the source restates D (late conversions, final spend); the daily run after midnight
        world.api.restate(source, day)
        final = _served(world.api, source, day)
        assert final != partial
        daily = build_dag(spec).test(mark_success_pattern=r"(\.check_|^dag_checks\.)")
        assert task_states(daily)[f"{resource}.load"] == "success"
        assert _day_rows(url, source, day) == final  # restated in place: same keys, new numbers

    cursors = _cursors(url, source)
    assert cursors[-1] == str(day)  # the last finished ET day, never today
    assert all(c is None or c <= str(day) for c in cursors), cursors
    state = destination_state(url, spec.dataset_name, pipeline_name(source, resource))
    assert str(cursor_of(state, source, resource)) == str(day)


def test_an_intraday_load_gives_way_to_a_running_daily_load(dagrun_world, monkeypatch, capfd):
    """The daily load holds the pipeline's lock: the intraday load is skipped, not overlapped."""
    from signalroom.destinations import DestinationConfig
    from signalroom.loadlock import pipeline_lock
    from signalroom.orchestration.intraday import build_intraday_dag

    world = dagrun_world
    database = world.database()
    url = world.url(database)
    dlt_dir = world.root / "dlt-intraday-busy"
    dlt_dir.mkdir()
    spec = REGISTRY["everflow"]
    destination = DestinationConfig("postgres", postgres_url=db.with_password(url))
    with world.using(database, dlt_dir), pipeline_lock(destination, "everflow__daily_stats", wait=False):
        run = build_intraday_dag(spec).test()
    assert task_states(run)["daily_stats.load"] == "skipped"
    assert "another load of pipeline 'everflow__daily_stats' is running" in capfd.readouterr().out
    assert db.query(url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'everflow'") == [(0,)]
    assert asset_events_of(run.dag_id, run.run_id) == []


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_the_pipeline_lock_lets_one_load_in(kind, pg_database, tmp_path):
    """Per pipeline, across processes' connections: a second taker gives up at once (intraday)
    or after waiting (daily); another pipeline is not blocked; released on exit."""
    from signalroom.destinations import DestinationConfig
    from signalroom.loadlock import PipelineBusyError, pipeline_lock

    dest = (DestinationConfig("postgres", postgres_url=db.with_password(pg_database)) if kind == "postgres"
            else DestinationConfig("duckdb", duckdb_path=str(tmp_path / "warehouse.duckdb")))
    with pipeline_lock(dest, "everflow__daily_stats", wait=False):
        with pytest.raises(PipelineBusyError, match="another load of pipeline 'everflow__daily_stats'"):
            with pipeline_lock(dest, "everflow__daily_stats", wait=False):
                pass
        started = clock.monotonic()
        with pytest.raises(PipelineBusyError, match="waited"):
            with pipeline_lock(dest, "everflow__daily_stats", wait=True, timeout=1.0, poll=0.2):
                pass
        assert clock.monotonic() - started >= 1.0
        with pipeline_lock(dest, "redtrack__daily_spend", wait=False):
            pass
    with pipeline_lock(dest, "everflow__daily_stats", wait=False):
        pass
