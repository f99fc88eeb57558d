"""Names derived from a source's registry name: its dlt pipelines, its DAG."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

DAG_ID_PREFIX = "signalroom_"
# first logical date of every generated DAG (catch-up is off: history is loaded on purpose)
START_DATE = datetime(2025, 1, 1, tzinfo=ZoneInfo("America/New_York"))


def pipeline_name(source: str, resource: str) -> str:
    """One dlt pipeline per resource, so parallel resource loads never share state."""
    return f"{source}__{resource}"


def dag_id_for(source: str) -> str:
    return f"{DAG_ID_PREFIX}{source}"


def intraday_dag_id_for(source: str) -> str:
    """The source's intraday DAG (today's partial numbers, hourly)."""
    return f"{dag_id_for(source)}_intraday"


def table_alias_name(source: str, resource: str) -> str:
    """The Airflow asset alias a resource's load emits its tables through (`everflow.daily_stats`)."""
    return f"{source}.{resource}"
