"""Trigger-form Params -> run window: every rule, and invalid input failing the first task.

`resolve_run` is what the `plan` task runs; the DAG runs below go through the real task
(dag.test, in-process) to prove a bad form fails `plan` and no load task starts.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from signalroom.orchestration.params import (
    PARAM_NAMES,
    InvalidRunParams,
    RunContext,
    dag_params,
    describe_plan,
    form_values,
    resolve_run,
)
from signalroom.registry import REGISTRY

ET = ZoneInfo("America/New_York")
S3 = REGISTRY["s3_exports"]  # three resources: the subset rules need more than one
TODAY = datetime.now(ET).date()


def _manual(conf: dict | None = None, run_after: datetime | None = None) -> RunContext:
    return RunContext(run_type="manual", run_after=run_after or datetime.now(timezone.utc), conf=conf)


def _params(conf: dict) -> dict:
    return form_values(S3, conf)


# (id, conf, field the message must name, words of the fix it must give)
INVALID = [
    ("month-13", {"start_date": "2025-13-01", "end_date": "2025-01-02"}, "start_date", "YYYY-MM-DD"),
    ("us-format", {"start_date": "01/15/2025", "end_date": "2025-01-20"}, "start_date", "YYYY-MM-DD"),
    ("word", {"start_date": "2025-01-01", "end_date": "yesterday"}, "end_date", "YYYY-MM-DD"),
    ("feb-30", {"start_date": "2025-02-30", "end_date": "2025-03-01"}, "start_date", "YYYY-MM-DD"),
    ("basic-iso", {"start_date": "20250101", "end_date": "2025-01-02"}, "start_date", "YYYY-MM-DD"),
    ("timestamp", {"start_date": "2025-01-01T00:00:00", "end_date": "2025-01-02"}, "start_date", "YYYY-MM-DD"),
    ("unpadded", {"start_date": "2025-1-5", "end_date": "2025-01-06"}, "start_date", "YYYY-MM-DD"),
    ("no-end", {"start_date": "2025-01-01"}, "end_date", "needs both"),
    ("no-start", {"end_date": "2025-01-01"}, "start_date", "needs both"),
    ("blank-end", {"start_date": "2025-01-01", "end_date": ""}, "end_date", "needs both"),
    ("spaces-start", {"start_date": "  ", "end_date": "2025-01-02"}, "start_date", "needs both"),
    ("reversed", {"start_date": "2025-01-10", "end_date": "2025-01-09"}, "end_date", "swap"),
    ("end-today", {"start_date": str(TODAY - timedelta(2)), "end_date": str(TODAY)}, "end_date",
     str(TODAY - timedelta(1))),
    ("end-next-month", {"start_date": str(TODAY - timedelta(2)), "end_date": str(TODAY + timedelta(30))},
     "end_date", "or earlier"),
    ("far-future", {"start_date": "2999-01-01", "end_date": "2999-01-02"}, "end_date", "or earlier"),
    ("one-day-too-long", {"start_date": "2024-01-01", "end_date": str(date(2024, 1, 1) + timedelta(S3.max_backfill_days))},
     "start_date..end_date", f"at most {S3.max_backfill_days} days"),
    ("years", {"start_date": "2015-01-01", "end_date": "2025-01-01"}, "start_date..end_date", "split"),
    ("unknown-resource", {"resources": ["orders"]}, "resources", "choose from"),
    ("no-resources", {"resources": []}, "resources", "select at least one"),
    ("resource-case", {"resources": ["orders_create", "Orders_Update"]}, "resources", "choose from"),
    ("blank-resource", {"resources": ["orders_create", ""]}, "resources", "choose from"),
    ("misspelt-keys", {"start": "2025-01-01", "end": "2025-01-02"}, "unknown parameter", "start_date"),
    ("singular-resource", {"start_date": "2025-01-01", "end_date": "2025-01-02", "resource": ["orders_create"]},
     "unknown parameter", "resources"),
]
assert len(INVALID) >= 20
# not a YYYY-MM-DD date at all: the form's date pickers (`format: date`) cannot produce these, and
# Airflow refuses them when a run is created through REST or the CLI; `plan` still checks them
NOT_DATES = {"month-13", "us-format", "word", "feb-30", "basic-iso", "timestamp", "unpadded", "blank-end",
             "spaces-start"}
ACCEPTED_BY_SCHEMA = [c for c in INVALID if c[0] not in NOT_DATES]


@pytest.mark.parametrize("conf, field, fix", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_params_named_with_fix(conf, field, fix):
    with pytest.raises(InvalidRunParams) as err:
        resolve_run(S3, _params(conf), _manual(conf))
    message = str(err.value)
    assert field in message and fix in message, message


@pytest.mark.parametrize("conf", [c[1] for c in ACCEPTED_BY_SCHEMA], ids=[c[0] for c in ACCEPTED_BY_SCHEMA])
def test_invalid_params_pass_the_form_schema(serialized_s3_dag, conf):
    """Airflow validates Param schemas when it creates a run (`create_dagrun`): these must get
    through, so that the first task, not a bare JSON-schema error, explains them."""
    serialized_s3_dag.params.deep_merge(conf).validate()


@pytest.mark.parametrize("case", sorted(NOT_DATES))
def test_non_dates_are_refused_when_a_run_is_created_naming_the_field(serialized_s3_dag, case):
    from airflow.exceptions import ParamValidationError

    conf, field = next((c[1], c[2]) for c in INVALID if c[0] == case)
    with pytest.raises(ParamValidationError) as err:
        serialized_s3_dag.params.deep_merge(conf).validate()
    assert field in str(err.value) and "date" in str(err.value)


def test_form_dates_are_date_pickers_in_their_own_section():
    from signalroom.orchestration.params import FORM_SECTION

    params = dag_params(S3)
    for name in ("start_date", "end_date"):
        schema = params[name].schema
        assert schema["format"] == "date" and "null" in schema["type"]  # a cleared picker sends null
        assert schema["section"] == FORM_SECTION
    # not "Backfill": Airflow's trigger dialog has its own Backfill option beside the form
    assert "backfill" not in FORM_SECTION.lower()
    assert not any("backfill" in str(p.schema.get("title", "")).lower() for p in params.values())
    dag_params(S3)["start_date"].resolve(None)  # the empty form (a normal run) is valid


def test_form_schema_still_checks_types(serialized_s3_dag):
    from airflow.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        serialized_s3_dag.params.deep_merge({"dry_run": "maybe"}).validate()


@pytest.fixture(scope="module")
def serialized_s3_dag():
    """The DAG as the scheduler / API see it when they create a run."""
    from airflow.serialization.serialized_objects import DagSerialization

    from signalroom.orchestration.factory import build_dag

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(build_dag(S3)))


def test_form_has_titles_descriptions_and_registry_choices():
    params = dag_params(S3)
    assert tuple(params) == PARAM_NAMES
    for param in params.values():
        assert param.schema.get("title") and param.description
    resources = params["resources"]
    assert resources.value == list(S3.resource_names)
    assert resources.schema["examples"] == list(S3.resource_names)  # multi-select choices
    assert params["dry_run"].value is False


def test_backfill_window_from_params():
    conf = {"start_date": "2025-01-05", "end_date": " 2025-01-07 ", "resources": ["orders_update", "orders_create"]}
    plan = resolve_run(S3, _params(conf), _manual(conf))
    assert plan["window"] == {"start": "2025-01-05", "end": "2025-01-07", "backfill": True}
    assert plan["resources"] == ["orders_create", "orders_update"]  # registry order
    assert plan["dry_run"] is False and plan["run_type"] == "manual"


def test_one_day_and_maximum_range_are_valid():
    one = {"start_date": "2025-01-05", "end_date": "2025-01-05"}
    assert resolve_run(S3, _params(one), _manual(one))["window"]["start"] == "2025-01-05"
    end = TODAY - timedelta(days=1)
    longest = {"start_date": str(end - timedelta(S3.max_backfill_days - 1)), "end_date": str(end)}
    assert resolve_run(S3, _params(longest), _manual(longest))["window"]["backfill"] is True


def test_manual_run_without_dates_loads_up_to_yesterday_et_from_the_cursor():
    # 03:30 UTC on Jan 10 is still Jan 9 in New York: yesterday (ET) is Jan 8
    run_after = datetime(2025, 1, 10, 3, 30, tzinfo=timezone.utc)
    plan = resolve_run(S3, _params({}), _manual({}, run_after))
    assert plan["window"] == {"start": None, "end": "2025-01-08", "backfill": False}
    assert plan["resources"] == list(S3.resource_names)


def test_today_is_the_et_day_not_the_utc_day():
    # 02:00 UTC on Jan 10 = 21:00 ET on Jan 9: Jan 9 is not finished yet
    run_after = datetime(2025, 1, 10, 2, 0, tzinfo=timezone.utc)
    conf = {"start_date": "2025-01-08", "end_date": "2025-01-09"}
    with pytest.raises(InvalidRunParams, match="today in America/New_York is 2025-01-09"):
        resolve_run(S3, _params(conf), _manual(conf, run_after))


def test_scheduled_run_window_is_the_finished_et_day_from_the_cursor():
    # interval of the 06:00 ET cron: Jan 9 06:00 .. Jan 10 06:00 ET -> loads up to Jan 9
    run = RunContext(
        run_type="scheduled",
        run_after=datetime(2025, 1, 10, 11, 0, tzinfo=timezone.utc),
        data_interval_start=datetime(2025, 1, 9, 6, 0, tzinfo=ET),
        data_interval_end=datetime(2025, 1, 10, 6, 0, tzinfo=ET),
        conf={},
    )
    plan = resolve_run(S3, _params({}), run)
    assert plan["window"] == {"start": None, "end": "2025-01-09", "backfill": False}
    line = describe_plan("s3_exports", plan, run)
    assert "scheduled run of s3_exports" in line and "2025-01-09" in line and "cursor" in line


def _scheduled_for(day: date, now: datetime) -> RunContext:
    """The 06:00 ET s3_exports run whose interval covers `day`, planned at `now`."""
    start = datetime(day.year, day.month, day.day, 6, tzinfo=ET)
    end = datetime.combine(day + timedelta(days=1), start.timetz())
    return RunContext("scheduled", run_after=end, data_interval_start=start, data_interval_end=end,
                      conf={}, now=now)


def test_late_scheduled_run_within_the_look_back_stays_on_the_cursor():
    day = date(2025, 1, 9)
    for late_days in range(S3.lookback_days):  # a delayed scheduler, or a rerun the same week
        now = datetime(2025, 1, 10, 12, tzinfo=ET) + timedelta(days=late_days)
        plan = resolve_run(S3, _params({}), _scheduled_for(day, now))
        assert plan["window"] == {"start": None, "end": "2025-01-09", "backfill": False}, late_days


def test_cleared_old_scheduled_run_reloads_exactly_its_interval():
    """The cursor path would find nothing to re-read that far back: load the interval itself."""
    day = date(2025, 1, 9)
    now = datetime(2025, 1, 10, 12, tzinfo=ET) + timedelta(days=S3.lookback_days)
    run = _scheduled_for(day, now)
    plan = resolve_run(S3, _params({}), run)
    assert plan["window"] == {"start": "2025-01-09", "end": "2025-01-09", "backfill": True}
    assert "older than the look-back" in describe_plan("s3_exports", plan, run)


def test_airflow_backfill_run_loads_its_own_interval():
    run = RunContext(
        run_type="backfill",
        run_after=datetime(2025, 1, 4, 11, 0, tzinfo=timezone.utc),
        data_interval_start=datetime(2025, 1, 3, 6, 0, tzinfo=ET),
        data_interval_end=datetime(2025, 1, 4, 6, 0, tzinfo=ET),
        conf={"resources": ["prospects_create"]},
    )
    plan = resolve_run(S3, _params(run.conf), run)
    assert plan["window"] == {"start": "2025-01-03", "end": "2025-01-03", "backfill": True}
    assert plan["resources"] == ["prospects_create"] and plan["run_type"] == "backfill"


def test_airflow_backfill_run_refuses_form_dates():
    conf = {"start_date": "2025-01-01", "end_date": "2025-01-02"}
    run = RunContext(
        run_type="backfill",
        run_after=datetime(2025, 1, 4, 11, 0, tzinfo=timezone.utc),
        data_interval_start=datetime(2025, 1, 3, 6, 0, tzinfo=ET),
        data_interval_end=datetime(2025, 1, 4, 6, 0, tzinfo=ET),
        conf=conf,
    )
    with pytest.raises(InvalidRunParams, match="its own data interval.*--dag-run-conf"):
        resolve_run(S3, _params(conf), run)


def test_dry_run_flag():
    conf = {"dry_run": True}
    assert resolve_run(S3, _params(conf), _manual(conf))["dry_run"] is True


# --- through the real first task ---------------------------------------------------------


def _task_output(capfd, caplog) -> str:
    """What the in-process task wrote: to the console or, depending on set-up, to logging."""
    return "".join(capfd.readouterr()) + caplog.text


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture(scope="module")
def s3_dag(airflow_db):
    from signalroom.orchestration.factory import build_dag

    return build_dag(S3)


@pytest.mark.slow
@pytest.mark.parametrize("conf, field, fix", [c[1:] for c in ACCEPTED_BY_SCHEMA], ids=[c[0] for c in ACCEPTED_BY_SCHEMA])
def test_invalid_params_fail_the_plan_task_before_any_load(s3_dag, capfd, caplog, conf, field, fix):
    dag_run = s3_dag.test(run_conf=conf)
    states = _states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states.pop("plan") == "failed"
    assert set(states.values()) == {"upstream_failed"}, states  # no load task ever started
    out = _task_output(capfd, caplog)
    assert "InvalidRunParams" in out and field in out and fix in out


@pytest.mark.slow
def test_dry_run_plans_and_loads_nothing(s3_dag, capfd, caplog):
    end = TODAY - timedelta(days=1)
    conf = {"start_date": str(end - timedelta(days=2)), "end_date": str(end), "dry_run": True,
            "resources": ["orders_create"]}
    dag_run = s3_dag.test(run_conf=conf)
    states = _states(dag_run)
    assert str(dag_run.state) == "success" and states.pop("plan") == "success"
    assert set(states.values()) == {"skipped"}, states
    out = _task_output(capfd, caplog)
    assert f"manual run of s3_exports: backfill window {end - timedelta(days=2)} .. {end}" in out
    assert "DRY RUN" in out
