"""Helpers shared by the API source tests: destinations, table reads, state reads.

Everything goes through the real services: the loopback API stand-in, dlt, Postgres, DuckDB.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from signalroom.destinations import DestinationConfig
from signalroom.pipeline import Window, run_load


def destination(kind: str, request: Any, tmp_path: Path) -> DestinationConfig:
    """`kind` postgres (a fresh database from the `pg_database` fixture) or duckdb (a file)."""
    if kind == "postgres":
        return DestinationConfig(kind="postgres", postgres_url=with_password(request.getfixturevalue("pg_database")))
    return DestinationConfig(kind="duckdb", duckdb_path=str(tmp_path / "w.duckdb"))


def with_password(url: str) -> str:
    """dlt's Postgres credentials require a password; the test server's trust auth ignores it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is not None:
        return url
    netloc = f"{parts.username or 'postgres'}:trust@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def query(dest: DestinationConfig, sql: str) -> list[tuple]:
    if dest.kind == "postgres":
        import psycopg2

        conn = psycopg2.connect(dest.postgres_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()
    import duckdb

    conn = duckdb.connect(dest.duckdb_path, read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def column_types(dest: DestinationConfig, schema: str, table: str) -> dict[str, str]:
    """Column -> normalized SQL type family (date, bigint, text, numeric)."""
    rows = query(
        dest,
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{schema}' AND table_name = '{table}'",
    )
    families = {"character varying": "text", "varchar": "text", "text": "text", "bigint": "bigint",
                "date": "date", "numeric": "numeric", "decimal": "numeric"}
    return {name: families.get(kind.lower().split("(")[0], kind.lower()) for name, kind in rows}


def load(source: str, resource: str, window: Window, dest: DestinationConfig, **kwargs: Any) -> dict:
    return run_load(source, resource, window, dest, source_kwargs=kwargs)


def local_state(pipeline_name: str) -> dict[str, Any]:
    """The pipeline's state as the working folder holds it (what the next run starts from)."""
    import dlt

    pipeline = dlt.attach(pipeline_name, pipelines_dir=str(Path(os.environ["DLT_DATA_DIR"]) / "pipelines"))
    return pipeline.state.get("sources", {})


def destination_state(dest: DestinationConfig, dataset: str, pipeline_name: str) -> dict[str, Any]:
    """The newest state row in the destination (what a fresh worker restores)."""
    from dlt.common.versioned_state import decompress_state

    rows = query(
        dest,
        f"SELECT s.state FROM {dataset}._dlt_pipeline_state s JOIN {dataset}._dlt_loads l "
        f"ON l.load_id = s._dlt_load_id WHERE s.pipeline_name = '{pipeline_name}' AND l.status = 0 "
        "ORDER BY s.version DESC LIMIT 1",
    )
    return decompress_state(rows[0][0]).get("sources", {}) if rows else {}


def cursor(state: dict[str, Any], source: str, resource: str) -> Any:
    return (
        state.get(source, {}).get("resources", {}).get(resource, {})
        .get("incremental", {}).get("date", {}).get("last_value")
    )


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def fast_retries(monkeypatch: Any, attempts: int = 5) -> None:
    """Small dlt backoff for tests (production keeps dlt's defaults: 5 attempts, factor 1)."""
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", str(attempts))
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.02")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "0.2")
