"""Where loads go: the embedded DuckDB file by default, Postgres in production.

A `DestinationConfig` is plain data (no dlt import) so the orchestration can build it from
an Airflow connection and the CLI from the environment; `to_dlt()` turns it into dlt's
destination inside the process that loads.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Iterator
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger("signalroom.destinations")

ENV_DESTINATION = "SIGNALROOM_DESTINATION"  # duckdb | postgres
ENV_DUCKDB_PATH = "SIGNALROOM_DUCKDB_PATH"
ENV_POSTGRES_URL = "DESTINATION__POSTGRES__CREDENTIALS"  # dlt's own variable


def data_dir() -> Path:
    """dlt's working folder root (pipelines, pending packages), shared by loads and maintenance."""
    return Path(os.environ.get("DLT_DATA_DIR") or Path.cwd() / ".dlt_data")


@dataclass(frozen=True)
class DestinationConfig:
    kind: str  # "duckdb" | "postgres"
    duckdb_path: str | None = None
    postgres_url: str | None = None  # never logged; see `describe()`

    def __post_init__(self) -> None:
        if self.kind not in ("duckdb", "postgres"):
            raise ValueError(
                f"unknown destination {self.kind!r}: set {ENV_DESTINATION} (or the warehouse "
                "connection's type) to 'duckdb' or 'postgres'"
            )
        if self.kind == "postgres" and not self.postgres_url:
            raise ValueError(
                "postgres destination without credentials: set the warehouse connection "
                f"(signalroom_warehouse) or {ENV_POSTGRES_URL}"
            )

    def to_dlt(self) -> Any:
        import dlt  # heavy: only when a pipeline is built, never at DAG parse

        if self.kind == "duckdb":
            path = self.duckdb_path or str(data_dir() / "warehouse.duckdb")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return dlt.destinations.duckdb(credentials=path)
        return dlt.destinations.postgres(credentials=self.postgres_url)

    def table_uri(self, schema: str, table: str) -> str:
        """Where a table lives, as a URI without credentials (the Airflow asset of the table).

        Postgres: `postgres://host:port/database/schema/table`, the form Airflow's Postgres
        provider registers and OpenLineage names datasets by. DuckDB (no provider registers a
        scheme): `duckdb://localhost/<absolute file path>/schema/table`, the file being the
        database of the worker's host.
        """
        if self.kind == "duckdb":
            path = Path(self.duckdb_path or data_dir() / "warehouse.duckdb").resolve()
            return f"duckdb://localhost{quote(path.as_posix())}/{quote(schema)}/{quote(table)}"
        parts = urlsplit(self.postgres_url or "")
        database = unquote(parts.path.lstrip("/")) or "postgres"
        return (
            f"postgres://{parts.hostname or 'localhost'}:{parts.port or 5432}/"
            f"{quote(database, safe='')}/{quote(schema, safe='')}/{quote(table, safe='')}"
        )

    def file_path(self) -> str | None:
        """The DuckDB file (None for Postgres)."""
        if self.kind != "duckdb":
            return None
        return self.duckdb_path or str(data_dir() / "warehouse.duckdb")

    def writing(self) -> ContextManager[None]:
        """Held by a load for its whole run: one writer per DuckDB file; nothing for Postgres."""
        path = self.file_path()
        return file_lock(path, exclusive=True) if path else nullcontext()

    def describe(self) -> str:
        """A log-safe description (no password)."""
        if self.kind == "duckdb":
            return f"duckdb file {self.duckdb_path or data_dir() / 'warehouse.duckdb'}"
        parts = urlsplit(self.postgres_url or "")
        return f"postgres {parts.hostname}:{parts.port or 5432}{parts.path}"


@contextmanager
def file_lock(path: str | None, *, exclusive: bool) -> Iterator[None]:
    """An OS lock on `<path>.lock`: exclusive for a writer, shared for readers.

    DuckDB lets one process write a database file, and no other process open it meanwhile
    (not even read-only): parallel resource groups of a DAG, or a check reading while another
    group loads, fail with "Could not set lock on file". Whether a task writes DuckDB is known
    only from the warehouse connection, at run time (DAG files may not read connections), so
    the tasks serialize here, where the kind is known: they wait in their slot instead of
    failing. Postgres takes no lock and keeps parallel groups. DuckDB is one machine's
    warehouse: every task that opens the file runs where the file is.
    """
    if not path:
        yield
        return
    import fcntl

    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            started = time.monotonic()
            log.info("waiting for the DuckDB file %s: another task is using it (one writer at a time)", path)
            fcntl.flock(handle, mode)
            log.info("DuckDB file %s free after %.1f s", path, time.monotonic() - started)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def postgres_url(
    host: str,
    database: str,
    user: str,
    password: str | None = None,
    port: int | None = None,
    sslmode: str | None = None,
) -> str:
    """A libpq URL with user and password URL-encoded (poolers' `postgres.<ref>` users, `@:/?#%`)."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    url = f"postgresql://{auth}@{host}:{port or 5432}/{quote(database, safe='')}"
    return url + (f"?sslmode={quote(sslmode, safe='')}" if sslmode else "")


def destination_from_env() -> DestinationConfig:
    """The destination outside Airflow (CLI, tests): env vars, DuckDB when nothing is set."""
    kind = os.environ.get(ENV_DESTINATION, "duckdb")
    return DestinationConfig(
        kind=kind,
        duckdb_path=os.environ.get(ENV_DUCKDB_PATH),
        postgres_url=os.environ.get(ENV_POSTGRES_URL) if kind == "postgres" else None,
    )
