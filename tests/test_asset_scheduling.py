"""Data-aware scheduling under a real scheduler: the everflow and redtrack DAGs' scheduled runs
load (real dlt, Postgres, the API stand-in), their load tasks emit the tables' asset events, and
Airflow itself queues and runs `signalroom_daily_performance` on them.

Everything is read back from Airflow's metadata DB: the asset events with their extras, the run
the scheduler created (`asset_triggered`) with the events it consumed, the model's own event
and the DAG dependencies the UI draws (source DAG -> alias -> tables -> downstream DAG).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from tests.support.dagrun import airflow_cli, airflow_scheduler, forget_runs

pytestmark = pytest.mark.slow

SOURCE_DAGS = ("signalroom_everflow", "signalroom_redtrack")
MODEL_DAG = "signalroom_daily_performance"


@dataclass
class Observed:
    runs: dict[str, list[tuple[str, str, str]]]  # dag_id -> (run_id, run_type, state)
    events: list[dict]  # every asset event since the start
    consumed: list[str]  # asset URIs the model's run consumed
    dependencies: dict[str, list[tuple[str, str, str]]]  # dag_id -> (source, target, type)
    database: str
    asset_ids: dict[str, int]  # URI -> Airflow's asset id (the dependency graph's node)


def _runs(since: datetime) -> dict[str, list[tuple[str, str, str]]]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(DagRun).where(
            DagRun.dag_id.in_([*SOURCE_DAGS, MODEL_DAG]), DagRun.queued_at >= since)).all()
        out: dict[str, list[tuple[str, str, str]]] = {d: [] for d in (*SOURCE_DAGS, MODEL_DAG)}
        for run in rows:
            out[run.dag_id].append((run.run_id, str(run.run_type), str(run.state)))
        return out


def _done(runs) -> bool:
    finished = ("success", "failed")
    return (
        all(runs[d] and all(s in finished for _, _, s in runs[d]) for d in SOURCE_DAGS)
        and any(s in finished for _, _, s in runs[MODEL_DAG])
    )


def _observe(since: datetime, database: str) -> Observed:
    from airflow.models import DagRun
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = [
            {"uri": e.asset.uri, "dag": e.source_dag_id, "task": e.source_task_id, "extra": dict(e.extra or {}),
             "aliases": sorted(a.name for a in e.source_aliases)}
            for e in session.scalars(select(AssetEvent).where(AssetEvent.timestamp >= since)).all()
        ]
        model_run = session.scalars(select(DagRun).where(DagRun.dag_id == MODEL_DAG, DagRun.queued_at >= since)
                                    .order_by(DagRun.id)).first()
        consumed = sorted(e.asset.uri for e in model_run.consumed_asset_events) if model_run else []
        deps = SerializedDagModel.get_dag_dependencies(session=session)
        dependencies = {
            dag_id: [(d.source, d.target, d.dependency_type) for d in items] for dag_id, items in deps.items()
        }
        asset_ids = {a.uri: a.id for a in session.scalars(select(AssetModel)).all()}
    return Observed(_runs(since), events, consumed, dependencies, database, asset_ids)


@pytest.fixture(scope="module")
def observed(dagrun_world) -> Observed:
    world = dagrun_world
    database = world.database()
    dlt_dir = world.root / "dlt-assets"
    dlt_dir.mkdir()
    since = datetime.now(timezone.utc)
    try:
        forget_runs(MODEL_DAG, *SOURCE_DAGS)
        with airflow_scheduler(world.env(database, dlt_dir), world.root / "asset-scheduler-logs") as start:
            airflow_cli("dags", "reserialize")
            for dag_id in (MODEL_DAG, *SOURCE_DAGS):  # unpaused, each source gets its scheduled run
                airflow_cli("dags", "unpause", dag_id)
            start()
            deadline = time.monotonic() + 480
            runs = _runs(since)
            while not _done(runs):
                assert time.monotonic() < deadline, f"runs not finished in time: {runs}"
                time.sleep(2)
                runs = _runs(since)
    finally:
        for dag_id in (MODEL_DAG, *SOURCE_DAGS):
            airflow_cli("dags", "pause", dag_id)
    return _observe(since, database)


def _uri(world, database: str, schema: str, table: str) -> str:
    return f"postgres://{world.postgres.host}:{world.postgres.port}/{database}/{schema}/{table}"


def test_source_runs_emit_their_tables_with_extras(observed, dagrun_world):
    for dag_id in SOURCE_DAGS:
        assert [(t, s) for _, t, s in observed.runs[dag_id]] == [("scheduled", "success")], observed.runs
    by_uri = {e["uri"]: e for e in observed.events}
    for schema, table, dag_id in (("everflow", "daily_stats", "signalroom_everflow"),
                                  ("redtrack", "daily_spend", "signalroom_redtrack")):
        event = by_uri[_uri(dagrun_world, observed.database, schema, table)]
        assert (event["dag"], event["task"], event["aliases"]) == (dag_id, f"{table}.load", [f"{schema}.{table}"])
        extra = event["extra"]
        assert extra["rows"] > 0 and extra["rows_per_table"] == {table: extra["rows"]}
        assert len(extra["load_ids"]) == 1 and extra["backfill"] is False and extra["run_type"] == "scheduled"
        assert extra["window"].startswith("scheduled window")


def test_the_model_dag_was_queued_by_the_assets_and_succeeded(observed, dagrun_world):
    [(run_id, run_type, state)] = observed.runs[MODEL_DAG]
    assert (run_type, state) == ("asset_triggered", "success"), observed.runs
    # (earlier tests of the session loaded other databases: their tables are assets of the
    # same aliases, so the run may consume their older events too)
    assert {
        _uri(dagrun_world, observed.database, "everflow", "daily_stats"),
        _uri(dagrun_world, observed.database, "redtrack", "daily_spend"),
    } <= set(observed.consumed)
    published = {e["uri"]: e for e in observed.events if e["dag"] == MODEL_DAG}
    view = published[_uri(dagrun_world, observed.database, "public", "daily_performance")]
    assert view["aliases"] == ["reporting.daily_performance"] and view["extra"]["rows"] > 0
    assert view["extra"]["run_type"] == "asset_triggered"
    assert {t["asset"] for t in view["extra"]["triggered_by"]} == set(observed.consumed)
    assert all(t["load_ids"] for t in view["extra"]["triggered_by"])


def test_the_dag_dependencies_draw_source_tables_and_the_model(observed, dagrun_world):
    """What the UI's DAG and Assets views draw: each alias resolved into its table asset, the
    same asset node leading from the source DAG to the model DAG."""
    model = observed.dependencies[MODEL_DAG]
    into_model = {s for s, t, k in model if t == MODEL_DAG and s.startswith("asset:")}
    for dag_id, schema, table in (("signalroom_everflow", "everflow", "daily_stats"),
                                  ("signalroom_redtrack", "redtrack", "daily_spend")):
        deps = observed.dependencies[dag_id]
        node = f"asset:{observed.asset_ids[_uri(dagrun_world, observed.database, schema, table)]}"
        assert (dag_id, node, "asset-alias") in deps, deps
        assert (f"asset-alias:{schema}.{table}", "asset", "asset") in deps
        assert node in into_model, (deps, model)
