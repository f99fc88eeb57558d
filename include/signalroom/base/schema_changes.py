"""What a load changed in the destination's schema, from dlt's own record of it.

dlt stores, per load package, the schema update it applied (`LoadPackageInfo.schema_update`:
the tables and columns it added). A type change never alters a column: dlt adds a *variant*
column (`<column>__v_<type>`) beside it, so a variant is reported as a changed column. A column
that disappears from a source's data is not a schema change for dlt at all (the column stays,
new rows get NULL); sources that read files with a header keep the last header in their
resource state (`header`), and the difference is reported here too.

Pure (a base contract: no dlt, no Airflow); `pipeline.run_load` feeds it, the summary carries it.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

VARIANT_MARK = "__v_"


def schema_changes(
    known_before: Mapping[str, Iterable[str]],
    updates: Iterable[Mapping[str, Any]],
    header_before: Iterable[str] | None = None,
    header_after: Iterable[str] | None = None,
) -> dict[str, Any]:
    """{"new_tables": {table: [columns]}, "new_columns": {table: [columns]},
    "changed_columns": {table: ["col (now also col__v_text)"]}, "missing_columns": [..]};
    only the keys that have something. dlt's own tables (`_dlt_*`) are left out."""
    known = {table: set(columns) for table, columns in known_before.items()}
    new_tables: dict[str, list[str]] = {}
    new_columns: dict[str, list[str]] = {}
    changed: dict[str, list[str]] = {}
    for update in updates:
        for table, spec in update.items():
            if table.startswith("_dlt"):
                continue
            columns = [c for c in (spec.get("columns") or {}) if not c.startswith("_dlt")]
            if table not in known:
                new_tables.setdefault(table, [])
                new_tables[table] += [c for c in columns if c not in new_tables[table]]
                continue
            for column in columns:
                if column in known[table]:
                    continue
                if VARIANT_MARK in column:
                    original = column.split(VARIANT_MARK, 1)[0]
                    changed.setdefault(table, []).append(f"{original} (now also {column})")
                else:
                    new_columns.setdefault(table, []).append(column)
    out: dict[str, Any] = {}
    if new_tables:
        out["new_tables"] = new_tables
    if new_columns:
        out["new_columns"] = new_columns
    if changed:
        out["changed_columns"] = changed
    after = list(header_after or [])
    missing = [c for c in (header_before or []) if after and c not in after]
    if missing:
        out["missing_columns"] = missing
    return out


def describe(changes: Mapping[str, Any]) -> list[str]:
    """One line per kind of change, for the task log and the notice."""
    lines = []
    for table, columns in sorted((changes.get("new_tables") or {}).items()):
        lines.append(f"new table {table} ({len(columns)} columns)")
    for table, columns in sorted((changes.get("new_columns") or {}).items()):
        lines.append(f"new column(s) in {table}: {', '.join(columns)}")
    for table, columns in sorted((changes.get("changed_columns") or {}).items()):
        lines.append(f"changed type in {table}: {', '.join(columns)}")
    if changes.get("missing_columns"):
        lines.append(
            "column(s) missing from the export's header (kept in the table, loaded as NULL): "
            + ", ".join(changes["missing_columns"])
        )
    return lines
