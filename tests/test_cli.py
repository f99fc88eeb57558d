"""`python -m signalroom`: the terminal runner uses the task's code path, configured by env."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signalroom.registry import REGISTRY
from tools import localenv

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signalroom", *args],
        cwd=ROOT, capture_output=True, text=True, env=localenv.cli_env(env), timeout=300,
    )


def test_sources_lists_the_registry():
    out = _cli("sources")
    assert out.returncode == 0, out.stderr
    for name in REGISTRY:
        assert name in out.stdout


def test_unknown_source_is_a_clear_error():
    out = _cli("run", "nope")
    assert out.returncode == 2
    assert "unknown source 'nope'" in out.stderr and "everflow" in out.stderr


def test_bad_date_is_a_clear_error():
    out = _cli("run", "redtrack", "--start", "2025-13-01")
    assert out.returncode == 2
    assert "YYYY-MM-DD" in out.stderr


@pytest.fixture
def api():
    from tools.standins.api import ApiStandin

    standin = ApiStandin(redtrack_key="cli-key").start()
    yield standin
    standin.stop()


def test_run_backfill_into_duckdb(api, tmp_path):
    import duckdb

    warehouse = tmp_path / "cli.duckdb"
    env = {
        "SOURCES__REDTRACK__API_KEY": "cli-key",
        "SOURCES__REDTRACK__BASE_URL": api.url,
        "SIGNALROOM_DESTINATION": "duckdb",
        "SIGNALROOM_DUCKDB_PATH": str(warehouse),
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
    }
    out = _cli("run", "redtrack", "--start", "2025-03-01", "--end", "2025-03-02", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary[0]["pipeline"] == "redtrack__daily_spend"
    assert summary[0]["window"] == {"start": "2025-03-01", "end": "2025-03-02", "backfill": True}
    loaded = summary[0]["rows"]["daily_spend"]
    assert loaded > 0 and summary[0]["load_ids"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        days = con.execute("select distinct date from redtrack.daily_spend order by 1").fetchall()
        count = con.execute("select count(*) from redtrack.daily_spend").fetchone()[0]
    assert [str(d) for (d,) in days] == ["2025-03-01", "2025-03-02"]
    assert count == loaded
