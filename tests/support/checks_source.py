"""Helpers for the health-check tests (no tests here): a small real dlt source registered in
the registry for the duration of a test, a warehouse connection for Airflow, and the
load summaries the checks read. Sources of the other helpers are not needed for these tests.
"""

from __future__ import annotations

from datetime import date, timedelta

from signalroom.registry import ResourceSpec, SourceSpec
from tests.support import db

SOURCE = "checks_fixture"
# What the fixture source yields; tests change it to shape a run (in-process only).
FIXTURE: dict = {"rows_per_day": 3, "skip_days": set()}


def checks_fixture(start_date, end_date, backfill, lookback_days, client_id="713", **_):
    """A registry-contract source: `daily` (merge on date, id) and `events` (append)."""
    import dlt

    first = start_date or end_date - timedelta(days=lookback_days - 1)
    days = [first + timedelta(days=i) for i in range((end_date - first).days + 1)]
    days = [d for d in days if d not in FIXTURE["skip_days"]]

    @dlt.resource(name="daily", primary_key=("date", "id"), write_disposition="merge")
    def daily():
        if not backfill:  # a cursor-like state entry, as the real sources keep
            dlt.current.resource_state()["last_day"] = end_date.isoformat()
        yield [
            {"date": d, "id": i, "amount": float(i + d.day), "_client_id": client_id}
            for d in days
            for i in range(FIXTURE["rows_per_day"])
        ]

    @dlt.resource(name="events", write_disposition="append")
    def events():
        yield [{"day": d, "n": 1} for d in days]

    @dlt.source(name=SOURCE)
    def source():
        return daily, events

    return source()


SPEC = SourceSpec(
    name=SOURCE,
    ref=f"{__name__}:checks_fixture",
    resources=(
        ResourceSpec("daily", table="daily", primary_key=("date", "id"), date_column="date"),
        ResourceSpec("events", table="events", date_column="day", write_disposition="append"),
    ),
    description="health-check test fixture",
    lookback_days=2,
)


def warehouse_conn_env(pg_url: str) -> dict[str, str]:
    """AIRFLOW_CONN_SIGNALROOM_WAREHOUSE for a test database (trust auth: any password)."""
    return db.warehouse_connection_env(pg_url)


class XComFromSummaries:
    """The one TaskInstance method the checks call, answering from given load summaries."""

    def __init__(self, summaries: dict[str, dict]):
        self.summaries = summaries

    def xcom_pull(self, task_ids: str, key: str = "return_value"):
        return self.summaries.get(task_ids)


def day(n: int) -> date:
    return date(2025, 3, n)
