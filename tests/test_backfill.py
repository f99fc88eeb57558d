"""Backfills through Airflow: from the trigger form (dag.test with start_date/end_date) and
Airflow's own `airflow backfill create` executed by a real scheduler.

A backfill loads exactly its range and leaves the scheduled cursor (dlt state in the
destination and in the working folder; tracked files for s3_exports) as it was.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from signalroom.registry import REGISTRY, pipeline_name

from tests.dagrun_support import (
    BACKFILL_DAYS,
    EXPORT_PREFIXES,
    OUTSIDE_DAY,
    STEPS,
    cursor_of,
    yesterday_et,
)

SOURCES = sorted(REGISTRY)
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("source", SOURCES)
def test_every_run_of_the_sequence_succeeds(dag_scenarios, source):
    scenario = dag_scenarios[source]
    for step in STEPS:
        states = scenario.steps[step].states
        assert set(states.values()) == {"success"}, (step, states)


def _loaded_resources(source):
    """Resources that have data in the stand-ins (s3_exports' prospects-create is empty)."""
    spec = REGISTRY[source]
    if source == "s3_exports":
        return [p.replace("-", "_") for p in EXPORT_PREFIXES]
    return list(spec.resource_names)


@pytest.mark.parametrize("source", SOURCES)
def test_run_without_dates_loads_up_to_yesterday_from_the_cursor(dag_scenarios, source):
    scenario, spec = dag_scenarios[source], REGISTRY[source]
    yesterday = yesterday_et()
    expected = (
        {yesterday - timedelta(days=1), yesterday}  # the exports uploaded for recent days
        if source == "s3_exports"
        else {yesterday - timedelta(days=n) for n in range(spec.lookback_days)}  # first run: look-back
    )
    for resource in _loaded_resources(source):
        assert set(scenario.dated_rows("cursor", resource)) == expected, resource


@pytest.mark.parametrize("source", SOURCES)
def test_params_backfill_loads_exactly_its_range(dag_scenarios, source):
    scenario = dag_scenarios[source]
    spec = REGISTRY[source]
    for resource in _loaded_resources(source):
        before = scenario.dated_rows("cursor2", resource)
        after = scenario.dated_rows("backfill", resource)
        assert set(after) - set(before) == set(BACKFILL_DAYS), resource
        assert OUTSIDE_DAY not in after
        # rows of every other day are exactly as they were
        res = spec.resource(resource)
        columns, rows_before = scenario.steps["cursor2"].tables[res.table]
        _, rows_after = scenario.steps["backfill"].tables[res.table]
        day = columns.index(res.date_column)
        assert [r for r in rows_after if r[day] not in BACKFILL_DAYS] == rows_before

    step = scenario.steps["backfill"]
    first, last = BACKFILL_DAYS[0], BACKFILL_DAYS[-1]
    if source == "s3_exports":  # exactly the range's files were opened, nothing else
        assert {k.split("/")[0] for k in step.files_read} == set(EXPORT_PREFIXES)
        assert all(str(first) in k or str(last) in k for k in step.files_read), step.files_read
        assert len(step.files_read) == len(EXPORT_PREFIXES) * len(BACKFILL_DAYS)
    else:  # every report request stayed inside the range
        assert step.api_days and all(first <= a <= b <= last for a, b in step.api_days), step.api_days


@pytest.mark.parametrize("source", SOURCES)
def test_params_backfill_leaves_the_cursor_alone(dag_scenarios, source):
    scenario = dag_scenarios[source]
    before, after = scenario.steps["cursor2"], scenario.steps["backfill"]
    for resource in REGISTRY[source].resource_names:
        pipeline = pipeline_name(source, resource)
        # the whole source state, not just the cursor: a backfill writes none of it
        assert after.dest_state[pipeline] == before.dest_state[pipeline], pipeline
        assert after.local_state[pipeline] == before.local_state[pipeline], pipeline
    for resource in _loaded_resources(source):
        cursor = cursor_of(before.dest_state[pipeline_name(source, resource)], source, resource)
        if source == "s3_exports":  # tracked files: the recent ones only, none of the backfill's
            assert len(cursor) == 2 and not any(str(d) in p for p in cursor for d in BACKFILL_DAYS)
        else:
            assert str(cursor) == str(yesterday_et())
