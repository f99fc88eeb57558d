"""Where Postgres and DuckDB differ for the health checks — the only such place.

The check SQL itself (`sql/*.sql`) is one text for both: `VALUES` lists, `IS DISTINCT FROM`,
`CAST(... AS DATE)`, `now() - INTERVAL '7 days'`, correlated `ORDER BY ... LIMIT 1` and
`information_schema` behave the same in both (verified by tests on each). What differs:

- indexes: Postgres gets B-tree indexes so the checks' cost follows this run's rows, not
  the history (see `indexes.py` for which and why). DuckDB gets none: its per-row-group
  min/max zone maps already skip old row groups when filtering on `_dlt_load_id` (rows are
  appended in load order), and its ART indexes serve only point lookups.
- connection: DuckDB allows one read-write process per file, so checks open it read-only
  (several check tasks can then read at once); Postgres needs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from signalroom.checks.identifiers import validate_identifier

# One transaction-scoped advisory lock serialises index creation across parallel check
# tasks of one dataset: two concurrent CREATE INDEX IF NOT EXISTS of the same name can
# otherwise fail on pg_class's unique index.
_INDEX_LOCK_KEY = 7_130_004


@dataclass(frozen=True)
class Dialect:
    name: str
    creates_indexes: bool
    hook_params: Mapping[str, Any] = field(default_factory=dict)

    def quote(self, identifier: str, what: str = "identifier") -> str:
        """A validated identifier, quoted (both dialects use SQL-standard double quotes)."""
        return '"' + validate_identifier(identifier, what).replace('"', '""') + '"'

    def qualified(self, schema: str, table: str) -> str:
        return f"{self.quote(schema, 'dataset')}.{self.quote(table, 'table')}"

    def existing_indexes_sql(self, schema: str) -> str:
        """Index names already in `schema` (Postgres catalog; DuckDB never asks)."""
        validate_identifier(schema, "dataset")
        return f"SELECT indexname FROM pg_indexes WHERE schemaname = '{schema}'"

    def create_index_sql(self, schema: str, table: str, name: str, columns: tuple[str, ...]) -> list[str]:
        if not self.creates_indexes:
            return []
        cols = ", ".join(self.quote(c, "column") for c in columns)
        return [
            f"CREATE INDEX IF NOT EXISTS {self.quote(name, 'index')} "
            f"ON {self.qualified(schema, table)} ({cols})"
        ]

    def index_lock_sql(self) -> list[str]:
        return [f"SELECT pg_advisory_xact_lock({_INDEX_LOCK_KEY})"] if self.creates_indexes else []


POSTGRES = Dialect(name="postgres", creates_indexes=True)
DUCKDB = Dialect(name="duckdb", creates_indexes=False, hook_params={"read_only": True})

_BY_CONN_TYPE = {"postgres": POSTGRES, "postgresql": POSTGRES, "duckdb": DUCKDB}


def dialect_for(conn_type: str | None, conn_id: str = "signalroom_warehouse") -> Dialect:
    try:
        return _BY_CONN_TYPE[(conn_type or "").lower()]
    except KeyError:
        raise ValueError(
            f"connection {conn_id!r} has type {conn_type!r}; the health checks run on a "
            "'postgres' or 'duckdb' warehouse connection (duckdb: host = database file path)"
        ) from None
