"""What the API sources (Everflow, RedTrack) share: the resource template (`date_resource`:
window check, `date` cursor with its look-back, key check, dropped-row count, logs), one
retrying session built on dlt's requests helper, a client-side throttle, clear auth errors,
log-safe messages and number coercion. Each source keeps only its own request shape,
paging, record mapping and settings.

Retries (429 and 5xx, bounded exponential backoff honouring Retry-After) come from
`dlt.sources.helpers.requests.Client`, so they are tuned with dlt's own settings:
RUNTIME__REQUEST_MAX_ATTEMPTS, RUNTIME__REQUEST_BACKOFF_FACTOR, RUNTIME__REQUEST_MAX_RETRY_DELAY,
RUNTIME__REQUEST_TIMEOUT.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

import dlt
from requests import RequestException
from requests.adapters import HTTPAdapter

from signalroom.base.window import last_finished_day
from signalroom.registry import get_spec, resource_contract


class SourceConfigError(ValueError):
    """A setting the source cannot run without (raised before any request)."""


class ApiAuthError(RuntimeError):
    """401/403: the credential is wrong; retrying cannot help."""


class ApiRequestError(RuntimeError):
    """A request that failed for good (4xx, or 429/5xx after the bounded retries)."""


def auth_fix(source: str) -> str:
    """What to fix when the API refuses the key: the source's dlt config key, nothing else."""
    return f"Fix the source's config key sources.{source}.api_key ({get_spec(source).config_env_var('api_key')})."


def require_api_key(api_key: str | None, api: str, source: str) -> str:
    if not api_key or not str(api_key).strip():
        raise SourceConfigError(
            f"{api} API key is missing: set the config key sources.{source}.api_key "
            f"(environment variable {get_spec(source).config_env_var('api_key')}, dlt secrets). "
            "No request was made."
        )
    return str(api_key).strip()


def normalize_base_url(base_url: str | None, default: str) -> str:
    """Strip a trailing `/`; accept a bare host (Airflow connection `host` field) as https."""
    url = (base_url or default).strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    return url


class Throttle:
    """At most one request per `interval` seconds, across every session that shares it."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last < self.interval:
                time.sleep(self.interval - (now - self._last))
            self._last = time.monotonic()


_THROTTLES: dict[str, Throttle] = {}
_THROTTLES_LOCK = threading.Lock()


def shared_throttle(key: str, interval: float) -> Throttle:
    """One throttle per API host in this process, so back-to-back runs also keep the pace."""
    with _THROTTLES_LOCK:
        throttle = _THROTTLES.get(key)
        if throttle is None:
            throttle = _THROTTLES[key] = Throttle(interval)
        throttle.interval = interval
        return throttle


class _ThrottledAdapter(HTTPAdapter):
    """Waits for the throttle before every attempt, retries included."""

    def __init__(self, throttle: Throttle) -> None:
        super().__init__()
        self.throttle = throttle

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.throttle.wait()
        return super().send(request, *args, **kwargs)


class _RedactApiKey(logging.Filter):
    """urllib3 logs request lines (query included) at DEBUG; RedTrack's key is in the query."""

    _pattern = re.compile(r"(api_key=)[^&\s\"']+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if "api_key=" in str(record.msg) or any("api_key=" in str(a) for a in record.args or ()):
            record.msg = self._pattern.sub(r"\1***", record.getMessage())
            record.args = ()
        return True


_REDACTION = _RedactApiKey()


def make_session(headers: dict[str, str], throttle: Throttle | None = None) -> Any:
    """A requests session with dlt's retry policy (status codes checked by `send_checked`)."""
    from dlt.sources.helpers.requests import Client  # dlt's requests helper: only when extracting

    urllib3_log = logging.getLogger("urllib3.connectionpool")
    if _REDACTION not in urllib3_log.filters:
        urllib3_log.addFilter(_REDACTION)

    session = Client(raise_for_status=False).session
    session.headers.update(headers)
    if throttle is not None:
        adapter = _ThrottledAdapter(throttle)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def send_checked(session: Any, method: str, url: str, *, api: str, fix_hint: str, **kwargs: Any) -> Any:
    """Send one request; return the 2xx response or raise an error that names the fix.

    Messages carry the path only: RedTrack's key travels in the query string."""
    where = f"{method} {urlsplit(url).path}"
    try:
        response = session.request(method, url, **kwargs)
    except RequestException as exc:
        raise ApiRequestError(
            f"{api}: {where} failed after retries: {type(exc).__name__} "
            "(check the base URL / network; retries are RUNTIME__REQUEST_MAX_ATTEMPTS)"
        ) from None
    status = response.status_code
    if status in (401, 403):
        raise ApiAuthError(
            f"{api}: {where} answered {status} ({'unauthorized' if status == 401 else 'forbidden'}): "
            f"the API key was rejected. {fix_hint}"
        )
    if status == 429:
        raise ApiRequestError(
            f"{api}: {where} still rate-limited (429) after the bounded retries; lower the request "
            "rate or raise RUNTIME__REQUEST_MAX_ATTEMPTS"
        )
    if status >= 400:
        retried = " after the bounded retries" if status >= 500 else ""
        raise ApiRequestError(f"{api}: {where} answered {status}{retried}: {response.text[:500]}")
    return response


def day_range(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def day_chunks(start: date, end: date, max_days: int) -> Iterator[tuple[date, date]]:
    """[start, end] cut into consecutive inclusive ranges of at most `max_days` days."""
    while start <= end:
        chunk_end = min(end, start + timedelta(days=max_days - 1))
        yield start, chunk_end
        start = chunk_end + timedelta(days=1)


def to_decimal(value: Any, field: str) -> Decimal | None:
    """Numbers that may arrive as JSON numbers or strings; empty means unknown (None)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{field}={value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{field}={value!r} is not a finite number")
    return number


def to_int(value: Any, field: str) -> int | None:
    number = to_decimal(value, field)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise ValueError(f"{field}={value!r} is not a whole number")
    return int(number)


# -- the date cursor shared by both API resources ---------------------------------------------


def date_cursor(
    start_date: date | None, end_date: date, backfill: bool, lookback_days: int, column: str = "date"
) -> Any:
    """The `date` incremental of a run (on the contract's date column).

    - backfill: `initial_value`..`end_value` (closed) -> dlt keeps no state: the scheduled
      cursor is neither read nor moved.
    - scheduled: `lag` = look-back, so the run starts `lookback_days - 1` days before the
      cursor and re-reads restated days. No `initial_value` (it changes with every run's
      end date, and dlt's lag never steps below `initial_value`).
    - `primary_key=()` turns off dlt's boundary deduplication: with it, rows of the cursor
      day already seen would be skipped and a partial day would stay frozen.
    """
    if backfill:
        if start_date is None:
            raise SourceConfigError("backfill=True needs start_date (first ET day to load)")
        return dlt.sources.incremental[date](
            column, initial_value=start_date, end_value=end_date, range_end="closed",
            primary_key=(), allow_external_schedulers=False,
        )
    return dlt.sources.incremental[date](
        column, initial_value=start_date, lag=max(lookback_days - 1, 0),
        primary_key=(), allow_external_schedulers=False,
    )


def request_window(cursor: Any, end_date: date, lookback_days: int) -> tuple[date, date]:
    """First and last ET day to request: from the (lagged) cursor, or the first-run look-back."""
    start = cursor.last_value  # lag already applied; the initial value for a backfill
    if start is None:
        start = end_date - timedelta(days=max(lookback_days, 1) - 1)
    elif isinstance(start, str):
        start = date.fromisoformat(start[:10])
    return start, end_date


# -- the resource template --------------------------------------------------------------------

# read(api_key, first_day, last_day, dropped) -> pages of table rows; rows it skips are counted
# in `dropped` by reason
ReadPages = Callable[[str, date, date, Counter], Iterator[list[dict[str, Any]]]]


def date_resource(
    source: str,
    resource: str,
    api: str,
    *,
    columns: Mapping[str, Any],
    read: ReadPages,
    api_key: str | None,
    start_date: date | None,
    end_date: date | None,
    backfill: bool,
    lookback_days: int,
) -> Any:
    """One dlt resource of an API report by ET day, declared from the registry's contract.

    Nothing is requested (and the key is not checked) until extraction. `end_date`: last ET
    day, inclusive (default: the last finished ET day); `start_date`: first day of a
    backfill, or the first run's start for a scheduled run.
    """
    end = end_date or last_finished_day()  # only when called without an end_date
    if start_date is not None and start_date > end:
        raise ValueError(f"{source}: start_date {start_date} is after end_date {end}")
    log = logging.getLogger(f"signalroom.sources.{source}")
    contract = resource_contract(source, resource)
    # dlt binds the resource's incremental from an argument default (state, lag, end_value)
    run_cursor = date_cursor(start_date, end, backfill, lookback_days, contract.date_column or "date")
    key_value = api_key

    # nested so the key never becomes a (config-injected, traced) resource argument
    def rows(cursor: Any = run_cursor) -> Iterator[list[dict[str, Any]]]:
        key = require_api_key(key_value, api, source)
        start, stop = request_window(cursor, end, lookback_days)
        if start > stop:
            log.info("%s: cursor is past end_date %s; nothing to load (use a backfill)", source, stop)
            return
        dropped: Counter = Counter()
        loaded = 0
        for records in read(key, start, stop, dropped):
            loaded += len(records)
            if records:
                yield records
        log.info(
            "%s %s..%s: %d kept, %d dropped of %d read",
            source, start, stop, loaded, sum(dropped.values()), loaded + sum(dropped.values()),
        )
        if dropped:
            log.warning(
                "%s %s..%s: dropped %d rows: %s; they are not loaded",
                source, start, stop, sum(dropped.values()),
                ", ".join(f"{n} {why}" for why, n in sorted(dropped.items())),
            )

    return dlt.resource(rows, columns=columns, **contract.dlt_hints())
