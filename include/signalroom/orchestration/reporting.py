"""Registry models -> DAGs: `signalroom_<model>` runs when its inputs' tables landed.

Scheduled on the asset aliases of its inputs (every one must have had an event since the last
run: `&`), not on a clock. Tasks: `load_mapping` (the seed into its table, one transaction) →
`build_view` (drop and create the view) → the checks (common-sql operators, read-only on
DuckDB) → `publish` (the view's asset event, with what triggered it). The SQL and the seed
rules live in signalroom.reporting; the business rules in docs/REPORTING.md.

Parse time reads the registry only; connections are read inside the tasks.
"""

from __future__ import annotations

import functools
import logging
import operator
from contextlib import closing
from datetime import timedelta
from typing import Any

from airflow.providers.common.sql.hooks.handlers import fetch_all_handler
from airflow.providers.common.sql.operators.sql import (
    SQLTableCheckOperator,
    SQLThresholdCheckOperator,
    SQLValueCheckOperator,
)
from airflow.sdk import DAG, AssetAlias, get_current_context, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from signalroom.base.naming import START_DATE, dag_id_for
from signalroom.checks.dialects import dialect_for
from signalroom.destinations import file_lock
from signalroom.orchestration.assets import ASSET_GROUP, table_alias, table_asset
from signalroom.orchestration.connections import WAREHOUSE_CONN_ID, get_connection, warehouse_destination
from signalroom.registry import MODELS, ModelSpec, get_model
from signalroom.reporting import sql
from signalroom.reporting.seed import read_mapping

log = logging.getLogger("signalroom.reporting")


def model_alias(model: ModelSpec) -> AssetAlias:
    """The alias the model publishes its view (and mapping table) through."""
    return AssetAlias(name=f"reporting.{model.name}", group=ASSET_GROUP)


def model_schedule(model: ModelSpec) -> Any:
    """Every input's alias must have had an event (AssetAll of the aliases)."""
    return functools.reduce(operator.and_, (table_alias(s, r) for s, r in model.inputs))


def _warehouse(read_only: bool = False) -> tuple[Any, Any]:
    """(hook, dialect) of the warehouse connection; DuckDB opened read-only for readers."""
    conn = get_connection(WAREHOUSE_CONN_ID)
    if conn is None:
        raise AirflowFailException(
            f"Airflow connection {WAREHOUSE_CONN_ID!r} is not defined: the model is built in the "
            "warehouse the loads write to (type postgres, or duckdb with host = the file path)"
        )
    dialect = dialect_for(conn.conn_type, WAREHOUSE_CONN_ID)
    return conn.get_hook(hook_params=dict(dialect.hook_params) if read_only else {}), dialect


def _holding(*, exclusive: bool) -> Any:
    """DuckDB lets one process write a file and none open it meanwhile: the model's writers and
    readers take the same file lock as the loads and health checks (destinations.file_lock);
    Postgres takes none."""
    return file_lock(warehouse_destination().file_path(), exclusive=exclusive)


# ------------------------------------------------------------------------------ task bodies


def load_mapping(model_name: str) -> dict[str, Any]:
    """The seed file into the mapping table: validated first, then replaced in one transaction
    (a reader never sees it empty)."""
    model = get_model(model_name)
    seed = read_mapping(model.seed)  # a bad file fails here, naming the line and the fix
    hook, dialect = _warehouse()
    delete, insert = sql.mapping_replace(model, hook.placeholder)
    with _holding(exclusive=True), closing(hook.get_conn()) as conn:
        cursor = conn.cursor()
        if dialect.name == "duckdb":
            cursor.begin()  # DuckDB commits every statement unless a transaction is open
        for statement in sql.mapping_ddl(model):
            cursor.execute(statement)
        cursor.execute(delete)
        cursor.executemany(insert, [list(row) for row in seed.rows])
        (cursor if dialect.name == "duckdb" else conn).commit()
    log.info("mapping %s.%s replaced from %s: %d rows", model.schema, model.mapping_table,
             seed.path.name, len(seed.rows))
    return {"rows": len(seed.rows), "seed": seed.path.name}


def build_view(model_name: str) -> dict[str, Any]:
    """Drop and create the view; refuses with the fix when an input table was never loaded."""
    model = get_model(model_name)
    hook, _ = _warehouse()
    for source, resource in model.inputs:
        schema, table = (part.strip('"') for part in sql.input_table(model, source).split("."))
        found = hook.get_first(
            "SELECT COUNT(*) FROM information_schema.tables "
            f"WHERE table_schema = '{schema}' AND table_name = '{table}'"  # registry identifiers
        )[0]
        if not found:
            raise AirflowFailException(
                f"{model.name} reads {schema}.{table}, which the warehouse does not have yet: run "
                f"the DAG {dag_id_for(source)} (resource {resource}) first"
            )
    with _holding(exclusive=True):
        hook.run(sql.view_ddl(model))
        rows, first, last = hook.get_first(sql.summary_sql(model))
    log.info("view %s.%s: %d rows, dates %s .. %s", model.schema, model.name, rows, first, last)
    return {"rows": rows, "first_date": str(first), "last_date": str(last)}


def _triggered_by(context: Any) -> list[dict[str, Any]]:
    """The input events this run consumed (scheduled runs), as their tables and loads."""
    events = []
    accessor = context.get("triggering_asset_events") or {}
    seen = set()
    for key in accessor:
        for event in accessor[key]:
            if (event.asset.uri, event.timestamp) in seen:
                continue
            seen.add((event.asset.uri, event.timestamp))
            events.append({
                "asset": event.asset.uri,
                "dag_run": f"{event.source_dag_id}/{event.source_run_id}",
                "load_ids": (event.extra or {}).get("load_ids"),
                "window": (event.extra or {}).get("window"),
            })
    return events


def publish(model_name: str, mapping: dict[str, Any]) -> dict[str, Any]:
    """The checked view (and the mapping table) as asset events of the model's alias."""
    model = get_model(model_name)
    context = get_current_context()
    hook, _ = _warehouse(read_only=True)
    with _holding(exclusive=False):
        rows, first, last = hook.get_first(sql.summary_sql(model))
    destination = warehouse_destination()
    extra = {
        "view": f"{model.schema}.{model.name}",
        "rows": rows,
        "dates": f"{first} .. {last}",
        "mapping_rows": mapping.get("rows"),
        "run_type": getattr(context["dag_run"].run_type, "value", str(context["dag_run"].run_type)),
        "triggered_by": _triggered_by(context),
    }
    events = context["outlet_events"][model_alias(model)]
    events.add(table_asset(destination, model.schema, model.name), extra=extra)
    events.add(table_asset(destination, model.schema, model.mapping_table),
               extra={"table": f"{model.schema}.{model.mapping_table}", "rows": mapping.get("rows"),
                      "seed": mapping.get("seed")})
    log.info("published %s.%s: %d rows, %s .. %s", model.schema, model.name, rows, first, last)
    return extra


# ---------------------------------------------------------------------------------- checks


class _ModelCheck:
    """Stock check operator run on the warehouse (read-only on DuckDB); on failure it logs the
    offending rows (`offenders_sql`) and fails the task — or, `warn_only`, only warns."""

    conn_id: str
    offenders_sql: str
    warn_only: bool = False

    def execute(self, context: Any) -> None:
        conn = get_connection(self.conn_id)
        if conn is None:
            raise AirflowFailException(f"Airflow connection {self.conn_id!r} is not defined")
        self.__dict__.pop("_hook", None)  # a cached hook may be another run's
        self.hook_params = {"log_sql": False, **dialect_for(conn.conn_type, self.conn_id).hook_params}
        with _holding(exclusive=False):
            self._check_reporting_offenders(context)

    def _check_reporting_offenders(self, context: Any) -> None:
        try:
            super().execute(context)  # type: ignore[misc]
        except AirflowException as exc:
            rows = self.get_db_hook().run(self.offenders_sql, handler=fetch_all_handler) or []
            report = f"{self.task_id}: {str(exc).strip()[:500]}\n  rows:\n" + "\n".join(
                f"    {tuple(row)}" for row in rows[:20]
            )
            if self.warn_only:
                self.log.warning("WARNING (does not fail the run) %s", report)
                return
            raise AirflowFailException(report) from None
        self.log.info("%s passed", self.task_id)


class ModelValueCheck(_ModelCheck, SQLValueCheckOperator):
    def __init__(self, *, offenders_sql: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offenders_sql = offenders_sql


class ModelRowCheck(_ModelCheck, SQLTableCheckOperator):
    def __init__(self, *, offenders_sql: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offenders_sql = offenders_sql


class UnmappedSpendCheck(_ModelCheck, SQLThresholdCheckOperator):
    """Reconciliation: the largest daily share of RedTrack spend that maps to no affiliate must
    stay under the registry's threshold; above it the run warns (mapping needs a new row)."""

    warn_only = True

    def __init__(self, *, offenders_sql: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offenders_sql = offenders_sql

    def execute(self, context: Any) -> None:
        super().execute(context)
        days = self.get_db_hook().run(self.offenders_sql, handler=fetch_all_handler) or []
        self.log.info("RedTrack spend per day (date, spend, unmapped spend, unmapped share): %s",
                      "; ".join(", ".join(str(v) for v in day) for day in days) or "no spend")


def model_checks(model: ModelSpec) -> list[Any]:
    common = {"conn_id": WAREHOUSE_CONN_ID, "retries": 0}
    view = sql.view_name(model)
    return [
        ModelValueCheck(
            task_id="check_unique_rows",
            sql=sql.duplicate_rows_sql(model),
            pass_value=0,
            offenders_sql=(f"SELECT date, advertiser_id, affiliate_label, COUNT(*) FROM {view} "
                           "GROUP BY date, advertiser_id, affiliate_label HAVING COUNT(*) > 1"),
            doc_md="No two rows share (date, advertiser, affiliate label).",
            **common,
        ),
        ModelRowCheck(
            task_id="check_cost_and_cpa",
            table=view,
            checks=sql.row_checks(model),
            offenders_sql=(f"SELECT date, advertiser_id, affiliate_label, conversions, cost, cpa FROM {view} "
                           f"WHERE NOT (cost >= 0 AND cpa = {sql.cpa_expression()}) OR cost IS NULL"),
            doc_md="Every row: cost >= 0 and cpa = round(cost / conversions, 2), 0 without conversions.",
            **common,
        ),
        UnmappedSpendCheck(
            task_id="check_unmapped_spend",
            sql=sql.max_unmapped_share_sql(model),
            min_threshold=0,
            max_threshold=model.unmapped_spend_warn_share,
            offenders_sql=sql.unmapped_spend_by_day_sql(model),
            doc_md=(f"Share of a day's RedTrack spend whose source has no mapping row, newest "
                    f"{model.reconciliation_days} days; warns above {model.unmapped_spend_warn_share:.0%}."),
            **common,
        ),
    ]


# ---------------------------------------------------------------------------------- the DAG


def _doc_md(model: ModelSpec) -> str:
    inputs = ", ".join(f"`{s}.{r}`" for s, r in model.inputs)
    return (
        f"### {model.name}\n\n{model.description}\n\nRuns when every one of {inputs} landed "
        f"(asset aliases). Builds `{model.schema}.{model.mapping_table}` from the seed "
        f"`{model.seed}` and the view `{model.schema}.{model.name}`, then checks it. "
        "Rules: docs/REPORTING.md."
    )


def build_model_dag(model: ModelSpec) -> DAG:
    with DAG(
        dag_id=dag_id_for(model.name),
        description=model.description,
        doc_md=_doc_md(model),
        schedule=model_schedule(model),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={"owner": model.owner, "retries": 1, "retry_delay": timedelta(minutes=1)},
        tags=["signalroom", "reporting", f"model:{model.name}"],
    ) as dag:
        mapping = task(task_id="load_mapping")(load_mapping)(model.name)
        view = task(task_id="build_view")(build_view)(model.name)
        done = task(task_id="publish", outlets=[model_alias(model)])(publish)(model.name, mapping)
        checks = model_checks(model)
        mapping >> view >> checks
        checks >> done
    return dag


def build_all_model_dags() -> dict[str, DAG]:
    return {dag_id_for(name): build_model_dag(model) for name, model in MODELS.items()}
