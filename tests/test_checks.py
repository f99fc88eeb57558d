"""Health checks against real loads: each check passes on a clean dlt load into Postgres and
fails, on purpose, on the damage it exists for (a failed load row, orphan rows, a duplicated
key, a NULL key, a stale table, an older state, an oversized state). The operators are the
tasks of a DAG built by the real factory, executed with a real warehouse connection."""

from __future__ import annotations

import uuid

import pytest

from signalroom import registry
from signalroom.checks import catalog, sqlfiles
from signalroom.checks.identifiers import InvalidIdentifier
from signalroom.checks.scope import InvalidLoadSummary, ResourceRun, horizon_load_id
from signalroom.registry import ResourceSpec, SourceSpec
from tests.support import checks_source, db
from tests.support.checks_source import XComFromSummaries, day

RESOURCE_CHECKS = ["check_loads_completed", "check_no_orphan_rows", "check_unique_key",
                   "check_key_not_null", "check_freshness", "check_volume"]
DAG_CHECKS = ["dag_checks.pipeline_state", "dag_checks.no_failed_loads", "dag_checks.state_size"]


# ---------------------------------------------------------------- no database needed
def test_dataset_with_a_quote_is_rejected_when_the_dag_is_built():
    from signalroom.orchestration.factory import build_dag

    bad = SourceSpec(name="bad", ref="x:y", description="-", dataset="ever'flow",
                     resources=(ResourceSpec("daily", table="daily", primary_key=("id",)),))
    with pytest.raises(InvalidIdentifier, match=r"dataset \"ever'flow\" is not a valid identifier.*registry"):
        build_dag(bad)


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        (ResourceSpec("d", table='da"ily'), "table of resource 'd'"),
        (ResourceSpec("d", table="daily", primary_key=("id;drop",)), "primary key column"),
        (ResourceSpec("d", table="daily", primary_key=("order",)), "reserved word"),
        (ResourceSpec("d", table="daily", date_column="Date"), "date column"),
        (ResourceSpec("d", table="t" * 64), "over the 63-byte limit"),
    ],
)
def test_names_that_reach_sql_are_validated(resource, message):
    with pytest.raises(InvalidIdentifier, match=message):
        catalog.validate_resource("everflow", resource)


def test_load_ids_are_validated_before_they_reach_sql():
    summary = {"pipeline": "p__r", "window": {"end": "2025-03-05"}, "rows": {}, "load_ids": ["1' OR '1'='1"]}
    with pytest.raises(InvalidLoadSummary, match="not a dlt load id"):
        ResourceRun.from_summary(summary, "t", "task 'r.load'")
    with pytest.raises(InvalidLoadSummary, match="not a load summary"):
        ResourceRun.from_summary(None, "t", "task 'r.load'")


def test_horizon_is_seven_days_before_the_first_load():
    assert horizon_load_id(("1700604800.5", "1700000000.25")) == "1699395200"
    assert horizon_load_id((), now=1_700_000_000) == "1699395200"


def test_every_check_file_has_the_sections_its_operator_needs():
    needed = {"value": {"check"}, "threshold": {"check"}, "column": {"partition"},
              "table": {"table_expression", *catalog.PIPELINE_STATE_CHECKS}}
    for check in [*catalog.resource_checks_for(checks_source.SPEC.resources[0]), *catalog.DAG_CHECKS]:
        if check.operator == "volume":
            continue  # its two queries are built in checks/volume.py (tests/test_volume.py)
        sql = check.sql
        assert needed[check.operator] | {"offenders"} <= set(sql.sections), check.name
        assert sql.description and sql.expected, check.name
    with pytest.raises(KeyError):  # a placeholder without a value is an error, not a blank
        sqlfiles.render("SELECT ${missing}", {})


# ---------------------------------------------------------------- real loads
def _pg(url):
    return db.connect(url, autocommit=True)


@pytest.fixture
def warehouse(pg_database, dlt_data_dir, monkeypatch):
    """A Postgres warehouse with the fixture source registered and `signalroom_warehouse` set."""
    for key, value in checks_source.warehouse_conn_env(pg_database).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(registry.REGISTRY, checks_source.SOURCE, checks_source.SPEC)
    monkeypatch.setitem(checks_source.FIXTURE, "skip_days", set())
    return pg_database


def _load(resource, end=5, **window):
    from signalroom.orchestration.connections import warehouse_destination
    from signalroom.pipeline import Window, run_load

    return run_load(checks_source.SOURCE, resource, Window(end=day(end), **window), warehouse_destination())


@pytest.fixture
def run(warehouse):
    """One clean scheduled-style run of both resources; returns (dag, context, summaries)."""
    from signalroom.orchestration.factory import build_dag

    summaries = {"daily.load": _load("daily"), "events.load": _load("events")}
    dag = build_dag(checks_source.SPEC)
    context = {"ti": XComFromSummaries(summaries)}
    for group in ("daily", "events"):
        dag.get_task(f"{group}.check_indexes").execute(context)
    return dag, context, summaries


def _execute(dag, context, task_id):
    return dag.get_task(task_id).execute(context)


def _fails(dag, context, task_id, *expected_in_log):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failure:
        _execute(dag, context, task_id)
    report = str(failure.value)
    check_name = task_id.split(".")[-1]
    for part in (f"health check {check_name}", ": FAILED", "expected:", "actual:", "SQL:",
                 "offending rows", *expected_in_log):
        assert part in report, f"{part!r} not in report:\n{report}"
    return report


def test_clean_load_passes_every_check_and_creates_the_indexes(run, warehouse):
    dag, context, summaries = run
    assert summaries["daily.load"]["rows"] == {"daily": 6}
    for task_id in [f"daily.{c}" for c in RESOURCE_CHECKS] + [
        "events.check_loads_completed", "events.check_no_orphan_rows", "events.check_freshness",
        "events.check_volume", *DAG_CHECKS,
    ]:
        _execute(dag, context, task_id)
    with _pg(warehouse).cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'sr\\_%' ORDER BY 1")
        names = [r[0] for r in cur.fetchall()]
    assert names == sorted([
        "sr__dlt_loads__inserted_at", "sr__dlt_loads__load_id",
        "sr__dlt_pipeline_state__pipeline_name__dlt_load_id",
        "sr_daily__dlt_load_id", "sr_daily__date__id", "sr_events__dlt_load_id",
        "sr_events__day",  # the volume check's rows per day (daily's key starts with its date)
    ])
    assert "events.check_unique_key" not in dag.task_dict  # append table: no key checks


def test_failed_load_row_fails_the_run_and_the_dataset(run, warehouse):
    dag, context, summaries = run
    load_id = summaries["daily.load"]["load_ids"][0]
    with _pg(warehouse).cursor() as cur:
        cur.execute("UPDATE checks_fixture._dlt_loads SET status = 1 WHERE load_id = %s", (load_id,))
    report = _fails(dag, context, "daily.check_loads_completed", load_id, "status")
    assert "actual: 0" in report
    _fails(dag, context, "dag_checks.no_failed_loads", load_id)
    _execute(dag, context, "events.check_loads_completed")  # the other resource's load is fine


def test_orphan_rows_fail_with_the_rows_shown(run, warehouse):
    dag, context, summaries = run
    orphan = f"{float(summaries['daily.load']['load_ids'][0]) - 3600:.6f}"  # an hour earlier
    with _pg(warehouse).cursor() as cur:
        for i in range(25):
            cur.execute(
                "INSERT INTO checks_fixture.daily (date, id, amount, _client_id, _dlt_load_id, _dlt_id)"
                " VALUES (%s, %s, 1, '713', %s, %s)", (day(1), 1000 + i, orphan, uuid.uuid4().hex[:14]),
            )
    report = _fails(dag, context, "daily.check_no_orphan_rows", orphan, "actual: 25")
    assert "(20 shown, at most 20)" in report
    _execute(dag, context, "daily.check_loads_completed")


def test_duplicated_key_fails(run, warehouse):
    dag, context, summaries = run
    load_id = summaries["daily.load"]["load_ids"][0]
    with _pg(warehouse).cursor() as cur:
        cur.execute(
            "INSERT INTO checks_fixture.daily (date, id, amount, _client_id, _dlt_load_id, _dlt_id)"
            " VALUES (%s, 1, 99, '713', %s, 'dup-1')", (day(5), load_id),
        )
    report = _fails(dag, context, "daily.check_unique_key", "copies", "2025-03-05 | 1  | 2")
    assert "actual: 1" in report


def test_null_key_fails(run, warehouse):
    dag, context, summaries = run
    load_id = summaries["daily.load"]["load_ids"][0]
    with _pg(warehouse).cursor() as cur:
        cur.execute("ALTER TABLE checks_fixture.daily ALTER COLUMN id DROP NOT NULL")
        cur.execute(
            "INSERT INTO checks_fixture.daily (date, id, amount, _client_id, _dlt_load_id, _dlt_id)"
            " VALUES (%s, NULL, 1, '713', %s, 'null-key')", (day(5), load_id),
        )
    _fails(dag, context, "daily.check_key_not_null", "id.null_check = 1", "2025-03-05 | NULL")


def test_stale_table_fails_but_a_source_without_rows_only_warns(warehouse, monkeypatch, capfd):
    from signalroom.orchestration.factory import build_dag

    dag = build_dag(checks_source.SPEC)
    monkeypatch.setitem(checks_source.FIXTURE, "skip_days", {day(5)})  # rows, but none for the window end
    stale = {"daily.load": _load("daily")}
    assert stale["daily.load"]["rows"] == {"daily": 3}
    context = {"ti": XComFromSummaries(stale)}
    _fails(dag, context, "daily.check_freshness", "newest_date", "2025-03-04", "2025-03-05")

    monkeypatch.setitem(checks_source.FIXTURE, "skip_days", {day(5), day(6)})  # no rows at all this run
    empty = {"daily.load": _load("daily", end=6)}
    assert empty["daily.load"]["rows"] == {}
    capfd.readouterr()
    _execute(dag, {"ti": XComFromSummaries(empty)}, "daily.check_freshness")  # passes...
    out = "".join(capfd.readouterr())
    assert "WARNING (does not fail the run)" in out and "check_freshness" in out  # ...with a warning


def test_a_table_the_source_never_filled_has_nothing_to_check(warehouse, monkeypatch, capfd):
    from signalroom.orchestration.factory import build_dag

    monkeypatch.setitem(checks_source.FIXTURE, "skip_days", {day(4), day(5)})  # an empty prefix, say
    summaries = {"events.load": _load("events")}
    dag = build_dag(checks_source.SPEC)
    context = {"ti": XComFromSummaries(summaries)}
    capfd.readouterr()
    for task_id in ("events.check_indexes", "events.check_loads_completed",
                    "events.check_no_orphan_rows", "events.check_freshness"):
        _execute(dag, context, task_id)
    assert "nothing to check" in "".join(capfd.readouterr())


def test_state_regression_and_missing_state_fail(run, warehouse):
    from signalroom.orchestration.factory import build_dag

    dag, _, first = run
    second = _load("daily", end=6)  # the run under test: the cursor moves from day 5 to day 6
    context = {"ti": XComFromSummaries({"daily.load": second, "events.load": first["events.load"]})}
    _execute(dag, context, "dag_checks.pipeline_state")
    load_id, pipeline = second["load_ids"][0], second["pipeline"]
    state = "checks_fixture._dlt_pipeline_state"
    with _pg(warehouse).cursor() as cur:
        cur.execute(f"SELECT version FROM {state} WHERE _dlt_load_id = %s", (load_id,))
        assert cur.fetchone()[0] == 2
        cur.execute(f"UPDATE {state} SET version = 0 WHERE _dlt_load_id = %s", (load_id,))
    report = _fails(build_dag(checks_source.SPEC), context, "dag_checks.pipeline_state", "state_version_not_lower",
                    pipeline)
    assert "version_before_run" in report

    # a worker with stale local state stores an older version after this run's state
    with _pg(warehouse).cursor() as cur:
        cur.execute(f"UPDATE {state} SET version = 2 WHERE _dlt_load_id = %s", (load_id,))
        newer = f"{float(load_id) + 1:.6f}"
        cur.execute("INSERT INTO checks_fixture._dlt_loads VALUES (%s, 'checks_fixture', 0, now(), NULL)",
                    (newer,))
        cur.execute(
            f"INSERT INTO {state} (version, engine_version, pipeline_name, state, created_at, version_hash,"
            " _dlt_load_id, _dlt_id) SELECT 1, engine_version, pipeline_name, state, now(), 'stale', %s,"
            f" 'stale-state' FROM {state} WHERE _dlt_load_id = %s", (newer, load_id),
        )
    _fails(dag, context, "dag_checks.pipeline_state", "state_version_not_lower", pipeline)

    # the run moved the cursor but stored no state: a fresh worker would resume from day 5
    with _pg(warehouse).cursor() as cur:
        cur.execute(f"DELETE FROM {state} WHERE _dlt_load_id IN (%s, %s)", (newer, load_id))
    assert second["cursor_before"] != second["cursor_after"]
    _fails(dag, context, "dag_checks.pipeline_state", "state_row_present", pipeline)


def test_state_over_the_bound_fails(run, monkeypatch):
    dag, context, _ = run
    monkeypatch.setenv(catalog.ENV_STATE_MAX_BYTES, "100")
    report = _fails(dag, context, "dag_checks.state_size", "checks_fixture__daily", "state_bytes")
    assert "largest state <= 100 bytes" in report


def test_a_skipped_resource_is_left_out_of_the_dataset_checks(warehouse):
    """Only `daily` loaded this run (events not selected): the DAG checks cover it alone."""
    from signalroom.orchestration.factory import build_dag

    dag = build_dag(checks_source.SPEC)
    context = {"ti": XComFromSummaries({"daily.load": _load("daily")})}  # events.load: no XCom
    for task_id in DAG_CHECKS:
        _execute(dag, context, task_id)


# ---------------------------------------------------------------- the same SQL on DuckDB
def test_same_checks_on_duckdb(tmp_path, dlt_data_dir, monkeypatch):
    import json

    import duckdb

    from signalroom.orchestration.factory import build_dag

    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_SIGNALROOM_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    monkeypatch.setitem(registry.REGISTRY, checks_source.SOURCE, checks_source.SPEC)
    monkeypatch.setitem(checks_source.FIXTURE, "skip_days", set())
    summaries = {"daily.load": _load("daily"), "events.load": _load("events")}
    dag = build_dag(checks_source.SPEC)
    context = {"ti": XComFromSummaries(summaries)}
    for task_id in ["daily.check_indexes", *[f"daily.{c}" for c in RESOURCE_CHECKS], *DAG_CHECKS]:
        _execute(dag, context, task_id)

    load_id = summaries["daily.load"]["load_ids"][0]
    with duckdb.connect(str(path)) as db:
        db.execute("INSERT INTO checks_fixture.daily (date, id, amount, _client_id, _dlt_load_id, _dlt_id)"
                   " VALUES (?, 1, 99, '713', ?, 'dup-1')", [day(5), load_id])
    _fails(dag, context, "daily.check_unique_key", "(duckdb)", "copies", "2025-03-05 | 1  | 2")
