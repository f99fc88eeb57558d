"""Every generated DAG run twice leaves identical tables: full dumps of every data table
(every column but dlt's per-load `_dlt_load_id`/`_dlt_id`), after a cursor run and after a
backfill, each repeated. Shares the runs of test_backfill (tests/dagrun_support.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from urllib.parse import urlsplit

import pytest

from signalroom.registry import REGISTRY, pipeline_name
from tests.support.dagrun import (
    BACKFILL_DAYS,
    EXPORT_PREFIXES,
    EXPORT_ROWS,
    cursor_of,
    destination_state,
    table_dumps,
    yesterday_et,
)
from tools import localenv

SOURCES = sorted(REGISTRY)
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("first, second", [("cursor", "cursor2"), ("backfill", "backfill2")])
@pytest.mark.parametrize("source", SOURCES)
def test_a_run_repeated_leaves_identical_tables(dag_scenarios, source, first, second):
    scenario = dag_scenarios[source]
    a, b = scenario.steps[first], scenario.steps[second]
    assert set(b.states.values()) == {"success"}
    assert a.tables and b.tables.keys() == a.tables.keys()
    for table in a.tables:
        assert b.tables[table] == a.tables[table], table
    for resource in REGISTRY[source].resource_names:
        pipeline = pipeline_name(source, resource)
        assert cursor_of(b.dest_state[pipeline], source, resource) == cursor_of(
            a.dest_state[pipeline], source, resource
        )


@pytest.mark.parametrize("source", SOURCES)
def test_the_repeat_really_reloaded(dag_scenarios, source):
    """Identical because loads replace, not because the second run did nothing."""
    scenario = dag_scenarios[source]
    if source == "s3_exports":
        # a repeated backfill reads its files again and replaces their rows (one copy remains)
        assert len(scenario.steps["backfill2"].files_read) == len(EXPORT_PREFIXES) * len(BACKFILL_DAYS)
    else:
        assert scenario.steps["cursor2"].api_days  # the look-back is re-read
        assert scenario.steps["backfill2"].api_days == scenario.steps["backfill"].api_days


@pytest.mark.parametrize("source", SOURCES)
def test_no_duplicate_keys_after_all_runs(dag_scenarios, source):
    scenario, spec = dag_scenarios[source], REGISTRY[source]
    for resource in spec.resources:
        if resource.table not in scenario.steps["backfill2"].tables:
            continue  # no data for it in the stand-ins (s3_exports' empty prefix)
        columns, rows = scenario.steps["backfill2"].tables[resource.table]
        key = [columns.index(c) for c in resource.key]
        keys = [tuple(row[i] for i in key) for row in rows]
        assert len(keys) == len(set(keys)), resource.name


def test_parallel_resource_loads_keep_their_own_state(dagrun_world, tmp_path):
    """Two resource groups of one source loading at the same moment, as Airflow's workers run
    them: one dlt pipeline each, so neither loses the other's tracked files or rows. Two
    processes of `python -m signalroom run` (the load task's code path) into one database."""
    world = dagrun_world
    url = world.url(world.database())
    parts = urlsplit(url)
    env = {
        **localenv.cli_env(),
        **world.s3.dlt_env(world.bucket),
        "SIGNALROOM_DESTINATION": "postgres",
        # dlt wants a password; the test server's trust auth ignores it
        "DESTINATION__POSTGRES__CREDENTIALS": f"postgresql://{parts.username}:{parts.password or 'trust'}"
                                             f"@{parts.hostname}:{parts.port}{parts.path}",
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
    }
    resources = [p.replace("-", "_") for p in EXPORT_PREFIXES]
    procs = [
        subprocess.Popen([sys.executable, "-m", "signalroom", "run", "s3_exports", "--resources", r],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in resources
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    last = yesterday_et()
    listed = [o["Key"] for o in world.s3.client().list_objects_v2(Bucket=world.bucket)["Contents"]]
    for prefix, resource in zip(EXPORT_PREFIXES, resources, strict=True):
        expected = {k for k in listed if k.startswith(prefix + "/") and k.endswith(".csv")
                    and date.fromisoformat(k.split("report_")[1][:10]) <= last}
        state = destination_state(url, "s3_exports", pipeline_name("s3_exports", resource))
        assert set(cursor_of(state, "s3_exports", resource)) == expected, resource
        columns, rows = table_dumps(url, "s3_exports")[resource]
        files = {row[columns.index("_file_name")] for row in rows}
        assert files == expected and len(rows) == EXPORT_ROWS * len(expected), resource
