"""Loaded tables as Airflow assets (signalroom.orchestration.assets).

The URIs are checked against Airflow's own normalisation (the Postgres provider's handler);
the events are read from Airflow's metadata DB after real DAG runs (the shared dag.test
scenarios of tests/support/dagrun.py: real dlt loads into Postgres from the stand-ins).
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

import pytest

from signalroom.destinations import DestinationConfig, postgres_url


def test_postgres_table_uri_is_the_provider_form_without_credentials():
    from airflow.providers.postgres.assets.postgres import sanitize_uri
    from airflow.sdk import Asset

    dest = DestinationConfig("postgres", postgres_url=postgres_url(
        "db.example", "ware house", "postgres.ref", password="p@ss:w/rd", port=6543, sslmode="require"))
    uri = dest.table_uri("everflow", "daily_stats")
    assert uri == "postgres://db.example:6543/ware%20house/everflow/daily_stats"
    assert "p@ss" not in uri and "postgres.ref" not in uri
    assert Asset(uri).uri == uri  # Airflow keeps it as is (already normal)
    assert sanitize_uri(urlsplit(uri)).geturl() == uri  # the provider's handler accepts it
    # the port defaults to 5432, as the provider normalises it
    bare = DestinationConfig("postgres", postgres_url="postgresql://u@h/db")
    assert bare.table_uri("s", "t") == "postgres://h:5432/db/s/t"


def test_duckdb_table_uri_names_the_file_schema_and_table(tmp_path):
    from airflow.sdk import Asset

    dest = DestinationConfig("duckdb", duckdb_path=str(tmp_path / "warehouse.duckdb"))
    uri = dest.table_uri("redtrack", "daily_spend")
    assert uri == f"duckdb://localhost{tmp_path}/warehouse.duckdb/redtrack/daily_spend"
    assert Asset(uri).uri == uri


def test_every_load_task_declares_its_resource_alias():
    from airflow.sdk import AssetAlias

    from signalroom.orchestration.factory import build_all_dags
    from signalroom.registry import REGISTRY

    dags = build_all_dags()
    for name, spec in REGISTRY.items():
        dag = dags[f"signalroom_{name}"]
        for resource in spec.resources:
            outlets = dag.get_task(f"{resource.name}.load").outlets
            assert outlets == [AssetAlias(name=f"{name}.{resource.name}", group="signalroom")]


def _events(step):
    return {uri: (task, extra, aliases) for uri, task, extra, aliases in step.asset_events}


@pytest.mark.slow
def test_a_load_emits_one_event_per_table_with_readable_extras(dag_scenarios, postgres_server):
    scenario = dag_scenarios["everflow"]
    uri = f"postgres://{postgres_server.host}:{postgres_server.port}/{scenario.database}/everflow/daily_stats"
    for step in ("cursor", "backfill"):
        events = _events(scenario.steps[step])
        assert set(events) == {uri}, events
        task, extra, aliases = events[uri]
        assert task == "daily_stats.load"
        assert aliases == ("everflow.daily_stats",)
        rows = sum(scenario.dated_rows(step, "daily_stats").values())
        assert extra["table"] == "everflow.daily_stats"
        assert 0 < extra["rows"] <= rows and extra["rows_per_table"] == {"daily_stats": extra["rows"]}
        assert len(extra["load_ids"]) == 1 and extra["pipeline"] == "everflow__daily_stats"
        assert extra["backfill"] is (step == "backfill")
    backfill = _events(scenario.steps["backfill"])[uri][1]
    assert backfill["window"] == "backfill window 2025-06-02 .. 2025-06-03 (ET days, inclusive)"
    assert backfill["run_type"] == "manual"


@pytest.mark.slow
def test_file_loads_list_their_files_and_a_load_of_nothing_emits_no_event(dag_scenarios):
    scenario = dag_scenarios["s3_exports"]
    first = _events(scenario.steps["cursor"])
    assert {u.rsplit("/", 1)[1] for u in first} == {"orders_create", "orders_update"}
    for uri, (task, extra, aliases) in first.items():
        table = uri.rsplit("/", 1)[1]
        assert task == f"{table}.load" and aliases == (f"s3_exports.{table}",)
        assert extra["files_count"] == 2 and all(f.endswith(".csv") for f in extra["files"])
        assert extra["rows"] == sum(scenario.dated_rows("cursor", table).values())
    # the same run again: every file already loaded, no rows written, no event
    assert scenario.steps["cursor2"].asset_events == []
    # prospects_create has no files at all: never an event
    assert not any("prospects_create" in e[0] for s in scenario.steps.values() for e in s.asset_events)


def test_child_tables_dlt_creates_at_run_time_get_events_through_the_alias(tmp_path):
    """A nested list becomes a `<table>__<field>` table only when dlt normalizes it: no DAG file
    can know it, the alias covers it (Airflow's own outlet-event accessors record the events)."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from signalroom.base.summary import LoadSummary
    from signalroom.base.window import Window
    from signalroom.orchestration.assets import emit_table_events, table_alias

    dest = DestinationConfig("duckdb", duckdb_path=str(tmp_path / "w.duckdb"))
    summary = LoadSummary(
        source="everflow", resource="daily_stats", pipeline="everflow__daily_stats", dataset="everflow",
        destination=dest.describe(), window=Window(end=date(2025, 6, 3)),
        load_ids=("1717.1",), rows={"daily_stats": 3, "daily_stats__tags": 5, "daily_stats__empty": 0},
    )
    accessors = OutletEventAccessors()
    uris = emit_table_events(accessors, dest, summary.to_dict(), "scheduled")
    events = accessors[table_alias("everflow", "daily_stats")].asset_alias_events
    assert uris == [dest.table_uri("everflow", t) for t in ("daily_stats", "daily_stats__tags")]
    assert [(e.source_alias_name, e.dest_asset_key.uri, e.extra["rows"]) for e in events] == [
        ("everflow.daily_stats", uris[0], 3), ("everflow.daily_stats", uris[1], 5)]
    assert events[1].extra["window"] == "scheduled window cursor - look-back .. 2025-06-03 (ET days, inclusive)"
