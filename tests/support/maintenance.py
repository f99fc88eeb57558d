"""Shared by the maintenance, state and plugin tests: real RedTrack loads against the loopback
API stand-in into real Postgres, through the load task's code path (`run_load`)."""

from __future__ import annotations

from datetime import date
from typing import Any

from signalroom.destinations import DestinationConfig
from signalroom.pipeline import Window, build_source, make_pipeline, run_load
from tests.support import db
from tests.support.db import with_password
from tools.standins.api import ApiStandin

SOURCE, RESOURCE, PIPELINE, DAG_ID = "redtrack", "daily_spend", "redtrack__daily_spend", "signalroom_redtrack"
KEY = "rt-maintenance-key"
INTERVAL = 0.06  # seconds between requests; the stand-in's limit is set to 0.05


def start_standin() -> ApiStandin:
    server = ApiStandin(redtrack_key=KEY).start()
    server.rate_limit_interval = 0.05
    return server


def source_kwargs(standin: ApiStandin) -> dict[str, Any]:
    return {"api_key": KEY, "base_url": standin.url, "request_interval": INTERVAL}


def postgres(url: str) -> DestinationConfig:
    return DestinationConfig(kind="postgres", postgres_url=with_password(url))


def load(standin: ApiStandin, destination: DestinationConfig, end: date) -> dict[str, Any]:
    """A scheduled-style run up to `end` (look-back from the cursor), as the load task runs it."""
    return run_load(SOURCE, RESOURCE, Window(end=end), destination, source_kwargs=source_kwargs(standin))


def extract(standin: ApiStandin, destination: DestinationConfig, end: date, normalize: bool) -> None:
    """Extract (and normalize) a window without loading it: what a crash between steps leaves."""
    pipeline = make_pipeline(SOURCE, RESOURCE, destination)
    pipeline.extract(build_source(SOURCE, RESOURCE, Window(end=end), source_kwargs(standin)))
    if normalize:
        pipeline.normalize()


def expected_keys(standin: ApiStandin, day: date) -> int:
    """Rows the stand-in serves for `day` that the source keeps (non-empty source id)."""
    return len({r["source_id"] for r in standin.redtrack_rows(day) if r["source_id"]})


def warehouse_connection(url: str) -> dict[str, str]:
    """AIRFLOW_CONN_SIGNALROOM_WAREHOUSE for a Postgres URL (Airflow's env secrets backend)."""
    return db.warehouse_connection_env(url)


def rows(url: str, sql: str) -> list[tuple]:
    return db.query(with_password(url), sql)
