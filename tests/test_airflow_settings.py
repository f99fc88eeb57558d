"""The airflow_settings.yaml loader: the shipped file applied twice to a fresh metadata DB by
the same CLI the compose init service runs (the second apply changes nothing), the applied
connections reaching a real password-checking Postgres through the bundle's own lookup, updates
and dry runs, and malformed entries rejected with file, entry and field before any write."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from signalroom.deploy.airflow_settings import (
    SettingsError,
    apply_settings,
    load_settings,
    main,
    parse_settings,
)
from tools import localenv

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "airflow_settings.yaml"
LOADER = [sys.executable, "-m", "signalroom.deploy.airflow_settings"]


# --------------------------------------------------------------------------- the shipped file


@pytest.fixture(scope="module")
def fresh_home(tmp_path_factory) -> dict[str, str]:
    """Environment of a brand-new, migrated metadata DB (not the session's)."""
    base = tmp_path_factory.mktemp("fresh-airflow")
    env = localenv.cli_env(localenv.airflow_env(base / "home", base / "dlt"))
    (base / "home").mkdir()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   capture_output=True)
    return env


@pytest.fixture(scope="module")
def shipped_env(fresh_home) -> dict[str, str]:
    """The shipped file needs nothing from the environment: every value is in it."""
    return fresh_home


def run_loader(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LOADER, *args], env=env, capture_output=True, text=True)


# Runs in the applied DB's environment: the second apply (the CLI's own `main`, in this process
# to spare an interpreter start), then a read-back as an Airflow server process looks
# connections up — with production-style AIRFLOW_CONN_* variables for the warehouse and
# Everflow, which Airflow's environment backend serves before the metadata DB.
_SECOND_APPLY_AND_READ_BACK = textwrap.dedent("""
    import sys
    from signalroom.deploy.airflow_settings import main
    print("exit", main(["apply", sys.argv[1]]))
    import json, psycopg2
    from sqlalchemy import select
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from signalroom.orchestration.connections import source_kwargs, warehouse_destination
    from signalroom.registry import REGISTRY

    with create_session() as s:
        conns = {c.conn_id: [c.conn_type, c.host, c.schema, c.login, c.password, c.port, c.extra_dejson]
                 for c in s.scalars(select(Connection))}
        variables = {v.key: v.val for v in s.scalars(select(Variable))}
        pools = {p.pool: [p.slots, p.description] for p in s.scalars(select(Pool))}
    dest = warehouse_destination()
    with psycopg2.connect(dest.postgres_url) as db, db.cursor() as cur:
        cur.execute("select current_user, current_database()")
        who = list(cur.fetchone())
    kwargs = {name: source_kwargs(spec) for name, spec in REGISTRY.items()}
    print(json.dumps({"conns": conns, "variables": variables, "pools": pools,
                      "who": who, "kwargs": kwargs}))
""")
EVERFLOW_KEY = "ef-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def applied_twice(shipped_env, pooler_warehouse):
    first = run_loader(shipped_env, "apply", str(SETTINGS_FILE))
    assert first.returncode == 0, first.stderr[-3000:]
    production = {
        "AIRFLOW_CONN_SIGNALROOM_WAREHOUSE": json.dumps({
            "conn_type": "postgres", "host": pooler_warehouse["host"], "port": pooler_warehouse["port"],
            "schema": pooler_warehouse["database"], "login": pooler_warehouse["user"],
            "password": pooler_warehouse["password"], "extra": {"sslmode": "disable"}}),
        "AIRFLOW_CONN_SIGNALROOM_EVERFLOW": json.dumps({
            "conn_type": "http", "host": "https://api.eflow.team", "password": EVERFLOW_KEY}),
    }
    run = subprocess.run([sys.executable, "-c", _SECOND_APPLY_AND_READ_BACK, str(SETTINGS_FILE)],
                         capture_output=True, text=True,
                         env={**shipped_env, **production, "_AIRFLOW_PROCESS_CONTEXT": "server"})
    assert run.returncode == 0, run.stderr[-3000:]
    *second, state = run.stdout.strip().splitlines()
    return first, subprocess.CompletedProcess([], 0, "\n".join(second), run.stderr), json.loads(state)


def test_shipped_file_is_plain_astro_format():
    """Astro's importer stores values as written: no ${...} anywhere, typed fields typed, only
    Astro's keys, and nothing to apply conditionally."""
    import yaml

    text = SETTINGS_FILE.read_text()
    assert "${" not in text and "only_if_env_set" not in text
    document = yaml.safe_load(text)["airflow"]
    astro_keys = {"connections": {"conn_id", "conn_type", "conn_host", "conn_schema", "conn_login",
                                  "conn_password", "conn_port", "conn_uri", "conn_extra"},
                  "pools": {"pool_name", "pool_slot", "pool_description"},
                  "variables": {"variable_name", "variable_value"}}
    for section, keys in astro_keys.items():
        for entry in document[section]:
            assert set(entry) <= keys, entry
    assert all(isinstance(c.get("conn_port", 0), int) for c in document["connections"])
    assert all(isinstance(p["pool_slot"], int) for p in document["pools"])


def test_first_apply_creates_everything(applied_twice):
    first, _, _ = applied_twice
    assert first.returncode == 0, first.stderr
    assert "changed 6 of 6 entries: 6 created, 0 updated, 0 unchanged" in first.stdout
    for name in ("signalroom_warehouse", "signalroom_everflow", "signalroom_redtrack", "signalroom_s3"):
        assert f"connection {name}: created" in first.stdout
    assert "pool signalroom_loads: created" in first.stdout
    assert "variable signalroom_environment: created" in first.stdout


def test_second_apply_changes_nothing_and_says_so(applied_twice):
    _, second, _ = applied_twice
    *lines, exit_line = second.stdout.strip().splitlines()
    assert exit_line == "exit 0"
    assert lines[-1].endswith("nothing changed: all 6 entries already match")
    assert all(line.endswith(": unchanged") for line in lines[:-1]) and len(lines) == 7


def test_applied_values_are_the_files(applied_twice):
    _, _, state = applied_twice
    conns = state["conns"]
    assert conns["signalroom_warehouse"] == [
        "postgres", "warehouse", "warehouse", "signalroom", "signalroom", 5432, {"sslmode": "disable"},
    ]
    assert conns["signalroom_everflow"][:5] == ["http", "https://api.eflow.team", None, None, None]
    assert conns["signalroom_redtrack"][:2] == ["http", "https://api.redtrack.io"]
    assert conns["signalroom_s3"][0] == "aws"
    assert conns["signalroom_s3"][6] == {"bucket_url": "s3://signalroom-exports/crm", "region_name": "us-east-1"}
    assert "signalroom_slack" not in conns  # alerts are off until a webhook connection is provided
    assert state["pools"]["signalroom_loads"] == [4, "Concurrent dlt loads into the warehouse"]
    assert state["variables"]["signalroom_environment"] == "local-docker"


def test_production_connection_from_env_wins_and_logs_into_real_postgres(applied_twice, pooler_warehouse):
    """AIRFLOW_CONN_SIGNALROOM_WAREHOUSE (Airflow's environment backend) over the applied entry
    -> connections.warehouse_destination -> a server that checks the password: the pooler user
    and the `@:/?#%` password arrive intact."""
    _, _, state = applied_twice
    assert state["who"] == [pooler_warehouse["user"], pooler_warehouse["database"]]


def test_applied_api_and_s3_connections_become_source_kwargs(applied_twice):
    kwargs = applied_twice[2]["kwargs"]
    assert kwargs["everflow"] == {"api_key": EVERFLOW_KEY, "base_url": "https://api.eflow.team"}
    assert kwargs["redtrack"]["base_url"] == "https://api.redtrack.io"
    s3 = kwargs["s3_exports"]
    assert s3["bucket_url"] == "s3://signalroom-exports/crm" and s3["region_name"] == "us-east-1"
    assert "aws_access_key_id" not in s3 and "endpoint_url" not in s3  # boto's default chain


def test_loader_output_carries_no_secret(applied_twice):
    for run in applied_twice[:2]:
        assert EVERFLOW_KEY not in run.stdout + run.stderr
        assert "signalroom:signalroom" not in run.stdout + run.stderr


def test_check_command_validates_the_shipped_file(capsys):
    assert main(["check", str(SETTINGS_FILE)]) == 0
    assert "ok (4 connections, 1 variables, 1 pools)" in capsys.readouterr().out


# --------------------------------------------------------------------------- updates (session DB)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _db_state(conn_id: str, var: str, pool: str):
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
        variable = session.scalar(select(Variable).where(Variable.key == var))
        slots = session.scalar(select(Pool.slots).where(Pool.pool == pool))
        return (
            conn and (conn.host, conn.password, conn.port, conn.extra_dejson),
            variable and variable.val,
            slots,
        )


SAMPLE = """
    airflow:
      connections:
        - conn_id: {cid}
          conn_type: postgres
          conn_host: db.example
          conn_port: {port}
          conn_login: u
          conn_password: ${{SR_TEST_PW}}
          conn_extra: {{sslmode: require}}
      variables:
        - variable_name: {vid}
          variable_value: {value}
      pools:
        - pool_name: {pid}
          pool_slot: {slots}
          pool_description: test pool
"""


@pytest.fixture
def ids():
    tag = uuid.uuid4().hex[:8]
    return {"cid": f"sr_test_conn_{tag}", "vid": f"sr_test_var_{tag}", "pid": f"sr_test_pool_{tag}"}


def test_update_changes_only_what_differs(airflow_db, tmp_path, ids):
    env = {"SR_TEST_PW": "first"}
    path = _write(tmp_path, SAMPLE.format(**ids, port=5432, value="a", slots=2))
    assert apply_settings(load_settings(path, env=env)).counts == {"created": 3, "updated": 0, "unchanged": 0}

    path = _write(tmp_path, SAMPLE.format(**ids, port=6543, value="b", slots=3))
    report = apply_settings(load_settings(path, env={"SR_TEST_PW": "second"}))
    assert report.counts == {"created": 0, "updated": 3, "unchanged": 0}
    assert f"connection {ids['cid']}: updated (password, port)" in report.lines
    assert f"variable {ids['vid']}: updated (value)" in report.lines
    assert f"pool {ids['pid']}: updated (slots)" in report.lines
    assert _db_state(ids["cid"], ids["vid"], ids["pid"]) == (
        ("db.example", "second", 6543, {"sslmode": "require"}), "b", 3)

    again = apply_settings(load_settings(path, env={"SR_TEST_PW": "second"}))
    assert not again.changed and again.summary() == "nothing changed: all 3 entries already match"


def test_dry_run_reports_and_writes_nothing(airflow_db, tmp_path, ids):
    path = _write(tmp_path, SAMPLE.format(**ids, port=5432, value="a", slots=2))
    report = apply_settings(load_settings(path, env={"SR_TEST_PW": "x"}), dry_run=True)
    assert report.counts["created"] == 3 and report.summary(dry_run=True).startswith("would change 3 of 3")
    assert _db_state(ids["cid"], ids["vid"], ids["pid"]) == (None, None, None)


def test_only_if_env_set_skips_and_applies(airflow_db, tmp_path, ids):
    text = f"""
        airflow:
          connections:
            - conn_id: {ids['cid']}
              conn_type: slackwebhook
              conn_password: ${{SR_TEST_HOOK}}
              only_if_env_set: SR_TEST_HOOK
    """
    path = _write(tmp_path, text)
    skipped = apply_settings(load_settings(path, env={}))
    assert skipped.lines == [f"connection {ids['cid']}: skipped (SR_TEST_HOOK is not set)"]
    assert _db_state(ids["cid"], "-", "-")[0] is None
    applied = apply_settings(load_settings(path, env={"SR_TEST_HOOK": "https://hook.invalid/x"}))
    assert applied.counts["created"] == 1
    assert _db_state(ids["cid"], "-", "-")[0][1] == "https://hook.invalid/x"


def test_malformed_file_writes_nothing_and_exits_2(airflow_db, tmp_path, ids, capsys):
    text = f"""
        airflow:
          connections:
            - conn_id: {ids['cid']}
              conn_type: postgres
          pools:
            - pool_name: {ids['pid']}
              pool_slot: many
    """
    path = _write(tmp_path, text)
    assert main(["apply", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: 1 problem:" in err and f"pools[0] ({ids['pid']}) pool_slot: 'many' is not a whole number" in err
    assert _db_state(ids["cid"], "-", ids["pid"]) == (None, None, None)  # the valid entry was not applied


# --------------------------------------------------------------------------- validation


def problems(document, env=None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse_settings(document, "settings.yaml", env or {})
    assert str(caught.value).startswith("settings.yaml: ")
    return caught.value.problems


def conn(**fields):
    return {"airflow": {"connections": [{"conn_id": "c1", "conn_type": "postgres", **fields}]}}


@pytest.mark.parametrize(
    "document, expected",
    [
        ({"airflow": {"connections": [{"conn_type": "postgres", "conn_host": "h"}]}},
         "connections[0] conn_id: missing"),
        (conn(conn_type="postgress"), "connections[0] (c1) conn_type: unknown connection type 'postgress': did you mean 'postgres'?"),
        (conn(conn_type=None, conn_host="h"), "connections[0] (c1) conn_type: missing"),
        (conn(conn_port="abc"), "connections[0] (c1) conn_port: 'abc' is not a port number"),
        (conn(conn_port=70000), "connections[0] (c1) conn_port: 70000 is out of range for a port number (1..65535)"),
        (conn(conn_port=True), "connections[0] (c1) conn_port: True is not a port number"),
        (conn(conn_passwd="x"), "connections[0] (c1) conn_passwd: unknown field (did you mean 'conn_password'?)"),
        (conn(conn_extra="{not json"), "connections[0] (c1) conn_extra: not valid JSON"),
        (conn(conn_extra=["a"]), "connections[0] (c1) conn_extra: must be a mapping"),
        (conn(conn_uri="postgres://h/db"), "connections[0] (c1) conn_uri: give either conn_uri or the separate fields"),
        (conn(conn_id="bad id;"), "connections[0] (bad id;) conn_id: 'bad id;' has characters Airflow does not allow"),
        (conn(conn_password="${SR_UNSET_VAR}"), "connections[0] (c1) conn_password: environment variable SR_UNSET_VAR is not set"),
        ({"airflow": {"pools": [{"pool_name": "p", "pool_slot": 1.5}]}}, "pools[0] (p) pool_slot: 1.5 is not a whole number"),
        ({"airflow": {"pools": [{"pool_name": "p", "pool_slot": "four"}]}}, "pools[0] (p) pool_slot: 'four' is not a whole number"),
        ({"airflow": {"pools": [{"pool_name": "p"}]}}, "pools[0] (p) pool_slot: missing"),
        ({"airflow": {"pools": [{"pool_slot": 3}]}}, "pools[0] pool_name: missing"),
        ({"airflow": {"variables": [{"variable_name": "v"}]}}, "variables[0] (v) variable_value: missing"),
        ({"airflow": {"variables": [{"variable_value": "x"}]}}, "variables[0] variable_name: missing"),
        ({"airflow": {"connections": {"conn_id": "c"}}}, "airflow.connections: must be a list of entries"),
        ({"airflow": {"conections": []}}, "airflow conections: unknown field (did you mean 'connections'?)"),
        ({"airflow": {"connections": ["c1"]}}, "connections[0]: must be a mapping"),
        ({"connections": []}, "top level: expected a mapping with an 'airflow' key"),
        ({"airflow": {}, "extra": 1}, "top level: expected a mapping with an 'airflow' key"),
        (conn(only_if_env_set="not a name"), "connections[0] (c1) only_if_env_set: 'not a name' is not an environment variable name"),
    ],
)
def test_malformed_entry_names_entry_and_field(document, expected):
    found = problems(document)
    assert any(p.startswith(expected) for p in found), found


def test_duplicates_name_both_entries():
    found = problems({"airflow": {
        "connections": [{"conn_id": "c", "conn_type": "http"}, {"conn_id": "c", "conn_type": "http"}],
        "variables": [{"variable_name": "v", "variable_value": 1}, {"variable_name": "v", "variable_value": 2}],
        "pools": [{"pool_name": "p", "pool_slot": 1}, {"pool_name": "p", "pool_slot": 2}],
    }})
    assert found == [
        "connections[1] (c) conn_id: duplicate 'c': already defined by connections[0]",
        "pools[1] (p) pool_name: duplicate 'p': already defined by pools[0]",
        "variables[1] (v) variable_name: duplicate 'v': already defined by variables[0]",
    ]


def test_every_problem_is_reported_at_once():
    found = problems({"airflow": {
        "connections": [{"conn_id": "a", "conn_type": "http", "conn_port": "x"}, {"conn_type": "http"}],
        "pools": [{"pool_name": "p", "pool_slot": "y"}],
    }})
    assert len(found) == 3


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(SettingsError, match="nope.yaml: 1 problem:\n  - file not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("airflow: [unclosed\n")
    with pytest.raises(SettingsError, match="bad.yaml: 1 problem:\n  - not valid YAML"):
        load_settings(bad)


def test_expansion_defaults_escapes_and_extras():
    settings = parse_settings({"airflow": {
        "connections": [{
            "conn_id": "c", "conn_type": "aws", "conn_login": "${KEY_ID}", "conn_password": "a$$b${EMPTY:-dflt}",
            "conn_port": "${PORT:-6543}", "conn_extra": {"region_name": "${REGION}", "nested": {"x": "${KEY_ID}"}},
        }],
        "variables": [{"variable_name": "n", "variable_value": 3}, {"variable_name": "j", "variable_value": {"a": [1]}}],
    }}, env={"KEY_ID": "AKIA", "EMPTY": "", "REGION": "eu-west-1"})
    (c,) = settings.connections
    assert (c.login, c.password, c.port) == ("AKIA", "a$bdflt", 6543)
    assert c.extra == {"region_name": "eu-west-1", "nested": {"x": "AKIA"}}
    assert [v.value for v in settings.variables] == ["3", '{"a": [1]}']


def test_conn_uri_entries_and_astro_blank_entries():
    settings = parse_settings({"airflow": {
        "connections": [
            {"conn_id": None, "conn_type": None, "conn_host": None},  # Astro's template
            {"conn_id": "u", "conn_uri": "postgres://us%40r:p%3Aw@db.example:6543/wh?sslmode=require"},
        ],
        "pools": [{"pool_name": None, "pool_slot": None, "pool_description": None}],
    }}, env={})
    (c,) = settings.connections
    assert (c.conn_type, c.host, c.login, c.password, c.port, c.schema, dict(c.extra)) == (
        "postgres", "db.example", "us@r", "p:w", 6543, "wh", {"sslmode": "require"})
    assert settings.pools == ()
