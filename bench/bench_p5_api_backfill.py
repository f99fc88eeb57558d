"""P5: long API backfills against the loopback stand-in, at production settings.

Everflow: a backfill of `--everflow-days` (default 365) must cost ≤ 1 report request per 31
days of range (long ranges cut into ≤ 31-day requests; one page each at ~25 rows/day).
RedTrack: a backfill of `--days` (default 90; 365 takes ≥ 6.4 min at 1 request/s) must make
exactly one request per day, never more than one per second, with no 429 at all. The
stand-in enforces RedTrack's limit (a request < 0.95 s after the previous one answers 429)
and the source runs with its default pace and dlt's default retry settings.

Both go through `signalroom.pipeline.run_load` (the Airflow task's code path) into a DuckDB
file (or `--postgres-url`). Baseline, measured in the same run: the median of three 1-day
backfills of the same source (after a warm-up); the ratio says how the N-day backfill compares to N one-day loads.

    python bench/bench_p5_api_backfill.py [--days 365] [--everflow-days 365] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "include")]
from tools import localenv  # noqa: E402

END = date(2025, 12, 31)  # last day of every backfill (ET); days are synthetic
EF_KEY, RT_KEY = "bench-ef-key", "bench-rt-key"


def timed_load(source: str, resource: str, start: date, end: date, dest, standin, key: str) -> tuple[float, dict]:
    from signalroom.pipeline import Window, run_load

    standin.reset_requests()
    started = time.monotonic()
    summary = run_load(source, resource, Window(start=start, end=end, backfill=True), dest,
                       source_kwargs={"api_key": key, "base_url": standin.url})
    return time.monotonic() - started, summary


def baseline(source: str, resource: str, dest, standin, key: str) -> float:
    """Median of three 1-day backfills (after one untimed warm-up load of another day)."""
    import statistics

    timed_load(source, resource, END - timedelta(days=400), END - timedelta(days=400), dest, standin, key)
    return statistics.median(
        timed_load(source, resource, END - timedelta(days=i), END - timedelta(days=i), dest, standin, key)[0]
        for i in range(3)
    )


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """The most requests that arrived within any `width`-second window."""
    best, left = 0, 0
    for right, t in enumerate(times):
        while t - times[left] >= width:
            left += 1
        best = max(best, right - left + 1)
    return best


def expected_rows(standin, source: str, start: date, end: date) -> int:
    total, day = 0, start
    while day <= end:
        if source == "everflow":
            total += sum(1 for r in standin.everflow_rows(day) if r["affiliate_id"] and r["advertiser_id"])
        else:
            total += sum(1 for r in standin.redtrack_rows(day) if r["source_id"])
        day += timedelta(days=1)
    return total


def bench_everflow(days: int, dest, standin) -> bool:
    base_s = baseline("everflow", "daily_stats", dest, standin, EF_KEY)
    start = END - timedelta(days=days - 1)
    secs, summary = timed_load("everflow", "daily_stats", start, END, dest, standin, EF_KEY)
    reqs = standin.report_requests("everflow")
    spans = [(b - a).days + 1 for a, b in (r.day_range for r in reqs)]
    per_31 = len(reqs) / (days / 31)
    chunks = math.ceil(days / 31)
    throttled = sum(r.status == 429 for r in reqs)
    rows = summary["rows"].get("daily_stats", 0)
    want = expected_rows(standin, "everflow", start, END)
    print(f"P5 everflow {days}-day backfill: {len(reqs)} requests (longest {max(spans)} days, "
          f"{chunks} chunks of <= 31 days), {rows} rows (expected {want}), {secs:.2f} s")
    print(f"P5 everflow requests per 31 days of range = {per_31:.2f} (target <= 1; "
          f"{len(reqs) / chunks:.2f} per 31-day chunk: {days} days need {chunks} requests)")
    print(f"P5 everflow baseline 1-day backfill {base_s:.2f} s; {days}-day backfill = "
          f"{secs / base_s:.2f}x one 1-day load ({secs / (days * base_s):.4f}x of {days} 1-day loads); "
          f"429s {throttled}")
    return len(reqs) == chunks and max(spans) <= 31 and rows == want and throttled == 0


def bench_redtrack(days: int, dest, standin) -> bool:
    base_s = baseline("redtrack", "daily_spend", dest, standin, RT_KEY)
    start = END - timedelta(days=days - 1)
    secs, summary = timed_load("redtrack", "daily_spend", start, END, dest, standin, RT_KEY)
    reqs = standin.report_requests("redtrack")
    times = [r.time for r in reqs]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    one_day = all(a == b for a, b in (r.day_range for r in reqs))
    distinct = {r.day_range[0] for r in reqs}
    throttled = sum(r.status == 429 for r in reqs)
    failed = sum(r.status != 200 for r in reqs)
    rows = summary["rows"].get("daily_spend", 0)
    want = expected_rows(standin, "redtrack", start, END)
    busiest = max_in_window(times)
    print(f"P5 redtrack {days}-day backfill: {len(reqs)} requests for {len(distinct)} days "
          f"(one day each: {one_day}), {rows} rows (expected {want}), {secs:.1f} s")
    print(f"P5 redtrack requests per day = {len(reqs) / days:.2f} (target 1); max rate "
          f"{1 / min(gaps):.3f} req/s (min gap {min(gaps):.3f} s; busiest 1-s window {busiest} request) "
          f"(target <= 1/s); 429 answers {throttled}, non-200 {failed} (target 0)")
    print(f"P5 redtrack baseline 1-day backfill {base_s:.2f} s; {days}-day backfill = {secs / base_s:.1f}x "
          f"one 1-day load ({secs / (days * base_s):.2f}x of {days} 1-day loads; "
          f"{secs / days:.2f} s/day, the pace floor is 1.05 s/day)")
    return len(reqs) == days and one_day and throttled == 0 and failed == 0 and min(gaps) >= 1.0 and rows == want


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="RedTrack backfill days (default 90)")
    parser.add_argument("--everflow-days", type=int, default=365)
    parser.add_argument("--postgres-url", help="load into this Postgres database instead of DuckDB")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-p5-"))
    localenv.apply(tmp / "airflow", tmp / "dlt")
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    from signalroom.destinations import DestinationConfig
    from tools.standins.api import ApiStandin

    dest = (DestinationConfig(kind="postgres", postgres_url=args.postgres_url) if args.postgres_url
            else DestinationConfig(kind="duckdb", duckdb_path=str(tmp / "warehouse.duckdb")))
    print(f"P5 destination: {dest.describe()}; RedTrack limit enforced by the stand-in; "
          "production pace and retry settings")
    standin = ApiStandin(everflow_key=EF_KEY, redtrack_key=RT_KEY).start()
    try:
        ok = bench_everflow(args.everflow_days, dest, standin)
        ok = bench_redtrack(args.days, dest, standin) and ok
    finally:
        standin.stop()
    print(f"P5 {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
