"""Shared fixtures: a project-local Airflow (its own AIRFLOW_HOME and SQLite metadata DB),
a real Postgres, and helpers that never skip silently under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "include")]

from tools import localenv  # noqa: E402

# Airflow reads its config at import: set the environment before any test imports it.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="signalroom-tests-"))
localenv.apply(_SESSION_DIR / "airflow", _SESSION_DIR / "dlt")

# session fixtures of the whole-DAG tests, shared by test_backfill and test_idempotency
from tests.support import db  # noqa: E402
from tests.support.dagrun import dag_scenarios, dagrun_world  # noqa: E402, F401


def require(condition: bool, reason: str) -> None:
    """Skip when `condition` is false, except under CI=true, where it fails."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB for dag.test() / `airflow dags test` (one per session)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def postgres_server():
    from tools.standins.postgres import find_or_start

    server = find_or_start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def password_postgres_server():
    """A throwaway server that really checks passwords (scram-sha-256): 5432 trusts everyone,
    so credential-encoding tests need this one. `.password` is its superuser's."""
    from tools.standins.postgres import start_throwaway

    server = start_throwaway(auth="scram-sha-256", password=uuid.uuid4().hex)
    yield server
    server.stop()


# every character a URL gives meaning to, plus an escape that must not be decoded twice
SPECIAL_PASSWORD = "p@ss:w/rd?#%41 &=+x"


@pytest.fixture(scope="session")
def pooler_warehouse(password_postgres_server) -> dict:
    """A database on the password-checking server owned by a pooler-style user
    (`postgres.<project_ref>`) whose password is SPECIAL_PASSWORD: host, port, user, password, database."""
    user = f"postgres.{uuid.uuid4().hex[:20]}"
    db.admin(password_postgres_server.url(), (f'CREATE ROLE "{user}" LOGIN PASSWORD %s', (SPECIAL_PASSWORD,)))
    database = db.create_database(password_postgres_server.url(), prefix="sr_wh", owner=user)
    return {"host": password_postgres_server.host, "port": password_postgres_server.port,
            "user": user, "password": SPECIAL_PASSWORD, "database": database}


@pytest.fixture
def pg_database(postgres_server):
    """A fresh, empty database on the test server; returns its URL; dropped afterwards."""
    name = db.create_database(postgres_server.url())
    yield postgres_server.url(name)
    db.drop_databases(postgres_server.url(), [name])


@pytest.fixture
def dlt_data_dir(tmp_path, monkeypatch) -> Path:
    """An isolated dlt working folder (pipelines, pending packages) for one test."""
    path = tmp_path / "dlt"
    path.mkdir()
    monkeypatch.setenv("DLT_DATA_DIR", str(path))
    return path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the crash matrix at the end of the run (xdist keeps workers' output to itself)."""
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from tests.support.celery import CRASH_MATRIX

    path = factory.getbasetemp() / CRASH_MATRIX
    if path.exists():
        terminalreporter.write_sep("=", "crash matrix (tests/test_celery.py)")
        terminalreporter.write_line(path.read_text())
