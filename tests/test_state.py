"""Pipeline state decoded from the destination equals what dlt itself reports, on real Postgres.

Three references: the loading pipeline object's state, `dlt pipeline <name> info -v` (dlt's
CLI, another process), and a fresh working folder restored with dlt's `sync_destination`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from signalroom.destinations import DestinationConfig, data_dir
from signalroom.state import cursor_summary, format_state, read_pipeline_state, read_states, resource_views
from tests.support import db
from tests.support.api import fast_retries
from tests.support.maintenance import PIPELINE, RESOURCE, SOURCE, load, postgres, start_standin

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_cursor_summary_keeps_its_shape():
    """The load task's log line depends on it: incremental values, hash count, collection sizes."""
    state = {
        "incremental": {"date": {"initial_value": "2025-01-01", "last_value": "2025-01-05",
                                 "start_value": "2025-01-03", "unique_hashes": ["a", "b"]}},
        "files": {"a.csv": {}, "b.csv": {}},
        "note": "x",
    }
    assert cursor_summary(state) == {
        "incremental.date": {"initial_value": "2025-01-01", "start_value": "2025-01-03",
                             "last_value": "2025-01-05", "unique_hashes": 2},
        "files": {"entries": 2},
        "note": "x",
    }


def test_tracked_files_count_and_newest():
    """s3_exports-style custom state: a map of loaded files -> count and the newest file."""
    sources = {
        "s3_exports": {
            "resources": {
                "orders_create": {
                    "files": {
                        "orders-create/report_2025-12-17T0301_a.csv": {"modified": "2025-12-17T03:05:00+00:00"},
                        "orders-create/report_2025-12-18T0301_b.csv": {"modified": "2025-12-18T03:04:00+00:00"},
                        "orders-create/report_2025-12-16T0301_c.csv": {"modified": "2025-12-16T03:02:00+00:00"},
                    }
                },
                "prospects_create": {"files": ["p/report_2025-01-02.csv", "p/report_2025-01-03.csv"]},
            }
        }
    }
    views = {v.resource: v for v in resource_views(sources)}
    files = views["orders_create"].tracked[0]
    assert files.path == "sources.s3_exports.resources.orders_create.files"
    assert (files.count, files.newest) == (3, "orders-create/report_2025-12-18T0301_b.csv")
    assert views["prospects_create"].tracked[0].newest == "p/report_2025-01-03.csv"


@pytest.fixture
def loaded(monkeypatch, dlt_data_dir, pg_database):
    """Two real RedTrack loads into Postgres (the second moves the cursor)."""
    from signalroom.pipeline import make_pipeline

    fast_retries(monkeypatch)
    destination = postgres(pg_database)
    standin = start_standin()
    try:
        load(standin, destination, date(2025, 2, 1))
        summary = load(standin, destination, date(2025, 2, 3))
    finally:
        standin.stop()
    return destination.postgres_url, destination, summary, make_pipeline(SOURCE, RESOURCE, destination)


def _dlt_cli_sources(pipeline_name: str) -> tuple[int, dict]:
    """`dlt pipeline <name> info -v`: dlt's own report of the pipeline's state."""
    out = subprocess.run(
        [str(BIN / "dlt"), "pipeline", "--pipelines-dir", str(data_dir() / "pipelines"), pipeline_name, "info", "-v"],
        capture_output=True, text=True, check=True, env=os.environ.copy(),
    ).stdout
    version = int(out.split("_state_version: ", 1)[1].split()[0])
    body = out.split("\nsources:\n", 1)[1]
    return version, json.JSONDecoder().raw_decode(body)[0]


def test_state_equals_what_dlt_reports(loaded, tmp_path):
    import dlt

    url, destination, summary, pipeline = loaded
    shown = read_pipeline_state(PIPELINE, destination)
    assert shown.found and shown.error is None
    ours = shown.sources_summary[RESOURCE]

    # 1. the pipeline object that loaded, and the load task's own summary
    own = pipeline.state["sources"][SOURCE]["resources"][RESOURCE]
    assert ours == cursor_summary(own) == summary["cursor_after"]
    assert ours["incremental.date"]["last_value"] == "2025-02-03"
    assert ours["incremental.date"]["unique_hashes"] == 0  # redtrack turns boundary dedup off

    # 2. dlt's CLI, in another process
    version, cli_sources = _dlt_cli_sources(PIPELINE)
    assert ours == cursor_summary(cli_sources[SOURCE]["resources"][RESOURCE])
    assert shown.state_version == version

    # 3. a fresh worker: an empty working folder restored from the destination by dlt
    fresh = dlt.pipeline(PIPELINE, destination=destination.to_dlt(), dataset_name="redtrack",
                         pipelines_dir=str(tmp_path))
    fresh.sync_destination()
    restored = fresh.state["sources"][SOURCE]["resources"][RESOURCE]
    assert ours == cursor_summary(restored)

    # the cursor row and the last load
    cursor = shown.resources[0].cursors[0]
    assert cursor.path == f"sources.{SOURCE}.resources.{RESOURCE}.incremental.date"
    assert (cursor.start_value, cursor.last_value) == ("2025-02-01", "2025-02-03")
    assert shown.last_load.load_id == summary["load_ids"][-1] and shown.last_load.status_text == "loaded"
    assert shown.state_load_id == summary["load_ids"][-1]
    table = format_state(shown)
    assert cursor.path in table and "2025-02-03" in table and "loaded" in table


def test_cli_state_command(loaded):
    url, *_ = loaded
    env = {**os.environ, "SIGNALROOM_DESTINATION": "postgres", "DESTINATION__POSTGRES__CREDENTIALS": url,
           "PYTHONPATH": str(ROOT / "include")}
    out = subprocess.run([sys.executable, "-m", "signalroom", "state", PIPELINE],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert f"sources.{SOURCE}.resources.{RESOURCE}.incremental.date" in out
    assert "2025-02-03" in out and "last load:" in out
    # every pipeline at once: the others have not loaded and say so; exit code stays 0
    allout = subprocess.run([sys.executable, "-m", "signalroom", "state", "--json"],
                            env=env, capture_output=True, text=True, check=True).stdout
    states = {s["pipeline"]: s for s in json.loads(allout)}
    assert states[PIPELINE]["found"] and "never loaded" in states["everflow__daily_stats"]["error"]
    bad = subprocess.run([sys.executable, "-m", "signalroom", "state", "nope__nothing"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown pipeline 'nope__nothing'" in bad.stderr


def test_unreachable_destination_is_reported_without_the_password():
    from tools.standins.postgres import free_port

    destination = DestinationConfig(
        kind="postgres", postgres_url=f"postgresql://postgres:s3cr%40t-pw@127.0.0.1:{free_port()}/x"
    )
    [state] = read_states([PIPELINE], destination)
    assert not state.found and state.error
    assert "s3cr" not in state.error and "s3cr" not in json.dumps(state.to_dict())


def test_last_load_when_pipelines_share_a_dataset(loaded, monkeypatch):
    """`_dlt_loads` has no pipeline column: with one pipeline per dataset the newest load is
    its own; when several share the dataset (s3_exports), it is the newest that saved its state."""
    from dataclasses import replace

    from signalroom.registry import REGISTRY

    url, destination, summary, _ = loaded
    # a newer load by some other pipeline of the dataset
    db.query(url, "INSERT INTO redtrack._dlt_loads (load_id, schema_name, status, inserted_at, "
             "schema_version_hash) VALUES ('9999999999.1', 'redtrack', 0, now(), 'other')")
    alone = read_pipeline_state(PIPELINE, destination)
    assert alone.last_load.load_id == "9999999999.1" and not alone.shared_dataset

    monkeypatch.setitem(REGISTRY, "redtrack_b", replace(REGISTRY["redtrack"], name="redtrack_b", dataset="redtrack"))
    shared = read_pipeline_state(PIPELINE, destination)
    assert shared.shared_dataset and shared.last_load.load_id == summary["load_ids"][-1]
    assert "dataset is shared" in format_state(shared)


def test_s3_exports_tracked_files_read_from_the_destination(dlt_data_dir, pg_database, tmp_path):
    """Real s3_exports loads (moto's S3 server, synthetic exports): two files tracked by
    orders_create, shown as count + newest; a second pipeline shares the dataset."""
    import uuid
    from datetime import timedelta

    from signalroom.pipeline import Window, run_load
    from tests.support.api import with_password
    from tools.standins.exports import export_name, write_export
    from tools.standins.s3 import S3Server

    destination = DestinationConfig(kind="postgres", postgres_url=with_password(pg_database))
    d1 = date(2025, 12, 1)
    with S3Server() as s3:
        bucket = f"exports-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(bucket)
        keys = []
        for day, prefix in ((d1, "orders-create"), (d1 + timedelta(days=1), "orders-create"), (d1, "orders-update")):
            keys.append(f"{prefix}/{export_name(day, prefix)}")
            s3.put(bucket, keys[-1], write_export(tmp_path / f"{uuid.uuid4().hex}.csv", day, 20).read_bytes())
        window = Window(end=d1 + timedelta(days=1))
        create = run_load("s3_exports", "orders_create", window, destination, source_kwargs=s3.source_kwargs(bucket))
        run_load("s3_exports", "orders_update", window, destination, source_kwargs=s3.source_kwargs(bucket))

    shown = read_pipeline_state("s3_exports__orders_create", destination)
    # the tracked files, and the last export's header (what a missing column is measured against)
    files, header = shown.resources[0].tracked
    assert files.path == "sources.s3_exports.resources.orders_create.files"
    assert header.path == "sources.s3_exports.resources.orders_create.header" and header.count > 100
    assert (files.count, files.newest) == (2, keys[1])
    assert shown.sources_summary["orders_create"] == create["cursor_after"]
    # three pipelines share the s3_exports dataset: its last load is the one that saved its state
    assert shown.shared_dataset and shown.last_load.load_id == create["load_ids"][-1]
    assert keys[1] in format_state(shown)
