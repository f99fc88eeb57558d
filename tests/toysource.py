"""A small real dlt source with an incremental resource, to the registry's source contract.

Lets the maintenance and state tests produce real dlt state and real pending packages in
Postgres without any external system. `toy_source(name, resource)` builds one under a
registered source's names, so its pipeline is `<source>__<resource>` like the real ones.
"""

from __future__ import annotations

from datetime import date, timedelta

import dlt


def toy_source(source_name: str, resource_name: str, table: str | None = None):
    @dlt.source(name=source_name, max_table_nesting=0)
    def toy(
        start_date: date | None = None,
        end_date: date | None = None,
        backfill: bool = False,
        lookback_days: int = 3,
        client_id: str = "713",
        rows_per_day: int = 3,
        **_: object,
    ):
        first = start_date or end_date - timedelta(days=lookback_days - 1)
        initial = first.isoformat()
        end_value = (end_date + timedelta(days=1)).isoformat() if backfill else None

        @dlt.resource(
            name=resource_name,
            table_name=table or resource_name,
            primary_key=("date", "id"),
            write_disposition="merge",
        )
        def rows(
            cursor=dlt.sources.incremental("date", initial_value=initial, end_value=end_value),  # noqa: B008
        ):
            if backfill:
                day = first
            else:  # re-read the look-back before the cursor, like the real sources
                day = max(first, date.fromisoformat(cursor.start_value) - timedelta(days=lookback_days - 1))
                day = min(day, date.fromisoformat(cursor.start_value))
            while day <= end_date:
                for i in range(rows_per_day):
                    yield {"date": day.isoformat(), "id": i, "value": i * 10 + day.day, "_client_id": client_id}
                day += timedelta(days=1)

        return rows

    return toy


# The toy under the registered names of the `redtrack` source, until the real sources land:
# pipeline redtrack__daily_spend, dataset redtrack, table daily_spend.
redtrack = toy_source("redtrack", "daily_spend")
TOY_SOURCE, TOY_RESOURCE, TOY_PIPELINE = "redtrack", "daily_spend", "redtrack__daily_spend"


def use_toy(monkeypatch) -> None:
    """Point the registry's `redtrack` at the toy (a test double for the source only)."""
    from dataclasses import replace

    from signalroom.registry import REGISTRY

    spec = replace(REGISTRY[TOY_SOURCE], ref="toysource:redtrack", connection_id=None, connection_fields={})
    monkeypatch.setitem(REGISTRY, TOY_SOURCE, spec)


def dlt_postgres_url(url: str) -> str:
    """dlt's Postgres credentials require a password; trust-auth test servers ignore it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        return url
    netloc = f"{parts.username or 'postgres'}:trust@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def warehouse_connection(url: str) -> dict[str, str]:
    """AIRFLOW_CONN_SIGNALROOM_WAREHOUSE for a Postgres URL (Airflow's env secrets backend)."""
    import json
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(dlt_postgres_url(url))
    conn = {
        "conn_type": "postgres",
        "host": parts.hostname,
        "port": parts.port or 5432,
        "login": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
        "schema": parts.path.lstrip("/"),
    }
    return {"AIRFLOW_CONN_SIGNALROOM_WAREHOUSE": json.dumps(conn)}


def table_rows(url: str, sql: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()
