"""Loaded tables as Airflow assets: what makes the rest of Airflow see the data land.

Parse time knows only names: each load task declares one `AssetAlias` per resource
(`<source>.<resource>`, the registry's names), so a DAG file reads no connection. At run time,
after dlt loaded, the task attaches to that alias one asset event per table the load wrote
rows to (the resource's table and any nested child table dlt created on the way), the asset's
URI built from the warehouse connection the load used
(`postgres://host:port/database/schema/table`, DuckDB: `duckdb://localhost/<file>/schema/table`).
Airflow records the alias -> asset link, so its DAG and Assets views show
source DAG -> tables -> downstream DAG, and a DAG scheduled on the alias runs when any of them
got an event.

A load that wrote no rows emits no event and says so in its log: downstream DAGs do not rerun
for nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from airflow.sdk import Asset, AssetAlias

from signalroom.base.naming import table_alias_name
from signalroom.base.summary import LoadSummary
from signalroom.destinations import DestinationConfig

log = logging.getLogger("signalroom.assets")

ASSET_GROUP = "signalroom"
MAX_FILES_IN_EXTRA = 20  # an event's extra stays readable in the UI; the task log has them all


def table_alias(source: str, resource: str) -> AssetAlias:
    """The alias a resource's load task emits its tables' events through (parse time)."""
    return AssetAlias(name=table_alias_name(source, resource), group=ASSET_GROUP)


def table_asset(destination: DestinationConfig, schema: str, table: str) -> Asset:
    """One warehouse table as an asset; the URI carries no credentials."""
    return Asset(uri=destination.table_uri(schema, table), group=ASSET_GROUP)


def event_extra(summary: LoadSummary, table: str, run_type: str) -> dict[str, Any]:
    """What a person reads on the event in the UI: which load, how many rows, what range."""
    window = summary.window
    extra: dict[str, Any] = {
        "table": f"{summary.dataset}.{table}",
        "rows": summary.rows.get(table, 0),
        "rows_per_table": dict(summary.rows),
        "load_ids": list(summary.load_ids),
        "window": window.describe(),
        "backfill": window.backfill and not window.intraday,
        "intraday": window.intraday,  # today's partial day: the next daily run restates it
        "run_type": run_type,
        "pipeline": summary.pipeline,
    }
    if summary.cursor_before or summary.cursor_after:
        extra["cursor"] = {"before": dict(summary.cursor_before), "after": dict(summary.cursor_after)}
    if summary.files:
        extra["files_count"] = len(summary.files)
        extra["files"] = list(summary.files[:MAX_FILES_IN_EXTRA])
    return extra


def emit_table_events(
    outlet_events: Any,
    destination: DestinationConfig,
    summary_dict: Mapping[str, Any],
    run_type: str,
) -> list[str]:
    """Attach one event per table with rows to the resource's alias; returns the URIs."""
    summary = LoadSummary.from_dict(summary_dict)
    alias = table_alias(summary.source, summary.resource)
    uris = []
    for table, rows in sorted(summary.rows.items()):
        if rows <= 0:
            continue
        asset = table_asset(destination, summary.dataset, table)
        outlet_events[alias].add(asset, extra=event_extra(summary, table, run_type))
        uris.append(asset.uri)
    if uris:
        log.info("asset events (alias %r): %s", alias.name, ", ".join(uris))
    else:
        log.info(
            "no asset event: this load wrote no rows, so DAGs scheduled on %r are not triggered",
            alias.name,
        )
    return uris
