"""The indexes the checks rely on (Postgres only; see `dialects.py` for DuckDB), and why.

dlt's Postgres tables carry only a unique index on `_dlt_id`. Without more, every check
below is a sequential scan whose cost grows with the table's history (measured in
bench/bench_p6_checks.py). Each index is small and also helps someone else:

- `<table>(_dlt_load_id)`: this run's rows (`IN (load ids)`) and the last 7 days of
  writes (orphan scan) become index range scans. Also serves "what did load X write".
- `<table>(<primary key>)` on merge tables: the duplicate-key check looks up only the keys
  this run touched. dlt's merge `DELETE ... WHERE EXISTS (staging key = table key)` can
  use it too. Deliberately not UNIQUE: a unique index would turn a duplicate into a load
  failure instead of a check finding, changing how loads behave.
- `<table>(<date column>)` unless the merge key starts with it: the volume check's rows per
  day of the last few weeks is a range scan (`volume.py`).
- `_dlt_loads(load_id)`: the run's packages and the orphan anti-join are point lookups.
- `_dlt_loads(inserted_at)`: "failed loads in the last 7 days" is a range scan.
- `_dlt_pipeline_state(pipeline_name, _dlt_load_id)`: the newest state of a pipeline is a
  backward index scan — the same lookup dlt itself does when a fresh worker restores state
  (`ORDER BY load_id DESC` for one pipeline).

Creation is `CREATE INDEX IF NOT EXISTS`, issued only for indexes that are missing (an
existing one costs a catalog lookup, no table lock), once per table in practice. The first
creation takes its time once (bench P6: 5-11 s for a 1M-row table with 100k loads and 100k
state rows on this 2-core machine; under 0.3 s on a new dataset) and blocks writes to that
table meanwhile: the resource's own table is written only by its own load, which has
finished; `_dlt_loads` is written for a few milliseconds at the end of each load, so a
parallel resource's load may wait that long once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from signalroom.checks.identifiers import MAX_IDENTIFIER_LENGTH, validate_identifier

LOADS_TABLE = "_dlt_loads"
STATE_TABLE = "_dlt_pipeline_state"
LOAD_ID_COLUMN = "_dlt_load_id"
INDEX_PREFIX = "sr_"


@dataclass(frozen=True)
class IndexSpec:
    table: str
    columns: tuple[str, ...]
    purpose: str

    @property
    def name(self) -> str:
        """`sr_<table>__<cols>`, shortened with a hash when over Postgres' 63 bytes."""
        name = f"{INDEX_PREFIX}{self.table}__{'__'.join(c.strip('_') for c in self.columns)}"
        if len(name) > MAX_IDENTIFIER_LENGTH:
            digest = hashlib.sha1(name.encode()).hexdigest()[:10]
            name = f"{name[: MAX_IDENTIFIER_LENGTH - 11]}_{digest}"
        return name


def metadata_indexes() -> list[IndexSpec]:
    return [
        IndexSpec(LOADS_TABLE, ("load_id",), "run's packages, orphan anti-join"),
        IndexSpec(LOADS_TABLE, ("inserted_at",), "failed loads in the last days"),
        IndexSpec(STATE_TABLE, ("pipeline_name", LOAD_ID_COLUMN), "newest state per pipeline"),
    ]


def table_indexes(
    table: str, primary_key: tuple[str, ...], merge: bool, date_column: str | None = None
) -> list[IndexSpec]:
    validate_identifier(table, "table")
    indexes = [IndexSpec(table, (LOAD_ID_COLUMN,), "this run's rows, recent writes")]
    if merge and primary_key:
        for column in primary_key:
            validate_identifier(column, f"primary key column of {table}")
        indexes.append(IndexSpec(table, tuple(primary_key), "keys this run touched"))
    # the volume check counts rows per day over a few weeks: a range scan on the date column
    # (a merge key that starts with it serves already)
    if date_column and not (merge and primary_key and primary_key[0] == date_column):
        validate_identifier(date_column, f"date column of {table}")
        indexes.append(IndexSpec(table, (date_column,), "rows per day (volume check)"))
    return indexes
