"""RedTrack report: one GET per ET day, envelope and field fallbacks -> table rows."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

from signalroom.sources._api import ApiRequestError, auth_fix, send_checked, to_decimal, to_int
from signalroom.sources.redtrack import settings

log = logging.getLogger("signalroom.sources.redtrack")


def report_params(day: date, api_key: str) -> dict[str, str]:
    return {
        "api_key": api_key,  # required for GET (the header alone is not enough)
        "date_from": day.isoformat(),
        "date_to": day.isoformat(),  # one ET day per request
        "timezone": settings.TIMEZONE,
        "group": "source",
        "sortby": "clicks",
        "direction": "desc",
    }


def fetch_day(session: Any, base_url: str, day: date, api_key: str) -> list[dict[str, Any]]:
    response = send_checked(
        session, "GET", base_url + settings.REPORT_PATH, api="redtrack", fix_hint=auth_fix("redtrack"),
        params=report_params(day, api_key),
    )
    try:
        payload = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        raise ApiRequestError(f"redtrack: report for {day} is not JSON: {response.text[:200]!r}") from None
    return unwrap(payload, day)


def unwrap(payload: Any, day: date) -> list[dict[str, Any]]:
    """A JSON array of rows, or an object holding it under the first of rows/items/data/results."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in settings.ENVELOPE_KEYS:
            if key in payload:
                rows = payload[key]
                if isinstance(rows, list):
                    return rows
                raise ApiRequestError(f"redtrack: report for {day}: {key!r} is not a list")
        if not payload:
            return []
    raise ApiRequestError(
        f"redtrack: report for {day} has no row list (expected an array or one of "
        f"{', '.join(settings.ENVELOPE_KEYS)})"
    )


def _first(row: dict[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def to_record(row: dict[str, Any], day: date, client_id: str, dropped: Counter) -> dict[str, Any] | None:
    """One report row -> one table row stamped with `day`; None (counted) without a source id."""
    source_id = _text(_first(row, settings.SOURCE_ID_FIELDS))
    if source_id is None:
        dropped["empty source id"] += 1
        return None
    where = f"redtrack {day} source {source_id}"
    return {
        "date": day,
        "source_id": source_id,
        "source_name": _text(_first(row, settings.SOURCE_NAME_FIELDS)),
        "source_alias": _text(_first(row, settings.SOURCE_ALIAS_FIELDS)),
        "clicks": to_int(_first(row, settings.CLICKS_FIELDS), f"{where}: clicks"),
        "conversions": to_int(_first(row, settings.CONVERSIONS_FIELDS), f"{where}: conversions"),
        "cost": to_decimal(_first(row, settings.COST_FIELDS), f"{where}: cost"),
        "_client_id": client_id,
    }
