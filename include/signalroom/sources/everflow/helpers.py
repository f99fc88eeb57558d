"""Everflow entity-table report: request bodies, pagination, and row -> table mapping."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Iterator

from signalroom.sources._api import ApiRequestError, auth_fix, day_chunks, send_checked, to_decimal, to_int
from signalroom.sources.everflow import settings

log = logging.getLogger("signalroom.sources.everflow")


def business_date_from_epoch(value: Any) -> date:
    """The ET business day of an Everflow date column (Unix seconds as a string).

    *Assumed* (docs/SOURCES.md): the epoch is midnight of the business day in UTC, so its UTC calendar
    date is the business date. A midnight-ET epoch (04:00/05:00 UTC the same day) maps to the
    same day, so either convention loads correctly. This is the one place that decides it.
    """
    try:
        seconds = int(str(value).strip())
    except ValueError:
        raise ValueError(f"everflow date column id {value!r} is not Unix seconds") from None
    return datetime.fromtimestamp(seconds, tz=timezone.utc).date()


def report_body(start: date, end: date, page: int, limit: int) -> dict[str, Any]:
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone_id": settings.TIMEZONE_ID,
        "currency_id": settings.CURRENCY_ID,
        "columns": [{"column": name} for name in settings.GROUP_BY],
        # an advertiser filter is unreliable on the API side: load all, filter in SQL
        "query": {"filters": [], "page": page, "limit": limit},
    }


def fetch_pages(
    session: Any, base_url: str, start: date, end: date, *, page_limit: int, max_days: int
) -> Iterator[list[dict[str, Any]]]:
    """Raw report rows, one list per page: ≤ `max_days` days per request, next page only
    while a page comes back full."""
    url = base_url + settings.REPORT_PATH
    for chunk_start, chunk_end in day_chunks(start, end, max_days):
        page = 1
        while True:
            response = send_checked(
                session, "POST", url, api="everflow", fix_hint=auth_fix("everflow"),
                json=report_body(chunk_start, chunk_end, page, page_limit),
            )
            rows = _table(response)
            log.info("everflow %s..%s page %d: %d rows", chunk_start, chunk_end, page, len(rows))
            if rows:
                yield rows
            if len(rows) < page_limit:
                break
            page += 1


def _table(response: Any) -> list[dict[str, Any]]:
    try:
        payload = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        raise ApiRequestError(f"everflow: response is not JSON: {response.text[:200]!r}") from None
    if not isinstance(payload, dict) or "table" not in payload:
        raise ApiRequestError(
            f"everflow: response is a {type(payload).__name__} without 'table'; expected {{\"table\": [...]}}"
        )
    table = payload["table"]
    if table is None:
        return []
    if not isinstance(table, list):
        raise ApiRequestError(f"everflow: 'table' is a {type(table).__name__}, expected a list")
    return table


def to_records(
    page: list[dict[str, Any]], client_id: str, start: date, end: date, dropped: Counter
) -> list[dict[str, Any]]:
    """Table rows of one page. Rows dated outside the requested days are dropped and counted:
    they would mean the epoch rule does not match the API (and must never move the cursor)."""
    records = []
    for row in page:
        record = to_record(row, client_id, dropped)
        if record is None:
            continue
        if not start <= record["date"] <= end:
            dropped["dated outside the requested days (check business_date_from_epoch)"] += 1
            continue
        records.append(record)
    return records


def to_record(row: dict[str, Any], client_id: str, dropped: Counter) -> dict[str, Any] | None:
    """One report row -> one table row; None (and counted in `dropped`) when a key id is missing."""
    columns = {c.get("column_type"): c for c in row.get("columns") or [] if isinstance(c, dict)}
    ids = {kind: str((columns.get(kind) or {}).get("id") or "").strip() for kind in settings.GROUP_BY}
    missing = [kind for kind, value in ids.items() if not value]
    if missing:
        dropped["missing " + "/".join(missing) + " id"] += 1
        return None
    reporting = row.get("reporting") or {}
    return {
        "date": business_date_from_epoch(ids["date"]),
        "affiliate_id": to_int(ids["affiliate"], "affiliate id"),
        "affiliate_label": columns["affiliate"].get("label"),
        "advertiser_id": to_int(ids["advertiser"], "advertiser id"),
        "advertiser_label": columns["advertiser"].get("label"),
        "clicks": to_int(reporting.get("total_click"), "total_click"),
        "conversions": to_int(reporting.get("cv"), "cv"),
        "revenue": to_decimal(reporting.get("revenue"), "revenue"),
        "payout": to_decimal(reporting.get("payout"), "payout"),
        "profit": to_decimal(reporting.get("profit"), "profit"),
        "_client_id": client_id,
    }
