"""Every generated DAG run twice leaves identical tables: full dumps of every data table
(every column but dlt's per-load `_dlt_load_id`/`_dlt_id`), after a cursor run and after a
backfill, each repeated. Shares the runs of test_backfill (tests/dagrun_support.py)."""

from __future__ import annotations

import pytest

from signalroom.registry import REGISTRY, pipeline_name
from tests.dagrun_support import BACKFILL_DAYS, EXPORT_PREFIXES, cursor_of

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
        key = [columns.index(c) for c in resource.primary_key]
        keys = [tuple(row[i] for i in key) for row in rows]
        assert len(keys) == len(set(keys)), resource.name
