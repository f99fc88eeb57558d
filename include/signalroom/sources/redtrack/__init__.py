"""RedTrack ad spend per ET day and traffic source.

Pure dlt (no Airflow). Table, key and write disposition: the registry's contract for
`redtrack.daily_spend` (merged on date, source_id); one GET per day at ≤ 1 request/s;
scheduled runs re-read a look-back of restated days, backfills leave the cursor alone
(`sources._api.date_resource`).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date
from typing import Any, Iterator, Optional

import dlt

from signalroom.registry import DEFAULT_CLIENT_ID
from signalroom.sources._api import (
    date_resource,
    day_range,
    make_session,
    normalize_base_url,
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
    client_id: str = DEFAULT_CLIENT_ID,
    api_key: Optional[str] = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    request_interval: float = settings.REQUEST_INTERVAL,
) -> Any:
    """Build the source; nothing is requested (and the key is not checked) until extraction.

    `request_interval`: seconds between requests (every attempt), process-wide per host.
    """
    url = normalize_base_url(base_url, settings.DEFAULT_BASE_URL)
    client = str(client_id)

    def read(key: str, start: date, stop: date, dropped: Counter) -> Iterator[list[dict[str, Any]]]:
        throttle = shared_throttle(url, float(request_interval))
        session = make_session({settings.API_KEY_HEADER: key}, throttle=throttle)
        for day in day_range(start, stop):
            records = [r for r in (to_record(row, day, client, dropped) for row in fetch_day(session, url, day, key)) if r]
            log.info("redtrack %s: %d rows", day, len(records))
            yield records

    return date_resource(
        "redtrack", "daily_spend", "RedTrack", columns=settings.COLUMNS, read=read, api_key=api_key,
        start_date=start_date, end_date=end_date, backfill=backfill, lookback_days=lookback_days,
    )
