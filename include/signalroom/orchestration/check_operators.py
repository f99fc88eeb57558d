"""The common-sql check operators, scoped to one run and explaining their failures.

Each class is a stock operator (`SQLValueCheckOperator`, `SQLThresholdCheckOperator`,
`SQLColumnCheckOperator`, `SQLTableCheckOperator`, `SQLExecuteQueryOperator`) plus
`RunScopedCheck`, which at execute time:

1. reads the load summaries of this run from the load tasks' XCom (load ids, window, rows);
2. picks the dialect from the warehouse connection (postgres, or duckdb opened read-only);
3. renders the check's SQL (`sql/*.sql`, placeholders kept in `_templates`, so a re-run never
   sees the previous run's values);
4. runs the stock operator; on failure logs the check's name, the SQL, expected vs actual
   and up to 20 offending rows, then fails the task — or only warns (`catalog.py` says when).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Sequence

from airflow.providers.common.sql.hooks.handlers import fetch_all_handler
from airflow.providers.common.sql.operators.sql import (
    SQLColumnCheckOperator,
    SQLExecuteQueryOperator,
    SQLTableCheckOperator,
    SQLThresholdCheckOperator,
    SQLValueCheckOperator,
)
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from signalroom.checks import catalog
from signalroom.checks.dialects import Dialect, dialect_for
from signalroom.checks.indexes import metadata_indexes, table_indexes
from signalroom.checks.scope import MAX_OFFENDING_ROWS, ResourceRun
from signalroom.orchestration.connections import get_connection
from signalroom.registry import ResourceSpec


@dataclass(frozen=True)
class CheckTarget:
    """What a check task checks: a resource's table (one load task) or a DAG's dataset (all)."""

    check: catalog.Check
    dataset: str
    resources: tuple[ResourceSpec, ...]
    load_task_ids: tuple[str, ...]  # aligned with `resources`


def _format_rows(rows: Sequence[Sequence[Any]], description: Sequence[Sequence[Any]] | None) -> str:
    if not rows:
        return "    (none returned)"
    header = [str(d[0]) for d in description] if description else [f"c{i}" for i in range(len(rows[0]))]
    cells = [header, *[["NULL" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join("    " + line for line in lines)


def _indent(sql: str) -> str:
    return "\n".join("    " + line for line in sql.strip().splitlines())


class RunScopedCheck:
    """Mixin for the stock check operators; see the module docstring."""

    target: CheckTarget
    _templates: dict[str, str]

    # -- set up --------------------------------------------------------------------------
    def _keep_templates(self, *fields: str) -> None:
        self._templates = {f: getattr(self, f) for f in fields}

    def _dialect(self) -> Dialect:
        conn = get_connection(self.conn_id)
        if conn is None:
            raise AirflowFailException(
                f"Airflow connection {self.conn_id!r} is not defined: the health checks query the "
                "warehouse through it (type postgres, or duckdb with host = the database file)"
            ) from None
        dialect = dialect_for(conn.conn_type, self.conn_id)
        self._duckdb_file = conn.host if conn.conn_type == "duckdb" else None
        # a hook cached by an earlier execute of this same object (dag.test, benchmarks) may
        # point at another connection: build it afresh for this run
        self.__dict__.pop("_hook", None)
        # before the hook is first built (cached): DuckDB read-only lets checks read in parallel
        # the SQL is logged once, by this mixin, not again per statement by the hook
        self.hook_params = {"log_sql": False, **dialect.hook_params, **(self.hook_params or {})}
        return dialect

    def _runs(self, context: Any) -> list[ResourceRun]:
        ti = context["ti"]
        runs = []
        for resource, task_id in zip(self.target.resources, self.target.load_task_ids, strict=True):
            summary = ti.xcom_pull(task_ids=task_id)
            if summary is None and self.target.check.level == "dag":
                continue  # resource skipped (not selected) this run
            runs.append(ResourceRun.from_summary(summary, resource.table, f"task {task_id!r}"))
        return runs

    def _plan(self, context: Any, dialect: Dialect) -> catalog.Plan:
        t = self.target
        runs = self._runs(context)
        if t.check.level == "dag":
            return catalog.plan_dag_check(t.check, dialect, t.dataset, runs)
        return catalog.plan_resource_check(t.check, dialect, t.dataset, t.resources[0], runs[0])

    def _apply(self, plan: catalog.Plan) -> None:
        for name, template in self._templates.items():
            setattr(self, name, plan.render(template))

    # -- run -----------------------------------------------------------------------------
    def execute(self, context: Any) -> None:
        from signalroom.destinations import file_lock

        dialect = self._dialect()
        with file_lock(self._duckdb_file, exclusive=False):  # DuckDB: never beside a writing load
            self._check(context, dialect)

    def _check(self, context: Any, dialect: Dialect) -> None:
        check = self.target.check
        plan = self._plan(context, dialect)
        head = f"health check {check.name} on {plan.subject} ({dialect.name})"
        if plan.nothing_to_check:
            self.log.info("%s: nothing to check, passes: %s", head, plan.nothing_to_check)
            return
        hook = self.get_db_hook()
        if plan.may_be_missing:
            schema, table = plan.may_be_missing
            if not hook.get_first(catalog.relation_exists_sql(schema, table))[0]:
                self.log.info(
                    "%s: nothing to check, passes: %s.%s does not exist (the source never had a row "
                    "for it) and this run wrote none", head, schema, table,
                )
                return
        self._apply(plan)
        self.log.info(
            "%s, severity %s\n  what: %s\n  expected: %s\n  SQL:\n%s",
            head, plan.severity, check.sql.description, plan.expected, _indent(self.sql),
        )
        try:
            super().execute(context)  # type: ignore[misc]
        except AirflowException as exc:
            report = self._failure_report(head, plan, hook, exc)
            if plan.severity == "warn":
                self.log.warning("%s", report.replace("FAILED", "WARNING (does not fail the run)", 1))
                return
            self.log.error("%s", report)
            raise AirflowFailException(report) from None
        self.log.info("%s passed: expected %s; actual %s", head, plan.expected, self._actual())

    def _actual(self) -> str:
        results = getattr(self, "check_results", None) or []
        parts = []
        for result in results:
            value = str(result.actual)
            if value.startswith("(") and value.endswith(",)"):
                value = value[1:-2]  # a one-column row
            parts.append(value if len(results) == 1 else f"{result.name} = {value}")
        return ", ".join(parts) or "(no result)"

    def _failure_report(self, head: str, plan: catalog.Plan, hook: Any, exc: Exception) -> str:
        lines = [
            f"{head}: FAILED",
            f"  what: {plan.check.sql.description}",
            f"  expected: {plan.expected}",
            f"  actual: {self._actual()}",
            "  SQL:",
            _indent(self.sql),
        ]
        offenders = plan.section("offenders")
        try:
            rows = hook.run(offenders, handler=fetch_all_handler) or []
            table = _format_rows(rows[:MAX_OFFENDING_ROWS], hook.last_description)
            lines += [f"  offending rows ({len(rows)} shown, at most {MAX_OFFENDING_ROWS}):", table]
        except Exception as query_error:  # the report must not hide the check's own failure
            lines += [f"  offending rows: query failed: {query_error}"]
        lines += ["  offending rows SQL:", _indent(offenders)]
        if not getattr(self, "check_results", None):  # no structured result: keep the operator's words
            lines.append(f"  operator said: {str(exc).strip()[:1000]}")
        return "\n".join(lines)


def _common(target: CheckTarget, kwargs: dict) -> dict:
    kwargs.setdefault("retry_on_failure", False)  # a failed check does not heal by retrying
    kwargs.setdefault("doc_md", f"{target.check.sql.description}\n\nSQL: `include/signalroom/checks/sql/"
                      f"{target.check.sql_file}.sql`")
    return kwargs


class RunValueCheck(RunScopedCheck, SQLValueCheckOperator):
    """SQLValueCheckOperator: the query's single value equals the check's pass value."""

    def __init__(self, *, target: CheckTarget, **kwargs: Any) -> None:
        super().__init__(
            sql=target.check.sql.section("check"), pass_value=target.check.pass_value,
            **_common(target, kwargs),
        )
        self.target = target
        self._keep_templates("sql", "pass_value")


class RunThresholdCheck(RunScopedCheck, SQLThresholdCheckOperator):
    """SQLThresholdCheckOperator: the query's value lies in [0, the configured bound]."""

    def __init__(self, *, target: CheckTarget, max_threshold: str, **kwargs: Any) -> None:
        super().__init__(
            sql=target.check.sql.section("check"), min_threshold=0, max_threshold=max_threshold,
            **_common(target, kwargs),
        )
        self.target = target
        self._keep_templates("sql", "max_threshold")


class RunColumnCheck(RunScopedCheck, SQLColumnCheckOperator):
    """SQLColumnCheckOperator: a null_check per key column over this run's rows."""

    def __init__(self, *, target: CheckTarget, **kwargs: Any) -> None:
        resource = target.resources[0]
        super().__init__(
            table="${table}",
            column_mapping={c: {"null_check": {"equal_to": 0}} for c in resource.key},
            partition_clause=target.check.sql.section("partition"),
            **_common(target, kwargs),
        )
        self.target = target
        self._keep_templates("sql", "table", "partition_clause")


class RunTableCheck(RunScopedCheck, SQLTableCheckOperator):
    """SQLTableCheckOperator: boolean checks over a derived table (one row per pipeline)."""

    def __init__(self, *, target: CheckTarget, checks: Sequence[str], **kwargs: Any) -> None:
        sql = target.check.sql
        super().__init__(
            table=sql.section("table_expression"),
            checks={name: {"check_statement": sql.section(name)} for name in checks},
            **_common(target, kwargs),
        )
        self.target = target
        self._keep_templates("sql", "table")


class EnsureCheckIndexes(SQLExecuteQueryOperator):
    """Creates the indexes the checks rely on, where missing (Postgres; see `indexes.py`)."""

    def __init__(self, *, dataset: str, resource: ResourceSpec, **kwargs: Any) -> None:
        kwargs.setdefault("doc_md", "Creates the indexes the health checks rely on, when missing "
                          "(Postgres only). Why each: include/signalroom/checks/indexes.py")
        super().__init__(sql="SELECT 1", **kwargs)
        self.dataset = dataset
        self.resource = resource

    def execute(self, context: Any) -> None:
        self.__dict__.pop("_hook", None)  # see RunScopedCheck._dialect
        dialect = dialect_for(self.get_db_hook().conn_type, self.conn_id)
        if not dialect.creates_indexes:  # DuckDB: nothing opened, so no file lock needed
            self.log.info("%s: no indexes needed (zone maps prune by _dlt_load_id)", dialect.name)
            return
        hook = self.get_db_hook()
        tables = {r[0] for r in hook.get_records(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = '{self.dataset}'"  # validated identifier (parse time)
        )}
        present = {r[0] for r in hook.get_records(dialect.existing_indexes_sql(self.dataset))}
        wanted = metadata_indexes() + table_indexes(
            self.resource.table, tuple(self.resource.key), catalog.is_merge(self.resource),
            self.resource.date_column if self.resource.volume.enabled else None,
        )
        missing = [i for i in wanted if i.table in tables and i.name not in present]
        for index in wanted:
            state = "present" if index.name in present else ("creating" if index in missing else
                                                              "table not there yet")
            self.log.info("index %s on %s.%s%s (%s): %s", index.name, self.dataset, index.table,
                          index.columns, index.purpose, state)
        if not missing:
            return
        self.sql = dialect.index_lock_sql() + [
            stmt for i in missing for stmt in dialect.create_index_sql(self.dataset, i.table, i.name, i.columns)
        ]
        super().execute(context)


class RunVolumeCheck(RunScopedCheck, SQLExecuteQueryOperator):
    """Volume anomaly check of one resource (`signalroom.checks.volume`): rows per touched day
    vs the resource's trailing history. Fails outside the fail band, warns outside the warn
    band, only logs with too little history; names days without rows (missing exports)."""

    def __init__(self, *, target: CheckTarget, **kwargs: Any) -> None:
        kwargs.setdefault("doc_md", "Rows per business day this run touched vs the trailing history "
                          "of the same resource; bands in the registry. include/signalroom/checks/volume.py")
        kwargs.setdefault("retry_on_failure", False)  # a failed check does not heal by retrying
        super().__init__(sql="SELECT 1", **kwargs)
        self.target = target

    def execute(self, context: Any) -> None:
        from signalroom.checks import volume

        resource = self.target.resources[0]
        bands = resource.volume
        dialect = self._dialect()
        (run,) = self._runs(context)
        head = f"volume check on {self.target.dataset}.{resource.table}"
        if not run.load_ids:
            self.log.info("%s: nothing to check, passes: no load package this run", head)
            return
        hook = self.get_db_hook()
        quote = dialect.quote
        try:
            touched = [r[0] for r in hook.get_records(volume.touched_days_sql(
                quote, self.target.dataset, resource.table, resource.date_column, run.load_ids))]
        except Exception as exc:  # a table the source never created: nothing to compare
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                self.log.info("%s: nothing to check, passes: %s", head, str(exc).splitlines()[0])
                return
            raise
        touched = [d if isinstance(d, date) else date.fromisoformat(str(d)[:10]) for d in touched]
        span = volume.history_range(touched, bands, run.window_end)
        if span is None:
            self.log.info("%s: nothing to check, passes: this run wrote no dated rows", head)
            return
        counts = {
            (d if isinstance(d, date) else date.fromisoformat(str(d)[:10])): int(n)
            for d, n in hook.get_records(volume.counts_sql(
                quote, self.target.dataset, resource.table, resource.date_column, *span))
        }
        result = volume.evaluate(counts, touched, bands, run.window_end)
        label = "missing export day" if resource.date_column == "_file_date" else "day without rows"
        lines = result.lines(f"{label} of {resource.name}")
        summary = (f"{head}: {result.status}; bands warn < {bands.warn_below:g}x / fail < "
                   f"{bands.fail_below:g}x of the median of {bands.history_days} days "
                   f"(at least {bands.min_history_days} with rows)")
        text = summary + "".join(f"\n    {line}" for line in lines)
        if result.status == "fail":
            self.log.error("%s", text)
            raise AirflowFailException(text)
        if result.status == "warn" or result.missing_days:
            self.log.warning("%s", text)
        else:
            self.log.info("%s", text)
