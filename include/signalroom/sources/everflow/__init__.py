"""Everflow affiliate conversions and payout per ET day, affiliate and advertiser.

Pure dlt (no Airflow). Table `daily_stats`, merged on (date, affiliate_id, advertiser_id);
scheduled runs re-read a look-back of restated days, backfills leave the cursor alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date
from typing import Any, Iterator, Optional

import dlt

from signalroom.sources._api import (
    date_cursor,
    default_end_date,
    make_session,
    normalize_base_url,
    request_window,
    require_api_key,
)
from signalroom.sources.everflow import settings
from signalroom.sources.everflow.helpers import fetch_pages, to_records

log = logging.getLogger("signalroom.sources.everflow")


@dlt.source(name="everflow")
def everflow(
    start_date: Optional[date] = None,
    end_date: Optional[date] = None,
    backfill: bool = False,
    lookback_days: int = 3,
    client_id: str = "713",
    api_key: Optional[str] = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    page_limit: int = settings.PAGE_LIMIT,
    max_days_per_request: int = settings.MAX_DAYS_PER_REQUEST,
) -> Any:
    """Build the source; nothing is requested (and the key is not checked) until extraction.

    `end_date`: last ET day, inclusive (default: the last finished ET day). `start_date`:
    first day of a backfill, or the first run's start for a scheduled run.
    """
    end = end_date or default_end_date()
    if start_date is not None and start_date > end:
        raise ValueError(f"everflow: start_date {start_date} is after end_date {end}")
    if not 1 <= max_days_per_request <= 31:
        raise ValueError("everflow: max_days_per_request must be between 1 and 31")
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
    def daily_stats(
        cursor: Any = run_cursor,
    ) -> Iterator[list[dict[str, Any]]]:
        key = require_api_key(key_value, "Everflow", settings.CONNECTION_ID, settings.API_KEY_ENV)
        start, stop = request_window(cursor, end, lookback_days)
        if start > stop:
            log.info("everflow: cursor is past end_date %s; nothing to load (use a backfill)", stop)
            return
        session = make_session({settings.API_KEY_HEADER: key, "Content-Type": "application/json"})
        dropped: Counter = Counter()
        loaded = 0
        for page in fetch_pages(
            session, url, start, stop, page_limit=page_limit, max_days=max_days_per_request
        ):
            records = to_records(page, client, start, stop, dropped)
            loaded += len(records)
            if records:
                yield records
        log.info("everflow %s..%s: %d rows read, %d dropped", start, stop, loaded, sum(dropped.values()))
        if dropped:
            log.warning(
                "everflow %s..%s: dropped %d rows: %s; they are not loaded",
                start, stop, sum(dropped.values()),
                ", ".join(f"{n} {why}" for why, n in sorted(dropped.items())),
            )

    return daily_stats
