"""The health checks, which fail the run and which only log, and what each looks at per run.

Per resource (in the resource's task group, after `load` and `check_indexes`):

| task                    | operator                 | on failure                                  |
|-------------------------|--------------------------|---------------------------------------------|
| `check_loads_completed` | SQLValueCheckOperator    | fails                                       |
| `check_no_orphan_rows`  | SQLValueCheckOperator    | fails                                       |
| `check_unique_key`      | SQLValueCheckOperator    | fails (merge tables only)                   |
| `check_key_not_null`    | SQLColumnCheckOperator   | fails (merge tables only)                   |
| `check_volume`          | RunVolumeCheck (SQL)     | fails/warns per the registry's volume bands |
|                         |                          | (rows per touched day vs trailing median);  |
|                         |                          | only logs with too little history           |
| `check_freshness`       | SQLValueCheckOperator    | fails if the run wrote rows to the table;   |
|                         |                          | WARNING only if it wrote none (the source   |
|                         |                          | legitimately had nothing: empty prefix, no  |
|                         |                          | new export); only with a date column        |

Per DAG run (group `dag_checks`, after every resource group; runs when at least one
resource loaded and none failed):

| task                          | operator                  | on failure |
|-------------------------------|---------------------------|------------|
| `dag_checks.pipeline_state`   | SQLTableCheckOperator     | fails      |
| `dag_checks.no_failed_loads`  | SQLValueCheckOperator     | fails      |
| `dag_checks.state_size`       | SQLThresholdCheckOperator | fails      |

"Nothing to check" passes with a log line, never fails: a run without a load package
(nothing new, state unchanged), or a table that does not exist because the source never
had a row. A resource not selected for the run is skipped with its load (trigger rules).
Check failures are not retried (the data will not change by waiting); a connection error is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from signalroom.checks import sqlfiles
from signalroom.checks.dialects import Dialect
from signalroom.checks.identifiers import validate_identifier, validate_unquoted_column
from signalroom.checks.indexes import LOADS_TABLE, STATE_TABLE
from signalroom.checks.scope import (
    MAX_OFFENDING_ROWS,
    RECENT_DAYS,
    ResourceRun,
    horizon_load_id,
    in_list,
    literal,
)
from signalroom.registry import ResourceSpec

ENV_STATE_MAX_BYTES = "SIGNALROOM_STATE_MAX_BYTES"
DEFAULT_STATE_MAX_BYTES = 1_048_576  # stored (compressed, base64) bytes per pipeline


@dataclass(frozen=True)
class Check:
    name: str  # task id inside its group
    sql_file: str
    operator: str  # value | threshold | column | table
    level: str  # resource | dag
    pass_value: str = "0"  # value checks: the expected result (a template)
    warn_without_rows: bool = False  # warning only when the run wrote no rows to the table

    @property
    def sql(self) -> sqlfiles.CheckSql:
        return sqlfiles.load(self.sql_file)


LOADS_COMPLETED = Check("check_loads_completed", "loads_completed", "value", "resource", "${load_count}")
NO_ORPHAN_ROWS = Check("check_no_orphan_rows", "no_orphan_rows", "value", "resource")
UNIQUE_KEY = Check("check_unique_key", "unique_key", "value", "resource")
KEY_NOT_NULL = Check("check_key_not_null", "key_not_null", "column", "resource")
FRESHNESS = Check("check_freshness", "freshness", "value", "resource", "1", warn_without_rows=True)
PIPELINE_STATE = Check("pipeline_state", "pipeline_state", "table", "dag")
NO_FAILED_LOADS = Check("no_failed_loads", "no_failed_loads", "value", "dag")
STATE_SIZE = Check("state_size", "state_size", "threshold", "dag")
VOLUME = Check("check_volume", "", "volume", "resource")  # SQL in volume.py (two queries, Python bands)

DAG_CHECKS = (PIPELINE_STATE, NO_FAILED_LOADS, STATE_SIZE)
# the SQLTableCheckOperator checks of pipeline_state (sections of its SQL file)
PIPELINE_STATE_CHECKS = ("state_row_present", "state_version_not_lower")


def is_merge(resource: ResourceSpec) -> bool:
    return resource.write_disposition == "merge" and bool(resource.key)


def resource_checks_for(resource: ResourceSpec) -> list[Check]:
    checks = [LOADS_COMPLETED, NO_ORPHAN_ROWS]
    if is_merge(resource):
        checks += [UNIQUE_KEY, KEY_NOT_NULL]
    if resource.date_column:
        checks.append(FRESHNESS)
        if resource.volume.enabled:
            checks.append(VOLUME)
    return checks


def validate_resource(dataset: str, resource: ResourceSpec) -> None:
    """Parse-time validation of every name a resource's checks put into SQL."""
    validate_identifier(dataset, "dataset")
    validate_identifier(resource.table, f"table of resource {resource.name!r}")
    if is_merge(resource):
        for column in resource.key:
            validate_unquoted_column(column, f"primary key column of {resource.table!r}")
    if resource.date_column:
        validate_identifier(resource.date_column, f"date column of {resource.table!r}")


def state_max_bytes() -> int:
    raw = os.environ.get(ENV_STATE_MAX_BYTES, str(DEFAULT_STATE_MAX_BYTES))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{ENV_STATE_MAX_BYTES}={raw!r} is not a positive number of bytes, e.g. 1048576")
    return value


@dataclass(frozen=True)
class Plan:
    """One check, ready to run for one run: its values, severity, and what it needs to exist."""

    check: Check
    subject: str  # for logs: "everflow.daily_stats" or "dataset everflow"
    values: Mapping[str, str]
    severity: str = "error"  # error: fail the task; warn: log a warning only
    nothing_to_check: str | None = None  # set: pass with this note, run no SQL
    # (schema, table) that may legitimately be missing; missing -> nothing to check
    may_be_missing: tuple[str, str] | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def render(self, template: str) -> str:
        return sqlfiles.render(template, {**self.values, **self.extra})

    def section(self, name: str) -> str:
        return self.render(self.check.sql.section(name))

    @property
    def expected(self) -> str:
        return self.render(self.check.sql.expected)


def resource_values(dialect: Dialect, dataset: str, resource: ResourceSpec, run: ResourceRun) -> dict[str, str]:
    q = dialect.quote
    keys = tuple(resource.key) if is_merge(resource) else ()
    date_col = (resource.date_column,) if resource.date_column else ()
    return {
        "table": dialect.qualified(dataset, resource.table),
        "loads": dialect.qualified(dataset, LOADS_TABLE),
        "state": dialect.qualified(dataset, STATE_TABLE),
        "load_ids": in_list(run.load_ids),
        "load_id_rows": ", ".join(f"({literal(i)})" for i in run.load_ids) or "(NULL)",
        "load_count": str(len(run.load_ids)),
        "horizon_load_id": horizon_load_id(run.load_ids),
        "window_end": run.window_end.isoformat(),
        "key_names": ", ".join(keys),
        "key_columns": ", ".join(q(k) for k in keys),
        "r_key_columns": ", ".join(f"r.{q(k)}" for k in keys),
        "key_join": " AND ".join(f"t.{q(k)} = r.{q(k)}" for k in keys),
        "key_is_null": " OR ".join(f"t.{q(k)} IS NULL" for k in keys) or "FALSE",
        # what identifies an offending row: its key (and business date); `_dlt_id` is not
        # there on Arrow-loaded tables (s3_exports)
        "row_columns": "".join(f", t.{q(c)}" for c in dict.fromkeys((*keys, *date_col))),
        "date_column": q(resource.date_column) if resource.date_column else "NULL",
        "date_column_name": resource.date_column or "",
        "max_rows": str(MAX_OFFENDING_ROWS),
    }


def plan_resource_check(
    check: Check, dialect: Dialect, dataset: str, resource: ResourceSpec, run: ResourceRun
) -> Plan:
    values = resource_values(dialect, dataset, resource, run)
    subject = f"{dataset}.{resource.table}"
    if check is LOADS_COMPLETED and not run.load_ids:
        return Plan(
            check, subject, values,
            nothing_to_check="this run produced no load package (nothing new to load and "
            "the pipeline state did not change)",
        )
    severity = "warn" if (check.warn_without_rows and run.rows == 0) else "error"
    # the table exists once the source had a row; with no rows this run it may not yet
    may_be_missing = (dataset, resource.table) if run.rows == 0 and check is not LOADS_COMPLETED else None
    return Plan(check, subject, values, severity=severity, may_be_missing=may_be_missing)


def dag_values(dialect: Dialect, dataset: str, runs: Sequence[ResourceRun]) -> dict[str, str]:
    loaded = [r for r in runs if r.load_ids]
    return {
        "loads": dialect.qualified(dataset, LOADS_TABLE),
        "state": dialect.qualified(dataset, STATE_TABLE),
        "run_load_rows": ", ".join(
            f"({literal(r.pipeline)}, {literal(i)})" for r in loaded for i in r.load_ids
        ),
        "run_pipeline_rows": ", ".join(
            f"({literal(r.pipeline)}, {literal(r.load_ids[0])}, {int(r.cursor_moved)})" for r in loaded
        ),
        "pipeline_rows": ", ".join(f"({literal(r.pipeline)})" for r in loaded),
        "recent_days": str(RECENT_DAYS),
        "max_rows": str(MAX_OFFENDING_ROWS),
    }


def plan_dag_check(check: Check, dialect: Dialect, dataset: str, runs: Sequence[ResourceRun]) -> Plan:
    validate_identifier(dataset, "dataset")
    values = dag_values(dialect, dataset, runs)
    subject = f"dataset {dataset}"
    loaded = [r.pipeline for r in runs if r.load_ids]
    extra: dict[str, str] = {}
    if check is STATE_SIZE:
        values["state_max_bytes"] = str(state_max_bytes())
    if check in (PIPELINE_STATE, STATE_SIZE):
        if not loaded:
            return Plan(
                check, subject, values,
                nothing_to_check="no pipeline of this DAG produced a load package in this run, "
                "so none stored new state",
            )
        subject += f" (pipelines {', '.join(loaded)})"
    if check is PIPELINE_STATE:
        base = Plan(check, subject, values)
        extra = {name: base.section(name) for name in ("table_expression", *PIPELINE_STATE_CHECKS)}
    may_be_missing = (dataset, LOADS_TABLE) if check is NO_FAILED_LOADS and not loaded else None
    return Plan(check, subject, values, may_be_missing=may_be_missing, extra=extra)


def relation_exists_sql(schema: str, table: str) -> str:
    """Same text in both dialects (information_schema); names are validated identifiers."""
    validate_identifier(schema, "dataset")
    validate_identifier(table, "table")
    return (
        "SELECT COUNT(*) FROM information_schema.tables "
        f"WHERE table_schema = {literal(schema)} AND table_name = {literal(table)}"
    )
