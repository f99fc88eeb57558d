"""Everflow source against the loopback stand-in, loaded through `run_load` (the Airflow task's
code path) into real Postgres and DuckDB."""

from __future__ import annotations

import logging
import shutil
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

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

KEY = "ef-test-key"
D = date(2025, 3, 10)  # D-1 and D each carry a row with a missing key id
PIPELINE = "everflow__daily_stats"


@pytest.fixture
def standin():
    server = ApiStandin(everflow_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _env(dlt_data_dir, monkeypatch):
    fast_retries(monkeypatch)
    monkeypatch.delenv("SOURCES__EVERFLOW__API_KEY", raising=False)


def run(standin, dest, window, **kwargs):
    kwargs = {"api_key": KEY, "base_url": standin.url, **kwargs}
    return load("everflow", "daily_stats", window, dest, **kwargs)


def expected(standin, first: date, last: date) -> dict[tuple, tuple]:
    """The stand-in's truth for the days, keyed like the table; rows missing a key id excluded."""
    out = {}
    for day in days(first, last):
        for r in standin.everflow_rows(day):
            if r["affiliate_id"] is None or r["advertiser_id"] is None:
                continue
            out[(r["date"], r["affiliate_id"], r["advertiser_id"])] = (
                r["affiliate_label"], r["advertiser_label"], r["clicks"], r["conversions"],
                r["revenue"], r["payout"], r["profit"],
            )
    return out


def table(dest) -> dict[tuple, tuple]:
    rows = query(
        dest,
        "SELECT date, affiliate_id, advertiser_id, affiliate_label, advertiser_label, clicks, "
        "conversions, revenue, payout, profit FROM everflow.daily_stats",
    )
    out = {tuple(r[:3]): tuple(r[3:]) for r in rows}
    assert len(out) == len(rows), "duplicate keys in everflow.daily_stats"
    return out


def report_ranges(standin) -> list[tuple[date, date, int]]:
    return [(*r.day_range, r.body["query"]["page"]) for r in standin.report_requests("everflow")]


# -- the one assumed rule -------------------------------------------------------------------


@pytest.mark.parametrize("day", [date(2025, 1, 15), date(2025, 7, 4), date(2025, 3, 9), date(2025, 11, 2)])
def test_midnight_utc_and_midnight_et_epochs_are_the_same_business_day(day):
    from signalroom.sources.everflow.helpers import business_date_from_epoch

    utc = int(datetime.combine(day, time.min, tzinfo=timezone.utc).timestamp())
    et = int(datetime.combine(day, time.min, tzinfo=ZoneInfo("America/New_York")).timestamp())
    assert utc != et
    assert business_date_from_epoch(str(utc)) == day
    assert business_date_from_epoch(str(et)) == day
    assert business_date_from_epoch(utc - 1) == day - timedelta(days=1)


def test_rows_missing_a_key_or_dated_outside_the_request_are_counted_not_loaded():
    from collections import Counter

    from signalroom.sources.everflow.helpers import to_records

    def row(affiliate, advertiser, day):
        cols = [{"column_type": "date", "id": str(int(datetime.combine(day, time.min, tzinfo=timezone.utc).timestamp()))}]
        if affiliate is not None:
            cols.append({"column_type": "affiliate", "id": affiliate, "label": "A"})
        if advertiser is not None:
            cols.append({"column_type": "advertiser", "id": advertiser, "label": "B"})
        return {"columns": cols, "reporting": {"total_click": 5, "cv": 0, "revenue": 1, "payout": 0.5, "profit": 0.5}}

    dropped: Counter = Counter()
    page = [row("1", "2", D), row(None, "2", D), row("1", "", D), row("1", "2", D + timedelta(days=1))]
    records = to_records(page, "713", D, D, dropped)
    assert [(r["date"], r["affiliate_id"], r["advertiser_id"], r["conversions"]) for r in records] == [(D, 1, 2, 0)]
    assert sum(dropped.values()) == 3 and len(dropped) == 3
    with pytest.raises(ValueError, match="is not Unix seconds"):
        to_records([{"columns": [{"column_type": "date", "id": "2025-03-10"},
                                 {"column_type": "affiliate", "id": "1"}, {"column_type": "advertiser", "id": "2"}]}],
                   "713", D, D, Counter())


def test_builds_without_key_or_end_date_and_makes_no_request(standin):
    from signalroom.sources.everflow import everflow

    source = everflow(start_date=None, end_date=None, backfill=False, base_url=standin.url)
    assert set(source.resources) == {"daily_stats"}
    assert standin.requests == []


# -- scheduled runs --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_scheduled_runs_load_the_lookback_and_update_restated_days(kind, standin, request, tmp_path, caplog):
    dest = destination(kind, request, tmp_path)
    standin.everflow_epoch = "mixed"  # midnight-UTC and midnight-ET epochs side by side

    with caplog.at_level(logging.INFO, logger="signalroom.sources.everflow"):
        first = run(standin, dest, Window(end=D))
    # first run: the look-back (3 days) ending at end_date, in one request
    assert report_ranges(standin) == [(D - timedelta(days=2), D, 1)]
    truth = expected(standin, D - timedelta(days=2), D)
    assert table(dest) == truth
    assert first["rows"] == {"daily_stats": len(truth)}
    dropped = sum(
        1 for day in days(D - timedelta(days=2), D) for r in standin.everflow_rows(day)
        if r["affiliate_id"] is None or r["advertiser_id"] is None
    )
    assert dropped == 2  # the fixture days carry rows with a missing id; none reached the table
    assert f"dropped {dropped} rows: " in caplog.text and "id; they are not loaded" in caplog.text
    assert first["cursor_after"]["incremental.date"]["last_value"] == D.isoformat()

    types = column_types(dest, "everflow", "daily_stats")
    assert {c: types[c] for c in (
        "date", "affiliate_id", "affiliate_label", "advertiser_id", "advertiser_label", "clicks",
        "conversions", "revenue", "payout", "profit", "_client_id")} == {
        "date": "date", "affiliate_id": "bigint", "affiliate_label": "text", "advertiser_id": "bigint",
        "advertiser_label": "text", "clicks": "bigint", "conversions": "bigint", "revenue": "numeric",
        "payout": "numeric", "profit": "numeric", "_client_id": "text"}
    assert query(dest, "SELECT DISTINCT _client_id FROM everflow.daily_stats") == [("713",)]

    # late conversions: the cursor day itself and the day before are restated upstream
    before = table(dest)
    standin.restate("everflow", D)
    standin.restate("everflow", D - timedelta(days=1))
    standin.reset_requests()
    second = run(standin, dest, Window(end=D + timedelta(days=1)))
    # re-reads the look-back ending at the cursor (D-2..D) plus the new day
    assert report_ranges(standin) == [(D - timedelta(days=2), D + timedelta(days=1), 1)]
    truth = expected(standin, D - timedelta(days=2), D + timedelta(days=1))
    after = table(dest)
    assert after == truth  # one row per key, the new numbers
    changed = [k for k in before if k[0] in (D, D - timedelta(days=1)) and before[k] != after[k]]
    assert changed, "restated rows were not updated"
    assert second["cursor_after"]["incremental.date"]["last_value"] == (D + timedelta(days=1)).isoformat()


def test_backfill_loads_exactly_its_range_in_31_day_chunks_and_keeps_the_cursor(standin, tmp_path, dlt_data_dir):
    dest = destination("duckdb", None, tmp_path)
    run(standin, dest, Window(end=D))
    state_before = local_state(PIPELINE)
    dest_state_before = destination_state(dest, "everflow", PIPELINE)
    assert cursor(state_before, "everflow", "daily_stats") == D

    start, end = D - timedelta(days=80), D - timedelta(days=11)  # 70 days, before the cursor
    standin.reset_requests()
    summary = run(standin, dest, Window(start=start, end=end, backfill=True))
    ranges = report_ranges(standin)
    assert ranges == [
        (start, start + timedelta(days=30), 1),
        (start + timedelta(days=31), start + timedelta(days=61), 1),
        (start + timedelta(days=62), end, 1),
    ]
    assert all((b - a).days + 1 <= 31 for a, b, _ in ranges)
    loaded = table(dest)
    backfilled = {k: v for k, v in loaded.items() if start <= k[0] <= end}
    assert backfilled == expected(standin, start, end)
    assert {k[0] for k in loaded} == set(days(start, end)) | set(days(D - timedelta(days=2), D))

    # the scheduled cursor is untouched, locally and in the destination
    assert local_state(PIPELINE) == state_before
    assert destination_state(dest, "everflow", PIPELINE) == dest_state_before
    assert summary["cursor_after"] == summary["cursor_before"]

    # running the backfill again leaves the same rows
    run(standin, dest, Window(start=start, end=end, backfill=True))
    assert table(dest) == loaded

    # a fresh worker (no local working folder) restores the cursor from the destination
    shutil.rmtree(dlt_data_dir / "pipelines")
    standin.reset_requests()
    run(standin, dest, Window(end=D + timedelta(days=1)))
    assert report_ranges(standin) == [(D - timedelta(days=2), D + timedelta(days=1), 1)]


def test_pages_are_requested_while_they_come_back_full(standin, tmp_path):
    dest = destination("duckdb", None, tmp_path)
    day = D - timedelta(days=1)
    wire = len(standin.everflow_wire(day))
    assert wire > 10
    run(standin, dest, Window(start=day, end=day, backfill=True), page_limit=10)
    pages = [p for _, _, p in report_ranges(standin)]
    assert pages == list(range(1, wire // 10 + 2))  # last page partial (or empty) ends paging
    assert table(dest) == expected(standin, day, day)

    standin.reset_requests()
    run(standin, dest, Window(start=day, end=day, backfill=True), page_limit=wire)
    assert [p for _, _, p in report_ranges(standin)] == [1, 2]  # full page -> one more, empty
    assert table(dest) == expected(standin, day, day)


# -- faults ----------------------------------------------------------------------------------


def test_5xx_burst_and_429_are_retried_with_backoff(standin, tmp_path, monkeypatch):
    dest = destination("duckdb", None, tmp_path)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    standin.fail_next(3, 503)
    standin.throttle_next(1)  # Retry-After: 1
    run(standin, dest, Window(start=D, end=D, backfill=True))
    statuses = [r.status for r in standin.requests]
    assert statuses == [503, 503, 503, 429, 200]
    gap = standin.requests[4].time - standin.requests[3].time
    assert gap >= 0.9, f"429 with Retry-After: 1 was retried after {gap:.2f}s"
    assert table(dest) == expected(standin, D, D)


def test_a_5xx_that_persists_fails_after_bounded_attempts(standin, tmp_path, monkeypatch):
    dest = destination("duckdb", None, tmp_path)
    fast_retries(monkeypatch, attempts=3)
    standin.fail_next(100, 500)
    with pytest.raises(Exception, match="answered 500 after the bounded retries"):
        run(standin, dest, Window(start=D, end=D, backfill=True))
    assert [r.status for r in standin.requests] == [500, 500, 500]


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_fails_at_once_naming_the_setting(status, standin, tmp_path):
    dest = destination("duckdb", None, tmp_path)
    wrong = "not-the-key-1234"
    with pytest.raises(Exception) as err:
        if status == 403:
            run(standin, dest, Window(end=D), api_key=wrong)
        else:
            standin.fail_next(1, 401)
            run(standin, dest, Window(end=D))
    message = str(err.value)
    assert f"answered {status}" in message
    assert "Airflow" not in message and "SOURCES__EVERFLOW__API_KEY" in message
    assert config_locations(message) == [
        "sources.everflow.api_key: password of the Airflow connection 'signalroom_everflow'"
    ]
    assert wrong not in message
    assert len(standin.requests) == 1  # no retry


def test_missing_key_is_a_config_error_before_any_request(standin, tmp_path):
    dest = destination("duckdb", None, tmp_path)
    with pytest.raises(Exception) as err:
        load("everflow", "daily_stats", Window(end=D), dest, base_url=standin.url)
    assert "API key is missing" in str(err.value)
    assert "Airflow" not in str(err.value) and "SOURCES__EVERFLOW__API_KEY" in str(err.value)
    assert "'signalroom_everflow'" in config_locations(str(err.value))[0]
    assert standin.requests == []


def test_key_from_dlt_env_provider_and_never_written_or_logged(standin, tmp_path, monkeypatch, caplog, dlt_data_dir):
    secret = "ef-secret-7f3a9c"
    server = ApiStandin(everflow_key=secret).start()
    try:
        monkeypatch.setenv("SOURCES__EVERFLOW__API_KEY", secret)
        monkeypatch.setenv("SOURCES__EVERFLOW__BASE_URL", server.url + "/")
        dest = destination("duckdb", None, tmp_path)
        with caplog.at_level(logging.DEBUG):
            summary = load("everflow", "daily_stats", Window(end=D), dest)
        assert summary["rows"]["daily_stats"] == len(expected(server, D - timedelta(days=2), D))
        assert secret not in caplog.text
        for path in Path(dlt_data_dir).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"key written to {path}"
    finally:
        server.stop()


def test_rerun_of_the_cursor_day_updates_it_without_lookback(standin, tmp_path):
    """lookback_days=1 (e.g. an hourly run for today's partial numbers): the cursor day itself is
    re-read; dlt's boundary deduplication (on by default) would skip its rows and freeze it."""
    dest = destination("duckdb", None, tmp_path)
    run(standin, dest, Window(end=D), lookback_days=1)
    before = table(dest)
    standin.restate("everflow", D)
    standin.reset_requests()
    run(standin, dest, Window(end=D), lookback_days=1)
    assert report_ranges(standin) == [(D, D, 1)]
    after = table(dest)
    assert after == expected(standin, D, D) and after != before
