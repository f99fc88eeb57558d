"""Timetables: every source's cron in America/New_York gives one run per ET day, the run's
window is exactly the day that finished, across daylight-saving changes, and no two runs
of one pipeline can overlap."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from signalroom.orchestration.params import RunContext, form_values, resolve_run
from signalroom.orchestration.schedules import UnsafeScheduleError, check_dst_safe, dst_unsafe_hours
from signalroom.registry import REGISTRY

ET = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


@pytest.fixture(scope="module")
def serialized_dags():
    """The DAGs as the scheduler sees them (it computes run intervals from these)."""
    from airflow.serialization.serialized_objects import DagSerialization

    from signalroom.orchestration.factory import build_all_dags

    return {
        dag_id: DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
        for dag_id, dag in build_all_dags().items()
    }


def _runs_in_2025(dag):
    """The scheduled runs of a year, as `airflow backfill create` enumerates them."""
    return list(
        dag.iter_dagrun_infos_between(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    )


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_one_run_per_et_day_at_the_registry_hour_through_dst(serialized_dags, source):
    spec = REGISTRY[source]
    dag = serialized_dags[f"signalroom_{source}"]
    hour = int(spec.schedule.split()[1])
    infos = _runs_in_2025(dag)
    lengths = set()
    days = []
    for info in infos:
        start, end = (t.astimezone(ET) for t in (info.data_interval.start, info.data_interval.end))
        assert (start.hour, start.minute, end.hour, end.minute) == (hour, 0, hour, 0), info
        assert end.date() == start.date() + timedelta(days=1)
        lengths.add(timedelta(seconds=end.timestamp() - start.timestamp()))
        days.append(start.date())
    # DST is absorbed by the timezone: 23- and 25-hour intervals on the change days
    assert lengths == {timedelta(hours=23), timedelta(hours=24), timedelta(hours=25)}
    assert days == [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]  # no gap, no repeat


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_every_run_window_is_exactly_the_finished_et_day(serialized_dags, source):
    """Scheduled runs end at the day their interval covers; Airflow backfill runs load just it."""
    spec = REGISTRY[source]
    params = form_values(spec, {})
    for info in _runs_in_2025(serialized_dags[f"signalroom_{source}"]):
        day = info.data_interval.start.astimezone(ET).date()
        common = dict(
            run_after=info.run_after,
            data_interval_start=info.data_interval.start,
            data_interval_end=info.data_interval.end,
            conf={},
        )
        scheduled = resolve_run(spec, params, RunContext(run_type="scheduled", **common))
        assert scheduled["window"] == {"start": None, "end": day.isoformat(), "backfill": False}
        backfill = resolve_run(spec, params, RunContext(run_type="backfill", **common))
        assert backfill["window"] == {"start": day.isoformat(), "end": day.isoformat(), "backfill": True}


def test_spring_forward_and_fall_back_days_et():
    """The two 2025 change days by hand: the 03:00 ET run still covers exactly one ET day."""
    spec = REGISTRY["everflow"]
    for day in (date(2025, 3, 9), date(2025, 11, 2)):
        start = datetime(day.year, day.month, day.day, 3, tzinfo=ET)
        end = datetime.combine(day + timedelta(days=1), start.timetz())
        run = RunContext("scheduled", run_after=end, data_interval_start=start, data_interval_end=end, conf={})
        assert resolve_run(spec, form_values(spec, {}), run)["window"]["end"] == day.isoformat()


def test_dst_unsafe_hours_of_new_york():
    assert dst_unsafe_hours("America/New_York") == {1, 2}
    assert dst_unsafe_hours("UTC") == set()


@pytest.mark.parametrize("cron", ["0 3 * * *", "0 6 * * *", "15 0 * * *", "0 7-23 * * *", "*/30 * * * *"])
def test_safe_schedules(cron):
    check_dst_safe(cron, "America/New_York")


@pytest.mark.parametrize("cron", ["30 2 * * *", "0 1 * * *", "0 0-3 * * *", "not a cron"])
def test_unsafe_or_invalid_schedules_are_refused_with_the_fix(cron):
    with pytest.raises(UnsafeScheduleError) as err:
        check_dst_safe(cron, "America/New_York")
    assert cron in str(err.value) and ("pick an hour outside" in str(err.value) or "not a valid cron" in str(err.value))


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_dag_runs_never_overlap_per_pipeline(serialized_dags, source):
    dag = serialized_dags[f"signalroom_{source}"]
    spec = REGISTRY[source]
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.timetable.summary == spec.schedule
    for resource in spec.resource_names:
        # Airflow backfill runs are not bound by max_active_runs: the load task itself is
        assert dag.get_task(f"{resource}.load").max_active_tis_per_dag == 1


def test_dag_description_states_the_schedule_in_et(serialized_dags):
    """The UI shows the cron against UTC; the description says when the run starts in ET."""
    from dataclasses import replace

    from signalroom.orchestration.schedules import describe_schedule

    assert describe_schedule(REGISTRY["everflow"]) == "daily at 03:00 ET"
    assert describe_schedule(REGISTRY["s3_exports"]) == "daily at 06:00 ET"
    assert describe_schedule(replace(REGISTRY["everflow"], schedule="30 7-18 * * 1-5")) == (
        "cron `30 7-18 * * 1-5` in America/New_York"
    )
    for source, spec in REGISTRY.items():
        description = serialized_dags[f"signalroom_{source}"].description
        assert description.startswith(spec.description)
        assert description.endswith(f"Runs {describe_schedule(spec)}.")
