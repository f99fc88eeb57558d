"""Timetables for the generated DAGs: each source's registry cron, read in its timezone.

`CronDataIntervalTimetable` (not a bare cron string, whose data interval has zero length in
Airflow 3) so that every scheduled and Airflow-backfill run carries the interval it loads.
The timezone, not fixed UTC hours, absorbs daylight saving; a cron that fires in a local hour
that a DST change skips or repeats would run zero or two times that day, so it is refused.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from airflow.sdk import CronDataIntervalTimetable
from croniter import croniter

from signalroom.registry import SourceSpec


class UnsafeScheduleError(ValueError):
    """A registry schedule that DST would make fire zero or two times on some days."""


@lru_cache(maxsize=None)
def dst_unsafe_hours(tz: str, year: int = 2025) -> frozenset[int]:
    """Local hours that a DST change skips or repeats in `tz` (America/New_York: 1 and 2)."""
    zone = ZoneInfo(tz)
    unsafe: set[int] = set()
    day = date(year, 1, 1)
    while day.year == year:
        before = datetime.combine(day, time(0), zone).utcoffset()
        after = datetime.combine(day + timedelta(days=1), time(0), zone).utcoffset()
        if before != after:  # a transition day: which wall-clock hours are gaps or folds?
            for hour in range(24):
                for minute in (0, 30, 59):
                    wall = datetime.combine(day, time(hour, minute))
                    if wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(
                        tzinfo=zone, fold=1
                    ).utcoffset():
                        unsafe.add(hour)
        day += timedelta(days=1)
    return frozenset(unsafe)


def check_dst_safe(cron: str, tz: str) -> None:
    """Refuse a cron that fires at a specific local hour DST skips or repeats."""
    try:
        fields, _ = croniter.expand(cron)
    except Exception as exc:  # croniter's own errors say what is wrong with the expression
        raise UnsafeScheduleError(f"schedule {cron!r} is not a valid cron expression: {exc}") from None
    hours = fields[1]
    if hours == ["*"]:
        return  # every hour: Airflow's cron timetable handles DST for these
    bad = sorted(set(hours) & dst_unsafe_hours(tz))
    if bad:
        raise UnsafeScheduleError(
            f"schedule {cron!r} fires at {', '.join(f'{h:02d}:xx' for h in bad)} {tz}, an hour a "
            "daylight-saving change skips or repeats (the run would be missed or doubled that "
            "day): pick an hour outside " + ", ".join(f"{h:02d}:00-{h:02d}:59" for h in sorted(dst_unsafe_hours(tz)))
        )


def describe_schedule(spec: SourceSpec) -> str:
    """The schedule in the source's own clock, for the DAG's description (the UI shows the cron
    against UTC): "daily at 03:00 ET" for a once-a-day cron, else the cron and its timezone."""
    fields = spec.schedule.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() and fields[2:] == ["*", "*", "*"]:
        zone = "ET" if spec.timezone == "America/New_York" else spec.timezone
        return f"daily at {int(fields[1]):02d}:{int(fields[0]):02d} {zone}"
    return f"cron `{spec.schedule}` in {spec.timezone}"


def timetable_for(spec: SourceSpec) -> CronDataIntervalTimetable:
    """The source's daily (or other cron) timetable with real data intervals, in its timezone."""
    check_dst_safe(spec.schedule, spec.timezone)
    return CronDataIntervalTimetable(spec.schedule, timezone=spec.timezone)
