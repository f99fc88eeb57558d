"""The one Postgres helper of the tests: query, create and drop databases, the warehouse
connection Airflow reads from the environment, and the dlt state stored in a dataset."""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg2


def with_password(url: str) -> str:
    """dlt's Postgres credentials require a password; the test server's trust auth ignores it."""
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    netloc = f"{parts.username or 'postgres'}:trust@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, autocommit: bool = False) -> Any:
    """A connection for a test that runs several statements on one session."""
    conn = psycopg2.connect(url)
    conn.autocommit = autocommit
    return conn


def query(url: str, sql: Any, params: Sequence[Any] | None = None) -> list[tuple]:
    """Rows of one statement (none for a statement without a result), on its own connection."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description is not None else []
        conn.commit()
        return rows
    finally:
        conn.close()


def admin(server_url: str, *statements: tuple[str, Sequence[Any] | None]) -> None:
    """Statements that cannot run in a transaction (CREATE/DROP DATABASE, roles)."""
    conn = connect(server_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
    finally:
        conn.close()


def create_database(server_url: str, prefix: str = "sr_test", owner: str | None = None) -> str:
    """A fresh, empty database on the server of `server_url`; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin(server_url, (f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""), None))
    return name


def drop_databases(server_url: str, names: Iterable[str]) -> None:
    admin(server_url, *((f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', None) for name in names))


def warehouse_connection_env(url: str) -> dict[str, str]:
    """AIRFLOW_CONN_SIGNALROOM_WAREHOUSE for a Postgres URL (Airflow's env secrets backend)."""
    parts = urlsplit(with_password(url))
    conn = {
        "conn_type": "postgres",
        "host": parts.hostname,
        "port": parts.port or 5432,
        "login": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
        "schema": parts.path.lstrip("/"),
    }
    return {"AIRFLOW_CONN_SIGNALROOM_WAREHOUSE": json.dumps(conn)}


def stored_state(rows: list[tuple]) -> dict[str, Any]:
    """The `sources` of the newest `_dlt_pipeline_state.state` among `rows` (first column)."""
    from dlt.common.versioned_state import decompress_state  # dlt: only for tests that read state

    return decompress_state(rows[0][0]).get("sources", {}) if rows else {}


def state_sql(dataset: str) -> str:
    """The newest state row of a successful load of pipeline %s: what a fresh worker restores."""
    return (
        f'SELECT s.state FROM "{dataset}"._dlt_pipeline_state s JOIN "{dataset}"._dlt_loads l '
        "ON l.load_id = s._dlt_load_id WHERE s.pipeline_name = %s AND l.status = 0 "
        "ORDER BY s.version DESC LIMIT 1"
    )


def destination_state(url: str, dataset: str, pipeline: str) -> dict[str, Any]:
    return stored_state(query(url, state_sql(dataset), (pipeline,)))
