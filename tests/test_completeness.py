"""Completeness view: rows per resource per ET day, final / provisional / missing.

The statuses on plain numbers (the look-back boundary, a restated day ageing out), then a real
RedTrack load into Postgres read back through `read_completeness` and the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from signalroom.completeness import FINAL, MISSING, PROVISIONAL, check_days, day_statuses, read_completeness
from signalroom.registry import REGISTRY
from tests.support.maintenance import load, postgres, start_standin

ROOT = Path(__file__).resolve().parent.parent
END = date(2025, 4, 10)


def test_statuses_across_the_look_back_boundary():
    # look-back 3: the last three finished days are provisional, older ones final
    counts = {END - timedelta(days=i): 10 for i in range(8) if i != 5}
    rows = day_statuses(counts, END, 8, lookback_days=3)
    assert [(r.day, r.status) for r in rows] == [
        ("2025-04-10", PROVISIONAL), ("2025-04-09", PROVISIONAL), ("2025-04-08", PROVISIONAL),
        ("2025-04-07", FINAL), ("2025-04-06", FINAL), ("2025-04-05", MISSING), ("2025-04-04", FINAL),
        ("2025-04-03", FINAL),
    ]


def test_a_restated_day_flips_from_provisional_to_final_when_it_ages_out():
    day = END - timedelta(days=2)
    counts = {day: 12}
    assert day_statuses(counts, END, 3, 3)[2].status == PROVISIONAL
    # restated by the next scheduled run (still provisional), then out of the look-back: final
    counts[day] = 14
    assert day_statuses(counts, END + timedelta(days=0), 3, 3)[2] == day_statuses(counts, END, 3, 3)[2]
    aged = day_statuses(counts, END + timedelta(days=1), 4, 3)
    assert (aged[3].day, aged[3].rows, aged[3].status) == (day.isoformat(), 14, FINAL)


def test_days_out_of_range_are_refused():
    with pytest.raises(ValueError, match="days=0 is out of range: ask for 1 to 400 days"):
        check_days(0)


@pytest.fixture(scope="module")
def loaded(postgres_server, tmp_path_factory):
    """A real RedTrack load (loopback API stand-in) of END and its look-back into a database."""
    from tests.support import db

    url = db.with_password(postgres_server.url(db.create_database(postgres_server.url(), prefix="sr_compl")))
    standin = start_standin()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DLT_DATA_DIR", str(tmp_path_factory.mktemp("dlt")))
            summary = load(standin, postgres(url), END)
    finally:
        standin.stop()
    yield url, summary
    db.drop_databases(postgres_server.url(), [url.rsplit("/", 1)[1]])


def test_real_load_read_back_per_day(loaded):
    url, summary = loaded
    lookback = REGISTRY["redtrack"].lookback_days
    [result] = read_completeness(["redtrack"], postgres(url), days=lookback + 2, last_finished=END + timedelta(days=1))
    assert result.pipeline == "redtrack__daily_spend" and result.error is None
    by_day = {r.day: (r.rows, r.status) for r in result.days}
    assert by_day[(END + timedelta(days=1)).isoformat()] == (0, MISSING)  # not loaded yet
    loaded_days = [END - timedelta(days=i) for i in range(lookback)]
    assert sum(by_day[d.isoformat()][0] for d in loaded_days) == summary["rows"]["daily_spend"]
    statuses = {by_day[d.isoformat()][1] for d in loaded_days}
    assert statuses <= {PROVISIONAL, FINAL} and PROVISIONAL in statuses
    assert by_day[(END - timedelta(days=lookback)).isoformat()] == (0, MISSING)


def test_cli_prints_the_view(loaded):
    url, _ = loaded
    env = {"PYTHONPATH": f"{ROOT / 'include'}", "SIGNALROOM_DESTINATION": "postgres",
           "DESTINATION__POSTGRES__CREDENTIALS": url, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "signalroom", "completeness", "redtrack", "--days", "5", "--end", END.isoformat()],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ET", "day", "redtrack__daily_spend"]
    assert lines[1].startswith("2025-04-10") and lines[1].endswith("provisional")
    assert "final = outside the look-back" in out.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "signalroom", "completeness", "redtrack", "--days", "5", "--end", END.isoformat(),
         "--json"], env=env, capture_output=True, text=True, timeout=120,
    )
    assert json.loads(as_json.stdout)[0]["days"][0]["day"] == "2025-04-10"
    bad = subprocess.run([sys.executable, "-m", "signalroom", "completeness", "--days", "0"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "days=0 is out of range" in bad.stderr
