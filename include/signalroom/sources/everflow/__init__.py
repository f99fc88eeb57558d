"""Everflow affiliate conversions and payout per ET day, affiliate and advertiser.

Pure dlt (no Airflow). Table, key and write disposition: the registry's contract for
`everflow.daily_stats` (merged on date, affiliate_id, advertiser_id); scheduled runs re-read
a look-back of restated days, backfills leave the cursor alone (`sources._api.date_resource`).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any, Iterator, Optional

import dlt

from signalroom.registry import DEFAULT_CLIENT_ID
from signalroom.sources._api import date_resource, make_session, normalize_base_url
from signalroom.sources.everflow import settings
from signalroom.sources.everflow.helpers import fetch_pages, to_records


@dlt.source(name="everflow")
def everflow(
    start_date: Optional[date] = None,
    end_date: Optional[date] = None,
    backfill: bool = False,
    lookback_days: int = 3,
    client_id: str = DEFAULT_CLIENT_ID,
    api_key: Optional[str] = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    page_limit: int = settings.PAGE_LIMIT,
    max_days_per_request: int = settings.MAX_DAYS_PER_REQUEST,
) -> Any:
    """Build the source; nothing is requested (and the key is not checked) until extraction."""
    if not 1 <= max_days_per_request <= 31:
        raise ValueError("everflow: max_days_per_request must be between 1 and 31")
    url = normalize_base_url(base_url, settings.DEFAULT_BASE_URL)
    client = str(client_id)

    def read(key: str, start: date, stop: date, dropped: Counter) -> Iterator[list[dict[str, Any]]]:
        session = make_session({settings.API_KEY_HEADER: key, "Content-Type": "application/json"})
        for page in fetch_pages(session, url, start, stop, page_limit=page_limit, max_days=max_days_per_request):
            yield to_records(page, client, start, stop, dropped)

    return date_resource(
        "everflow", "daily_stats", "Everflow", columns=settings.COLUMNS, read=read, api_key=api_key,
        start_date=start_date, end_date=end_date, backfill=backfill, lookback_days=lookback_days,
    )
