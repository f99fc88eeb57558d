"""Airflow connections -> dlt credentials (include/signalroom/orchestration/connections.py).

The warehouse URL is tested against a real Postgres that checks passwords (scram-sha-256; the
local 5432 trusts everyone and would prove nothing): a pooler-style user `postgres.<ref>` with a
password full of URL syntax logs in and dlt loads through it; one wrong character is refused;
sslmode reaches libpq. Connections come from Airflow's own lookup (`AIRFLOW_CONN_*`)."""

from __future__ import annotations

import json
from urllib.parse import quote

import psycopg2
import pytest

from signalroom.destinations import postgres_url
from signalroom.orchestration.connections import (
    SSLMODES,
    destination_from_connection,
    source_kwargs,
    warehouse_destination,
)
from signalroom.registry import get_spec


def set_connection(monkeypatch, conn_id: str, **fields) -> None:
    """Define a connection the way Airflow's environment secrets backend reads it."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture
def warehouse_conn(monkeypatch, pooler_warehouse):
    def define(**overrides):
        fields = {
            "conn_type": "postgres", "host": pooler_warehouse["host"], "port": pooler_warehouse["port"],
            "login": pooler_warehouse["user"], "password": pooler_warehouse["password"],
            "schema": pooler_warehouse["database"], "extra": {"sslmode": "disable"},
        }
        fields.update(overrides)
        set_connection(monkeypatch, "signalroom_warehouse", **fields)
        return warehouse_destination()

    return define


def test_pooler_user_and_special_password_load_through_dlt(warehouse_conn, pooler_warehouse, dlt_data_dir):
    import dlt

    dest = warehouse_conn()
    assert dest.kind == "postgres"
    pipeline = dlt.pipeline("conn_probe", destination=dest.to_dlt(), dataset_name="probe",
                            pipelines_dir=str(dlt_data_dir))
    info = pipeline.run([{"id": 1}, {"id": 2}], table_name="rows")
    assert not info.has_failed_jobs
    with psycopg2.connect(dest.postgres_url) as db, db.cursor() as cur:
        cur.execute("select current_user, count(*) from probe.rows group by 1")
        assert cur.fetchall() == [(pooler_warehouse["user"], 2)]


def test_the_server_really_checks_passwords(warehouse_conn, pooler_warehouse):
    """Without this, the test above could pass on a server that ignores passwords."""
    dest = warehouse_conn(password=pooler_warehouse["password"][:-1] + "y")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(dest.postgres_url).close()


@pytest.mark.parametrize("password", ["p@ss:w/rd?#%41 &=+x", "%%25", "@", "ü€ 'quote\"", "a/b?c#d"])
def test_url_round_trips_the_exact_password_and_user(password):
    from airflow.sdk import Connection
    from dlt.common.configuration.specs import ConnectionStringCredentials

    conn = Connection(conn_id="w", conn_type="postgres", host="db.example", port=6543,
                      login="postgres.abcdefghijklmnopqrst", password=password, schema="postgres",
                      extra=json.dumps({"sslmode": "require"}))
    url = destination_from_connection(conn).postgres_url
    libpq = psycopg2.extensions.parse_dsn(url)
    assert (libpq["user"], libpq["password"], libpq["host"], libpq["port"], libpq["dbname"], libpq["sslmode"]) == (
        "postgres.abcdefghijklmnopqrst", password, "db.example", "6543", "postgres", "require")
    parsed = ConnectionStringCredentials(url)  # what dlt's postgres destination parses
    assert (parsed.username, parsed.password, parsed.port, parsed.query) == (
        "postgres.abcdefghijklmnopqrst", password, 6543, {"sslmode": "require"})


@pytest.mark.parametrize("sslmode", ["require", "verify-full"])
def test_sslmode_reaches_libpq(warehouse_conn, sslmode):
    """The throwaway server has no SSL: a connection that demands it must be refused for that."""
    dest = warehouse_conn(extra={"sslmode": sslmode})
    assert dest.postgres_url.endswith(f"?sslmode={sslmode}")
    with pytest.raises(psycopg2.OperationalError, match="server does not support SSL"):
        psycopg2.connect(dest.postgres_url).close()


def test_no_sslmode_leaves_libpqs_default(warehouse_conn):
    dest = warehouse_conn(extra={})
    assert "sslmode" not in dest.postgres_url
    psycopg2.connect(dest.postgres_url).close()  # prefer: falls back to plain on this server


def test_unknown_sslmode_is_refused_before_connecting(warehouse_conn):
    with pytest.raises(ValueError, match=r"'signalroom_warehouse': extra sslmode 'required' is not a libpq sslmode; "
                                         r"use one of disable, allow"):
        warehouse_conn(extra={"sslmode": "required"})
    assert "require" in SSLMODES


def test_secrets_of_the_destination_are_masked(warehouse_conn, pooler_warehouse):
    from airflow.sdk.log import redact

    dest = warehouse_conn()
    text = redact(f"loading into {dest.postgres_url}")
    assert quote(pooler_warehouse["password"], safe="") not in text
    assert pooler_warehouse["password"] not in redact(f"pw {pooler_warehouse['password']}")


def test_duckdb_connection_uses_host_as_file(monkeypatch, tmp_path):
    set_connection(monkeypatch, "signalroom_warehouse", conn_type="duckdb", host=str(tmp_path / "wh.duckdb"))
    dest = warehouse_destination()
    assert (dest.kind, dest.duckdb_path) == ("duckdb", str(tmp_path / "wh.duckdb"))


def test_other_connection_types_are_refused(monkeypatch):
    set_connection(monkeypatch, "signalroom_warehouse", conn_type="mysql", host="h")
    with pytest.raises(ValueError, match="'signalroom_warehouse' has type 'mysql'.*'postgres' or 'duckdb'"):
        warehouse_destination()


def test_without_a_connection_a_load_fails_closed_whatever_the_environment(monkeypatch):
    """Inside Airflow only the connection decides: no silent fallback to env or DuckDB."""
    from signalroom.hints import match_hint
    from signalroom.orchestration.connections import WarehouseConnectionMissing

    monkeypatch.delenv("AIRFLOW_CONN_SIGNALROOM_WAREHOUSE", raising=False)
    monkeypatch.setenv("SIGNALROOM_DESTINATION", "postgres")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url("h", "d", "u", "p"))
    with pytest.raises(WarehouseConnectionMissing, match="no Airflow connection 'signalroom_warehouse'") as err:
        warehouse_destination()
    assert match_hint(err.value).key == "warehouse_connection_missing"


def test_duckdb_connection_needs_a_file_path(monkeypatch):
    set_connection(monkeypatch, "signalroom_warehouse", conn_type="duckdb")
    with pytest.raises(ValueError, match="type 'duckdb' but no host"):
        warehouse_destination()


def test_api_connections_give_key_and_base_url(monkeypatch):
    set_connection(monkeypatch, "signalroom_everflow", conn_type="http", host="https://api.eflow.team",
                   password="ef-key/+=")
    set_connection(monkeypatch, "signalroom_redtrack", conn_type="http", host="http://127.0.0.1:9999",
                   password="rt-key")
    assert source_kwargs(get_spec("everflow")) == {"api_key": "ef-key/+=", "base_url": "https://api.eflow.team"}
    assert source_kwargs(get_spec("redtrack")) == {"api_key": "rt-key", "base_url": "http://127.0.0.1:9999"}


def test_aws_connection_gives_keys_bucket_and_endpoint(monkeypatch):
    set_connection(monkeypatch, "signalroom_s3", conn_type="aws", login="AKIAEXAMPLE", password="sec/ret+",
                   extra={"bucket_url": "s3://bucket/crm", "region_name": "us-east-1",
                          "endpoint_url": "http://127.0.0.1:9000"})
    assert source_kwargs(get_spec("s3_exports")) == {
        "bucket_url": "s3://bucket/crm", "aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "sec/ret+",
        "endpoint_url": "http://127.0.0.1:9000", "region_name": "us-east-1",
    }


def test_empty_fields_and_missing_connections_leave_dlt_config_in_charge(monkeypatch):
    set_connection(monkeypatch, "signalroom_s3", conn_type="aws", login="AKIA", password="s",
                   extra={"bucket_url": "s3://b", "endpoint_url": ""})
    assert "endpoint_url" not in source_kwargs(get_spec("s3_exports"))
    monkeypatch.delenv("AIRFLOW_CONN_SIGNALROOM_EVERFLOW", raising=False)
    assert source_kwargs(get_spec("everflow")) == {}
