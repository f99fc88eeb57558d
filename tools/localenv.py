"""The environment a project-local Airflow + dlt run needs, in one place.

Used by the demo, the test suite and the benchmarks: call `apply()` before Airflow is
imported (Airflow reads its config at import time).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def airflow_env(home: Path, data_dir: Path) -> dict[str, str]:
    """Airflow + dlt settings for a local run whose state lives under `home` and `data_dir`."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # processes of one local home (scheduler, API server, tasks, CLI) share one SQLite file: wait
        # up to 60 s for another's write lock instead of sqlite's 5 s ("database is locked" under load)
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # every process of one local home encrypts connections with the same key (a process
        # started before airflow.cfg existed would otherwise have none); local homes hold only
        # stand-in credentials, so a key derived from the home's path is enough
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(
            hashlib.sha256(f"signalroom-local:{home}".encode()).digest()).decode(),
        "DLT_DATA_DIR": str(data_dir),
        "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false",
        "RUNTIME__LOG_LEVEL": "INFO",
        "DLT_TELEMETRY_DISABLED": "1",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "SIGNALROOM_TASK_RETRIES": os.environ.get("SIGNALROOM_TASK_RETRIES", "0"),
        # dag.test() (3.3.2) crashes after a successful run of a DAG with a deadline, and no
        # scheduler evaluates deadlines here: see signalroom.orchestration.alerts._under_dags_test
        "SIGNALROOM_DEADLINE_ET": os.environ.get("SIGNALROOM_DEADLINE_ET", "off"),
    }


def apply(home: Path, data_dir: Path) -> dict[str, str]:
    env = airflow_env(home, data_dir)
    home.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    import sys

    include = str(ROOT / "include")
    if include not in sys.path:
        sys.path.insert(0, include)
    return env


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the terminal command `python -m signalroom` (and the deploy tool) run
    from a checkout: the one place outside Airflow that needs `include/` on PYTHONPATH.
    Airflow itself never does: every DAG file puts its bundle's include/ on the path."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "include"), **(extra or {})}


def airflow_connection_env(conn_id: str, conn: dict) -> dict[str, str]:
    """`AIRFLOW_CONN_<ID>` holding a connection as JSON (Airflow's env secrets backend)."""
    import json

    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}
