"""The one module that reads Airflow connections: warehouse -> destination config, a source's
connection -> its dlt config keys (mapped field by field in the registry, secrets declared
there beside the mapping), and whether a connection exists (alerts, checks).

Runs inside tasks and callbacks only (connection lookups are metadata access, never at parse
time). Secrets read here are registered with Airflow's secret masker, so they never reach a log.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

from signalroom.destinations import DestinationConfig, postgres_url
from signalroom.registry import SourceSpec

log = logging.getLogger("signalroom.connections")

WAREHOUSE_CONN_ID = "signalroom_warehouse"
# libpq's sslmode values; anything else would only fail later, inside dlt, with a vaguer error
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class WarehouseConnectionMissing(RuntimeError):
    """Inside Airflow the warehouse is only ever the one the connection names (fail closed)."""


def get_connection(conn_id: str) -> Any | None:
    """The connection, or None when it is not defined."""
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def connection_exists(conn_id: str) -> bool:
    return get_connection(conn_id) is not None


async def aconnection_exists(conn_id: str) -> bool:
    """For async callbacks (deadline alerts run in the triggerer)."""
    try:
        await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def _mask(value: Any) -> None:
    if value:
        mask_secret(str(value))


def destination_from_connection(conn: Any) -> DestinationConfig:
    """Map a warehouse connection (type postgres or duckdb) to a destination."""
    if conn.conn_type == "duckdb":
        if not conn.host:
            raise ValueError(
                f"connection {conn.conn_id!r} has type 'duckdb' but no host: set host to the DuckDB "
                "file's absolute path (a file every load and check of this machine can reach)"
            )
        return DestinationConfig(kind="duckdb", duckdb_path=conn.host)
    if conn.conn_type in ("postgres", "postgresql"):
        extra = conn.extra_dejson
        _mask(conn.password)
        sslmode = extra.get("sslmode") or None
        if sslmode is not None and sslmode not in SSLMODES:
            raise ValueError(
                f"connection {conn.conn_id!r}: extra sslmode {sslmode!r} is not a libpq sslmode; "
                f"use one of {', '.join(SSLMODES)} (a Supabase pooler needs 'require')"
            )
        url = postgres_url(
            host=conn.host or "localhost",
            database=conn.schema or "postgres",
            user=conn.login or "postgres",
            password=conn.password,
            port=conn.port,
            sslmode=sslmode,
        )
        _mask(url)
        return DestinationConfig(kind="postgres", postgres_url=url)
    raise ValueError(
        f"connection {conn.conn_id!r} has type {conn.conn_type!r}; the warehouse connection "
        "must be of type 'postgres' or 'duckdb'"
    )


def warehouse_destination(conn_id: str = WAREHOUSE_CONN_ID) -> DestinationConfig:
    """The destination the warehouse connection names; no connection, no load.

    Fails closed: without the connection a load must not fall back to a default (a DuckDB
    file in the worker's working folder would take the rows, and every worker would have its
    own). Raised before anything is extracted. Outside Airflow the CLI reads the environment
    (`signalroom.destinations.destination_from_env`).
    """
    conn = get_connection(conn_id)
    if conn is None:
        raise WarehouseConnectionMissing(
            f"no Airflow connection {conn_id!r}: nothing was extracted or loaded. Create it (type "
            "postgres: host, port, schema = database, login, password; or type duckdb with host = "
            "the DuckDB file's path), e.g. from airflow_settings.yaml, then clear this task"
        )
    return destination_from_connection(conn)


def _field(conn: Any, name: str) -> Any:
    if name.startswith("extra."):
        return conn.extra_dejson.get(name.removeprefix("extra."))
    return getattr(conn, name, None)


def source_kwargs(spec: SourceSpec) -> dict[str, Any]:
    """Source keyword arguments from the source's connection, as mapped in the registry.

    Without the connection, nothing is passed and dlt's own config providers (env vars such
    as SOURCES__EVERFLOW__API_KEY) apply.
    """
    if not spec.connection_id:
        return {}
    conn = get_connection(spec.connection_id)
    if conn is None:
        log.info("no Airflow connection %r: %s config from dlt providers", spec.connection_id, spec.name)
        return {}
    kwargs = {}
    for kwarg, field in spec.connection_fields.items():
        value = _field(conn, field)
        if kwarg in spec.secret_fields:
            _mask(value)
        if value not in (None, ""):
            kwargs[kwarg] = value
    return kwargs
