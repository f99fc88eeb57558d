"""The generated DAGs: they parse, match the registry, and stay cheap (no dlt at parse)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalroom.registry import MODELS, REGISTRY

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_dag_per_registered_source(dagbag):
    from signalroom.base.naming import dag_id_for

    models = {dag_id_for(name) for name in MODELS}
    intraday = {f"{dag_id_for(name)}_intraday" for name, spec in REGISTRY.items() if spec.intraday_schedule}
    source_dags = {d for d in dagbag.dag_ids if d.startswith("signalroom_") and d != "signalroom_maintenance"}
    assert source_dags - models - intraday == {dag_id_for(name) for name in REGISTRY}
    assert models | intraday <= set(dagbag.dag_ids)


def test_intraday_dags_of_the_api_sources(dagbag):
    """Hourly 07:00-23:00 ET, a load per resource after `plan`, through the same asset aliases."""
    from airflow.sdk import AssetAlias

    assert sorted(n for n, s in REGISTRY.items() if s.intraday_schedule) == ["everflow", "redtrack"]
    for name in ("everflow", "redtrack"):
        dag = dagbag.get_dag(f"signalroom_{name}_intraday")
        assert dag.timetable.__class__.__name__ == "CronTriggerTimetable"
        assert dag.timetable.expression == "0 7-23 * * *" and str(dag.timetable.timezone) == "America/New_York"
        assert dag.max_active_runs == 1 and dag.catchup is False and "intraday" in dag.tags
        for resource in REGISTRY[name].resource_names:
            load = dag.get_task(f"{resource}.load")
            assert load.upstream_task_ids == {"plan"} and load.max_active_tis_per_dag == 1
            assert load.outlets == [AssetAlias(name=f"{name}.{resource}", group="signalroom")]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_dags_run_on_their_inputs_assets_not_a_clock(dagbag, model):
    from airflow.sdk import AssetAlias

    from signalroom.base.naming import dag_id_for

    dag = dagbag.get_dag(dag_id_for(model))
    assert dag.timetable.__class__.__name__ == "AssetTriggeredTimetable"
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"  # every input must have landed
    assert {a.name for a in condition.objects if isinstance(a, AssetAlias)} == {
        f"{s}.{r}" for s, r in MODELS[model].inputs}
    assert dag.get_task("publish").outlets == [AssetAlias(name=f"reporting.{model}", group="signalroom")]


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_one_group_per_resource_with_load_first(dagbag, source):
    from signalroom.base.naming import dag_id_for

    dag = dagbag.get_dag(dag_id_for(source))
    spec = REGISTRY[source]
    groups = set(dag.task_group.children) - {"plan"}
    assert set(spec.resource_names) <= groups
    for resource in spec.resource_names:
        load = dag.get_task(f"{resource}.load")
        assert "plan" in load.upstream_task_ids
        assert load.retries >= 0 and load.retry_exponential_backoff


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_dag_settings(dagbag, source):
    from signalroom.base.naming import dag_id_for

    dag = dagbag.get_dag(dag_id_for(source))
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert "signalroom" in dag.tags and f"source:{source}" in dag.tags
    assert dag.timetable.__class__.__name__ == "CronDataIntervalTimetable"
    assert dag.doc_md and source in dag.doc_md
    assert dag.owner == REGISTRY[source].owner


def test_production_retries_default():
    """Without the test override, load tasks retry with backoff."""
    code = (
        "import os; os.environ.pop('SIGNALROOM_TASK_RETRIES', None);"
        "from signalroom.orchestration.factory import build_all_dags;"
        "d = build_all_dags()['signalroom_everflow'];"
        "t = d.get_task('daily_stats.load'); print(t.retries, t.retry_exponential_backoff)"
    )
    from tools.localenv import cli_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=cli_env())
    assert out.stdout.split()[-2:] == ["3", "True"]


def test_parse_does_not_import_dlt():
    """Parsing every DAG file in a fresh interpreter leaves dlt and the sources unimported."""
    code = (
        "import sys, json;"
        "from airflow.dag_processing.dagbag import DagBag;"
        f"b = DagBag(dag_folder={str(ROOT / 'dags')!r});"
        "print(json.dumps({'dags': len(b.dags), 'errors': len(b.import_errors),"
        " 'dlt': sorted(m for m in sys.modules if m == 'dlt' or m.startswith(('dlt.', 'signalroom.sources')))}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == 0 and result["dags"] >= len(REGISTRY)
    assert result["dlt"] == []
