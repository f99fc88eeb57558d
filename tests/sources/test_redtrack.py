"""RedTrack source against the loopback stand-in, loaded through `run_load` (the Airflow task's
code path) into real Postgres and DuckDB."""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from signalroom.hints import config_locations
from signalroom.pipeline import Window
from tests.support.api import (
    column_types,
    cursor,
    days,
    destination,
    destination_state,
    fast_retries,
    load,
    local_state,
    query,
)
from tools.standins.api import ApiStandin

KEY = "rt-test-key"
D = date(2025, 3, 10)  # D-2..D: a row without conversions, an empty source id, two envelopes
PIPELINE = "redtrack__daily_spend"
FAST = 0.15  # request interval for tests that do not measure the pace: 3x the stand-in limit (0.05), so scheduling jitter on a busy machine cannot trip a 429


@pytest.fixture
def standin():
    server = ApiStandin(redtrack_key=KEY).start()
    server.rate_limit_interval = 0.05
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _env(dlt_data_dir, monkeypatch):
    fast_retries(monkeypatch)
    monkeypatch.delenv("SOURCES__REDTRACK__API_KEY", raising=False)


def run(standin, dest, window, **kwargs):
    kwargs = {"api_key": KEY, "base_url": standin.url, "request_interval": FAST, **kwargs}
    return load("redtrack", "daily_spend", window, dest, **kwargs)


def expected(standin, first: date, last: date) -> dict[tuple, tuple]:
    out = {}
    for day in days(first, last):
        for r in standin.redtrack_rows(day):
            if r["source_id"]:
                out[(r["date"], r["source_id"])] = (
                    r["source_name"], r["source_alias"], r["clicks"], r["conversions"], r["cost"])
    return out


def table(dest) -> dict[tuple, tuple]:
    rows = query(dest, "SELECT date, source_id, source_name, source_alias, clicks, conversions, cost "
                       "FROM redtrack.daily_spend")
    out = {tuple(r[:2]): tuple(r[2:]) for r in rows}
    assert len(out) == len(rows), "duplicate keys in redtrack.daily_spend"
    return out


def requested_days(standin) -> list[date]:
    """The day of each answered report request. A 429 is the stand-in timing the client's FAST
    pace on its own clock (a request delayed by a busy machine arrives close behind the next)
    and the client retried it; any other refusal fails here. The pace itself is measured by
    test_client_keeps_one_request_per_second_across_runs (no 429 there)."""
    out = []
    for r in standin.report_requests("redtrack"):
        assert r.status in (200, 429), f"request for {r.day_range} answered {r.status}"
        if r.status != 200:
            continue
        first, last = r.day_range
        assert first == last, "more than one day in a request"
        out.append(first)
    return out


# -- mapping rules on the stand-in's wire rows (pure functions, no mocks) ---------------------


def test_field_fallbacks_conversions_only_and_string_numbers():
    from signalroom.sources.redtrack.helpers import to_record, unwrap

    dropped: Counter = Counter()
    day = D
    rows = [
        {"trafficSourceId": "a" * 24, "sourceName": "X", "traffic_source_alias": "x1",
         "total_clicks": "12", "conversions": "0", "total_conversions": 5, "spend": "3.50"},
        {"sourceId": "b" * 24, "traffic_source": "Y", "clicks": 7, "total_conversions": 4, "total_cost": 1.25},
        {"source_id": "", "source": "nobody", "clicks": 1, "conversions": 1, "cost": 1},
        {"source_id": None, "traffic_source_id": "  ", "clicks": 1},
    ]
    records = [to_record(r, day, "713", dropped) for r in unwrap({"results": rows}, day)]
    assert records[0] == {"date": day, "source_id": "a" * 24, "source_name": "X", "source_alias": "x1",
                          "clicks": 12, "conversions": 0, "cost": Decimal("3.50"), "_client_id": "713"}
    assert records[1]["conversions"] is None  # total_conversions is never used
    assert records[1]["cost"] == Decimal("1.25") and records[1]["clicks"] == 7
    assert records[2:] == [None, None] and dropped == {"empty source id": 2}
    assert unwrap([], day) == [] and unwrap({"rows": rows[:1], "data": []}, day) == rows[:1]
    with pytest.raises(ValueError, match="conversions='many' is not a number"):
        to_record({"source_id": "c" * 24, "conversions": "many"}, day, "713", dropped)
    with pytest.raises(Exception, match="no row list"):
        unwrap({"message": "oops"}, day)


def test_builds_without_key_or_end_date_and_makes_no_request(standin):
    from signalroom.sources.redtrack import redtrack

    source = redtrack(start_date=None, end_date=None, backfill=False, base_url=standin.url)
    assert set(source.resources) == {"daily_spend"}
    assert standin.requests == []


def test_standin_answers_post_report_with_404(standin):
    import requests

    response = requests.post(standin.url + "/report", params={"api_key": KEY}, timeout=5)
    assert response.status_code == 404


# -- scheduled runs --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_scheduled_runs_load_the_lookback_and_update_restated_days(kind, standin, request, tmp_path, caplog):
    dest = destination(kind, request, tmp_path)
    with caplog.at_level(logging.INFO, logger="signalroom.sources.redtrack"):
        first = run(standin, dest, Window(end=D))
    assert requested_days(standin) == days(D - timedelta(days=2), D)
    for r in standin.requests:
        assert r.method == "GET" and r.path == "/report"
        assert r.query["api_key"] == "<ok>" and r.headers["x-api-key"] == "<ok>"
        assert r.query["timezone"] == "America/New_York" and r.query["group"] == "source"
    truth = expected(standin, D - timedelta(days=2), D)
    loaded = table(dest)
    assert loaded == truth
    assert first["rows"] == {"daily_spend": len(truth)}
    # the fixture days exercise every rule: real zeros, a row with only total_conversions,
    # an empty source id, numbers as strings
    conversions = [v[3] for v in loaded.values()]
    assert 0 in conversions and None in conversions
    assert "dropped 1 rows: 1 empty source id" in caplog.text
    # kept + dropped = read: "N kept, M dropped of T read"
    assert f"{len(truth)} kept, 1 dropped of {len(truth) + 1} read" in caplog.text
    assert all(re.fullmatch(r"[0-9a-f]{24}", k[1]) for k in loaded)
    assert query(dest, "SELECT DISTINCT _client_id FROM redtrack.daily_spend") == [("713",)]
    types = column_types(dest, "redtrack", "daily_spend")
    assert "total_conversions" not in types
    assert {c: types[c] for c in ("date", "source_id", "source_name", "source_alias", "clicks",
                                  "conversions", "cost", "_client_id")} == {
        "date": "date", "source_id": "text", "source_name": "text", "source_alias": "text",
        "clicks": "bigint", "conversions": "bigint", "cost": "numeric", "_client_id": "text"}

    before = table(dest)
    standin.restate("redtrack", D)  # the cursor day itself changes upstream
    standin.reset_requests()
    second = run(standin, dest, Window(end=D + timedelta(days=1)))
    assert requested_days(standin) == days(D - timedelta(days=2), D + timedelta(days=1))
    after = table(dest)
    assert after == expected(standin, D - timedelta(days=2), D + timedelta(days=1))
    assert any(before[k] != after[k] for k in before if k[0] == D), "restated day not updated"
    assert second["cursor_after"]["incremental.date"]["last_value"] == (D + timedelta(days=1)).isoformat()


def test_backfill_loads_exactly_its_days_and_keeps_the_cursor(standin, tmp_path):
    dest = destination("duckdb", None, tmp_path)
    run(standin, dest, Window(end=D))
    state_before = local_state(PIPELINE)
    dest_state_before = destination_state(dest, "redtrack", PIPELINE)
    assert cursor(state_before, "redtrack", "daily_spend") == D

    start, end = D - timedelta(days=20), D - timedelta(days=14)
    standin.reset_requests()
    summary = run(standin, dest, Window(start=start, end=end, backfill=True))
    assert requested_days(standin) == days(start, end)  # one request per day, nothing else
    loaded = table(dest)
    assert {k: v for k, v in loaded.items() if k[0] <= end} == expected(standin, start, end)
    assert local_state(PIPELINE) == state_before
    assert destination_state(dest, "redtrack", PIPELINE) == dest_state_before
    assert summary["cursor_after"] == summary["cursor_before"]

    run(standin, dest, Window(start=start, end=end, backfill=True))
    assert table(dest) == loaded  # idempotent


# -- pace and faults -------------------------------------------------------------------------


def test_client_keeps_one_request_per_second_across_runs(standin, tmp_path):
    """Production pace against the stand-in's real limit: no 429 at all, gaps >= 1 s."""
    dest = destination("duckdb", None, tmp_path)
    standin.rate_limit_interval = 1.0
    run(standin, dest, Window(start=D - timedelta(days=2), end=D, backfill=True), request_interval=1.05)
    run(standin, dest, Window(start=D + timedelta(days=1), end=D + timedelta(days=1), backfill=True),
        request_interval=1.05)
    times = [r.time for r in standin.requests]
    assert [r.status for r in standin.requests] == [200] * 4
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1.0, gaps


def test_429_backs_off_honouring_retry_after_and_5xx_burst_recovers(standin, tmp_path, monkeypatch):
    dest = destination("duckdb", None, tmp_path)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    standin.throttle_next(1)  # Retry-After: 1
    standin.fail_next(3, 502)
    run(standin, dest, Window(start=D - timedelta(days=1), end=D, backfill=True))
    assert [r.status for r in standin.requests] == [429, 502, 502, 502, 200, 200]
    assert standin.requests[1].time - standin.requests[0].time >= 0.9
    assert table(dest) == expected(standin, D - timedelta(days=1), D)


def test_a_rate_limit_that_persists_fails_after_bounded_attempts(standin, tmp_path, monkeypatch):
    dest = destination("duckdb", None, tmp_path)
    fast_retries(monkeypatch, attempts=3)
    standin.retry_after = ""
    standin.throttle_next(100)
    with pytest.raises(Exception, match=r"still rate-limited \(429\) after the bounded retries"):
        run(standin, dest, Window(start=D, end=D, backfill=True))
    assert [r.status for r in standin.requests] == [429, 429, 429]


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_fails_at_once_naming_the_setting(status, standin, tmp_path):
    dest = destination("duckdb", None, tmp_path)
    wrong = "not-the-key-5678"
    with pytest.raises(Exception) as err:
        if status == 403:
            run(standin, dest, Window(end=D), api_key=wrong)
        else:
            standin.fail_next(1, 401)
            run(standin, dest, Window(end=D))
    message = str(err.value)
    assert f"answered {status}" in message
    assert "Airflow" not in message and "SOURCES__REDTRACK__API_KEY" in message
    assert config_locations(message) == [
        "sources.redtrack.api_key: password of the Airflow connection 'signalroom_redtrack'"
    ]
    assert wrong not in message
    assert len(standin.requests) == 1


def test_missing_key_is_a_config_error_before_any_request(standin, tmp_path):
    dest = destination("duckdb", None, tmp_path)
    with pytest.raises(Exception) as err:
        load("redtrack", "daily_spend", Window(end=D), dest, base_url=standin.url)
    assert "API key is missing" in str(err.value)
    assert "Airflow" not in str(err.value) and "SOURCES__REDTRACK__API_KEY" in str(err.value)
    assert "'signalroom_redtrack'" in config_locations(str(err.value))[0]
    assert standin.requests == []


def test_key_from_dlt_env_provider_and_never_written_or_logged(tmp_path, monkeypatch, caplog, dlt_data_dir):
    secret = "rt-secret-0b1c2d"
    server = ApiStandin(redtrack_key=secret).start()
    server.rate_limit_interval = 0.05
    try:
        monkeypatch.setenv("SOURCES__REDTRACK__API_KEY", secret)
        monkeypatch.setenv("SOURCES__REDTRACK__BASE_URL", server.url + "/")
        monkeypatch.setenv("SOURCES__REDTRACK__REQUEST_INTERVAL", str(FAST))
        dest = destination("duckdb", None, tmp_path)
        with caplog.at_level(logging.DEBUG):
            summary = load("redtrack", "daily_spend", Window(end=D), dest)
        assert summary["rows"]["daily_spend"] == len(expected(server, D - timedelta(days=2), D))
        assert "api_key=***" in caplog.text  # urllib3's request line, redacted
        assert secret not in caplog.text
        for path in Path(dlt_data_dir).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"key written to {path}"
    finally:
        server.stop()


def test_rerun_of_the_cursor_day_updates_it_without_lookback(standin, tmp_path):
    """lookback_days=1: the cursor day is re-read and updated, not deduplicated away."""
    dest = destination("duckdb", None, tmp_path)
    run(standin, dest, Window(end=D), lookback_days=1)
    before = table(dest)
    standin.restate("redtrack", D)
    standin.reset_requests()
    run(standin, dest, Window(end=D), lookback_days=1)
    assert requested_days(standin) == [D]
    after = table(dest)
    assert after == expected(standin, D, D) and after != before
