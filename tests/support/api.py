"""Helpers shared by the source tests: destinations, table reads, state reads.

Everything goes through the real services: the loopback API stand-in, dlt, Postgres, DuckDB.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Sequence

from signalroom.destinations import DestinationConfig
from signalroom.pipeline import Window, run_load
from tests.support import db
from tests.support.db import with_password


def destination(kind: str, request: Any, tmp_path: Path) -> DestinationConfig:
    """`kind` postgres (a fresh database from the `pg_database` fixture) or duckdb (a file)."""
    if kind == "postgres":
        return DestinationConfig(kind="postgres", postgres_url=with_password(request.getfixturevalue("pg_database")))
    return DestinationConfig(kind="duckdb", duckdb_path=str(tmp_path / "w.duckdb"))


def query(dest: DestinationConfig, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
    """Rows from either destination (`%s` placeholders)."""
    if dest.kind == "postgres":
        return db.query(dest.postgres_url, sql, params)
    import duckdb  # only the DuckDB-parametrized tests need it

    conn = duckdb.connect(dest.duckdb_path, read_only=True)
    try:
        return conn.execute(sql.replace("%s", "?"), params or []).fetchall()
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


def local_state(pipeline_name: str, dlt_dir: Path | None = None) -> dict[str, Any]:
    """The pipeline's state as the working folder holds it (what the next run on this worker
    starts from); {} when the folder has none. Default folder: $DLT_DATA_DIR."""
    import dlt  # dlt: only for tests that read state
    from dlt.pipeline.exceptions import CannotRestorePipelineException

    folder = dlt_dir or Path(os.environ["DLT_DATA_DIR"])
    try:
        attached = dlt.attach(pipeline_name, pipelines_dir=str(folder / "pipelines"))
    except CannotRestorePipelineException:
        return {}
    return attached.state.get("sources", {})


def destination_state(dest: DestinationConfig, dataset: str, pipeline_name: str) -> dict[str, Any]:
    """The newest state row in the destination (what a fresh worker restores)."""
    return db.stored_state(query(dest, db.state_sql(dataset), (pipeline_name,)))


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
