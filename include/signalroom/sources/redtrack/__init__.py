"""RedTrack ad spend per ET day and traffic source.

Pure dlt (no Airflow). Table `daily_spend`, merged on (date, source_id); one GET per day at
≤ 1 request/s; scheduled runs re-read a look-back of restated days, backfills leave the
cursor alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date
from typing import Any, Iterator, Optional

import dlt

from signalroom.sources._api import (
    date_cursor,
    day_range,
    default_end_date,
    make_session,
    normalize_base_url,
    request_window,
    require_api_key,
    shared_throttle,
)
from signalroom.sources.redtrack import settings
from signalroom.sources.redtrack.helpers import fetch_day, to_record

log = logging.getLogger("signalroom.sources.redtrack")


@dlt.source(name="redtrack")
def redtrack(
    start_date: Optional[date] = None,
    end_date: Optional[date] = None,
    backfill: bool = False,
    lookback_days: int = 3,
    client_id: str = "713",
    api_key: Optional[str] = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    request_interval: float = settings.REQUEST_INTERVAL,
) -> Any:
    """Build the source; nothing is requested (and the key is not checked) until extraction.

    `end_date`: last ET day, inclusive (default: the last finished ET day). `start_date`:
    first day of a backfill, or the first run's start for a scheduled run.
    `request_interval`: seconds between requests (every attempt), process-wide per host.
    """
    end = end_date or default_end_date()
    if start_date is not None and start_date > end:
        raise ValueError(f"redtrack: start_date {start_date} is after end_date {end}")
    key_value = api_key
    url = normalize_base_url(base_url, settings.DEFAULT_BASE_URL)
    client = str(client_id)
    # dlt binds the resource's incremental from an argument default (state, lag, end_value)
    run_cursor = date_cursor(start_date, end, backfill, lookback_days)

    # nested so the key never becomes a (config-injected, traced) resource argument
    @dlt.resource(
        name=settings.TABLE,
        table_name=settings.TABLE,
        write_disposition="merge",
        primary_key=settings.PRIMARY_KEY,
        columns=settings.COLUMNS,
    )
    def daily_spend(
        cursor: Any = run_cursor,
    ) -> Iterator[list[dict[str, Any]]]:
        key = require_api_key(key_value, "RedTrack", settings.CONNECTION_ID, settings.API_KEY_ENV)
        start, stop = request_window(cursor, end, lookback_days)
        if start > stop:
            log.info("redtrack: cursor is past end_date %s; nothing to load (use a backfill)", stop)
            return
        throttle = shared_throttle(url, float(request_interval))
        session = make_session({settings.API_KEY_HEADER: key}, throttle=throttle)
        dropped: Counter = Counter()
        loaded = 0
        for day in day_range(start, stop):
            rows = fetch_day(session, url, day, key)
            records = [r for r in (to_record(row, day, client, dropped) for row in rows) if r is not None]
            log.info("redtrack %s: %d rows", day, len(records))
            loaded += len(records)
            if records:
                yield records
        log.info("redtrack %s..%s: %d rows read, %d dropped", start, stop, loaded, sum(dropped.values()))
        if dropped:
            log.warning(
                "redtrack %s..%s: dropped %d rows with an empty source id; they are not loaded",
                start, stop, sum(dropped.values()),
            )

    return daily_spend
