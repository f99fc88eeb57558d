"""s3_exports against a real S3 API (moto's server on loopback) and a local folder, loaded
through `run_load` (the Airflow task's code path) into real Postgres and DuckDB.

Which files a run opened is counted by the S3 server itself (GETs per key), not by our code.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from signalroom.hints import config_locations
from signalroom.pipeline import Window
from signalroom.sources.s3_exports import s3_exports
from signalroom.sources.s3_exports.helpers import (
    ExportConfigError,
    file_date,
    parse_prefixes,
    resource_name,
    write_disposition,
)
from tests.support.api import column_types, destination, load, local_state, query
from tools.standins.exports import export_name, header, write_export, write_exports
from tools.standins.s3 import SECRET_KEY, S3Server

PIPELINE = "s3_exports__orders_create"
D1, D2, D3, D4 = (date(2025, 12, 1) + timedelta(days=i) for i in range(4))
ROWS = 300


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture
def bucket(s3) -> str:
    name = f"exports-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    s3.reset_reads()
    return name


@pytest.fixture(autouse=True)
def _env(dlt_data_dir):
    yield


def run(s3, bucket, dest, window, resource="orders_create", **kwargs) -> dict:
    return load("s3_exports", resource, window, dest, **{**s3.source_kwargs(bucket), **kwargs})


def put_day(s3, bucket, tmp_path: Path, day: date, rows: int = ROWS, *, seed: int = 0,
            prefix: str = "orders-create") -> str:
    """Write one synthetic export and upload it; returns its bucket-relative path."""
    key = f"{prefix}/{export_name(day, prefix)}"
    path = write_export(tmp_path / "src" / f"{uuid.uuid4().hex}.csv", day, rows, seed=seed)
    s3.put(bucket, key, path.read_bytes())
    return key


def files_read(s3, bucket) -> set[str]:
    return {key.removeprefix(f"{bucket}/") for key in s3.reads()}


def per_file(dest, table="orders_create") -> dict[str, tuple]:
    """_file_name -> (rows, min _row_id, max _row_id, distinct _row_id, _file_date, _client_id)."""
    rows = query(
        dest,
        f"SELECT _file_name, count(*), min(_row_id), max(_row_id), count(DISTINCT _row_id), "
        f"min(_file_date), min(_client_id) FROM s3_exports.{table} GROUP BY _file_name",
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def tracked(resource="orders_create") -> dict:
    state = local_state(f"s3_exports__{resource}")
    return state.get("s3_exports", {}).get("resources", {}).get(resource, {}).get("files", {})


# ---------------------------------------------------------------- pure parts


def test_prefixes_names_and_file_dates():
    assert parse_prefixes(" orders-create, ,sub/kind/ ,orders-create") == ["orders-create", "sub/kind"]
    assert resource_name("sub/kind-x") == "sub_kind_x"
    assert file_date("orders-create/2025/report_2025-12-18T0301_ab12.csv") == date(2025, 12, 18)
    assert file_date("x/2025-13-45/report_2025-02-03.csv") == date(2025, 2, 3)  # invalid first match skipped
    assert file_date("orders-create/report.csv") is None
    with pytest.raises(ExportConfigError, match="names no prefix"):
        parse_prefixes(" , ")
    # outside a pipeline nothing is known of the destination: always the (safe) merge.
    # Another test in this worker may have left a pipeline active (dlt's global context).
    from dlt.common.configuration.container import Container
    from dlt.common.pipeline import PipelineContext

    Container()[PipelineContext].deactivate()
    assert write_disposition("orders_create", ["a.csv"])[0] == {"disposition": "merge", "strategy": "delete-insert"}


def test_builds_without_bucket_or_end_date_and_touches_no_storage():
    source = s3_exports(end_date=None)  # no bucket configured: building must not need it
    assert set(source.resources) == {"orders_create", "orders_update", "prospects_create"}
    source = s3_exports(end_date=D1, prefixes="a-b, ,c/d", bucket_url="s3://nowhere-at-all")
    assert set(source.resources) == {"a_b", "c_d"}
    with pytest.raises(Exception, match="backfill needs both"):
        s3_exports(end_date=D1, backfill=True)
    with pytest.raises(Exception, match=r"write_processes=0: set 1 or more.*SOURCES__S3_EXPORTS__WRITE_PROCESSES"):
        s3_exports(end_date=D1, write_processes=0)


def test_missing_bucket_url_fails_naming_the_setting(tmp_path):
    with pytest.raises(Exception, match="SOURCES__S3_EXPORTS__BUCKET_URL"):
        load("s3_exports", "orders_create", Window(end=D1), destination("duckdb", None, tmp_path))


@pytest.mark.parametrize("problem", ["missing bucket", "no credentials"])
def test_bucket_access_problems_name_the_config_keys(problem, s3, tmp_path, monkeypatch):
    kwargs = s3.source_kwargs("no-such-bucket" if problem == "missing bucket" else "exports-" + uuid.uuid4().hex[:8])
    if problem == "no credentials":
        s3.create_bucket(kwargs["bucket_url"].removeprefix("s3://"))
        del kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"]
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(Exception) as failure:
        load("s3_exports", "orders_create", Window(end=D1), destination("duckdb", None, tmp_path), **kwargs)
    message = str(failure.value)
    assert "Airflow" not in message and "sources.s3_exports.bucket_url" in message
    assert "sources.s3_exports.bucket_url: extra field 'bucket_url' of the Airflow connection 'signalroom_s3'" in (
        config_locations(message)
    )
    assert ("does not exist" if problem == "missing bucket" else "NoCredentialsError") in message


# ---------------------------------------------------------------- scheduled runs


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_scheduled_runs_read_each_file_once(kind, s3, bucket, request, tmp_path, dlt_data_dir, caplog):
    caplog.set_level(logging.INFO)
    dest = destination(kind, request, tmp_path)
    write_exports(tmp_path / "exports", [D1, D2, D3], ROWS, prefixes=("orders-create",))
    keys = s3.upload_folder(tmp_path / "exports", bucket)
    assert any(k.count("/") == 2 for k in keys) and any(k.count("/") == 1 for k in keys)  # one folder deeper too

    first = run(s3, bucket, dest, Window(end=D3))
    assert first["rows"] == {"orders_create": 3 * ROWS}
    assert files_read(s3, bucket) == set(keys)
    by_file = per_file(dest)
    assert {k: v[:4] for k, v in by_file.items()} == {k: (ROWS, 0, ROWS - 1, ROWS) for k in keys}
    assert {v[4] for v in by_file.values()} == {D1, D2, D3}  # _file_date from the name
    assert {v[5] for v in by_file.values()} == {"713"}

    types = column_types(dest, "s3_exports", "orders_create")
    assert len([c for c in types if not c.startswith("_")]) == len(header())
    assert {types[c] for c in ("orders_id", "order_date", "total_amount", "click_id", "retries_left", "c1")} == {"text"}
    assert (types["_row_id"], types["_file_date"], types["_file_name"]) == ("bigint", "date", "text")
    assert "_dlt_load_id" in types
    [(na, nulls, us_dates)] = query(
        dest,
        "SELECT sum(CASE WHEN decline_reason = 'N/A' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN fraud_date IS NULL THEN 1 ELSE 0 END), "
        "sum(CASE WHEN order_date LIKE '12/__/2025' THEN 1 ELSE 0 END) FROM s3_exports.orders_create",
    )
    assert na > 0 and nulls > 0 and us_dates == 3 * ROWS  # text kept verbatim, empty cells NULL
    [(quoted, broken)] = query(
        dest,
        "SELECT sum(CASE WHEN notes = 'Refund requested; \"damaged\" box' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN notes = 'Line one' || chr(13) || chr(10) || 'line two of a note' THEN 1 ELSE 0 END) "
        "FROM s3_exports.orders_create",
    )
    assert quoted > 0 and broken > 0  # quotes and line breaks inside values survive the load files
    # on Postgres the source writes the CSV load files and dlt's normalize only moves them (it
    # counts no rows); DuckDB gets Arrow tables, which dlt writes as parquet and counts
    import dlt

    trace = dlt.attach(PIPELINE, pipelines_dir=str(dlt_data_dir / "pipelines")).last_trace
    assert trace.last_normalize_info.row_counts["orders_create"] == (0 if kind == "postgres" else 3 * ROWS)

    s3.reset_reads()
    second = run(s3, bucket, dest, Window(end=D3))
    assert files_read(s3, bucket) == set() and second["rows"] == {}
    assert second["cursor_after"]["files"] == {"entries": 3}

    new = put_day(s3, bucket, tmp_path, D4)
    s3.reset_reads()
    assert run(s3, bucket, dest, Window(end=D3))["rows"] == {}  # dated after the window's end
    assert files_read(s3, bucket) == set()
    assert run(s3, bucket, dest, Window(end=D4))["rows"] == {"orders_create": ROWS}
    assert files_read(s3, bucket) == {new}
    assert {v[0] for v in per_file(dest).values()} == {ROWS} and len(per_file(dest)) == 4

    assert "files in 1 = loaded 1 + rejected 0; rows loaded 300" in caplog.text
    assert caplog.text.count("append: none of these files has rows in the destination yet") == 2
    assert SECRET_KEY not in caplog.text


def test_local_folder_is_the_same_code_path(tmp_path):
    dest = destination("duckdb", None, tmp_path)
    write_exports(tmp_path / "exports", [D1, D2], ROWS, empty_prefixes=("prospects-create",))
    url = (tmp_path / "exports").resolve().as_uri()
    window = Window(end=D2)
    for resource in ("orders_create", "orders_update"):
        summary = load("s3_exports", resource, window, dest, bucket_url=url)
        assert summary["rows"] == {resource: 2 * ROWS}
    empty = load("s3_exports", "prospects_create", window, dest, bucket_url=url)
    assert empty["rows"] == {}  # an empty prefix yields nothing, without error
    assert load("s3_exports", "orders_create", window, dest, bucket_url=url)["rows"] == {}
    assert {v[0] for v in per_file(dest, "orders_update").values()} == {ROWS}


# ---------------------------------------------------------------- reloads


def test_backfill_reloads_exactly_its_window_and_leaves_tracked_files_alone(s3, bucket, request, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    dest = destination("postgres", request, tmp_path)
    keys = {day: put_day(s3, bucket, tmp_path, day) for day in (D1, D2, D3)}
    run(s3, bucket, dest, Window(end=D3))
    state_before = tracked()
    load_ids_before = dict(query(dest, "SELECT _file_name, min(_dlt_load_id) FROM s3_exports.orders_create GROUP BY 1"))

    for _ in range(2):  # twice: the same rows as once
        s3.reset_reads()
        summary = run(s3, bucket, dest, Window(start=D2, end=D2, backfill=True))
        assert summary["rows"] == {"orders_create": ROWS}
        assert files_read(s3, bucket) == {keys[D2]}
        assert {k: v[:4] for k, v in per_file(dest).items()} == {k: (ROWS, 0, ROWS - 1, ROWS) for k in keys.values()}
        load_ids = dict(query(dest, "SELECT _file_name, min(_dlt_load_id) FROM s3_exports.orders_create GROUP BY 1"))
        assert load_ids[keys[D2]] == summary["load_ids"][0]  # replaced, not kept
        assert load_ids[keys[D1]] == load_ids_before[keys[D1]]
        assert tracked() == state_before
    assert caplog.text.count("delete-insert on _file_name: replace the rows of 1 file(s)") == 2

    # a backfill of a file the schedule has not seen yet: the schedule still reads it, one copy stays
    keys[D4] = put_day(s3, bucket, tmp_path, D4)
    run(s3, bucket, dest, Window(start=D4, end=D4, backfill=True))
    assert keys[D4] not in tracked()
    s3.reset_reads()
    run(s3, bucket, dest, Window(end=D4))
    assert files_read(s3, bucket) == {keys[D4]}
    assert {v[0] for v in per_file(dest).values()} == {ROWS} and len(per_file(dest)) == 4


def test_reupload_and_lost_state_leave_exactly_one_copy(s3, bucket, request, tmp_path, dlt_data_dir, caplog):
    caplog.set_level(logging.INFO)
    dest = destination("postgres", request, tmp_path)
    k1, k2 = put_day(s3, bucket, tmp_path, D1), put_day(s3, bucket, tmp_path, D2)
    run(s3, bucket, dest, Window(end=D2))

    put_day(s3, bucket, tmp_path, D1, rows=120, seed=7)  # re-upload: new size and time
    s3.reset_reads()
    assert run(s3, bucket, dest, Window(end=D2))["rows"] == {"orders_create": 120}
    assert files_read(s3, bucket) == {k1}
    assert {k: v[0] for k, v in per_file(dest).items()} == {k1: 120, k2: ROWS}

    # lost state: neither the working folder nor the destination remembers any file
    shutil.rmtree(dlt_data_dir / "pipelines" / PIPELINE)
    query(dest, "DELETE FROM s3_exports._dlt_pipeline_state")
    s3.reset_reads()
    assert run(s3, bucket, dest, Window(end=D2))["rows"] == {"orders_create": 120 + ROWS}
    assert files_read(s3, bucket) == {k1, k2}
    assert {k: v[:4] for k, v in per_file(dest).items()} == {k1: (120, 0, 119, 120), k2: (ROWS, 0, ROWS - 1, ROWS)}
    assert "replace the rows of 1 file(s)" in caplog.text and "replace the rows of 2 file(s)" in caplog.text


# ---------------------------------------------------------------- bad files


def test_empty_and_header_only_files_load_nothing_and_are_recorded(s3, bucket, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    dest = destination("duckdb", None, tmp_path)
    good = put_day(s3, bucket, tmp_path, D1)
    s3.put(bucket, "orders-create/report_2025-12-02T0301_empty.csv", b"")
    header_only = write_export(tmp_path / "h.csv", D3, 0)
    s3.put(bucket, "orders-create/report_2025-12-03T0301_head.csv", header_only.read_bytes())

    assert run(s3, bucket, dest, Window(end=D3))["rows"] == {"orders_create": ROWS}
    assert set(per_file(dest)) == {good}
    assert "files in 3 = loaded 1 + rejected 2" in caplog.text
    assert "report_2025-12-02T0301_empty.csv is empty or header-only" in caplog.text
    files = tracked()
    assert files["orders-create/report_2025-12-02T0301_empty.csv"]["status"] == "empty"
    assert files["orders-create/report_2025-12-03T0301_head.csv"]["rows"] == 0
    s3.reset_reads()
    run(s3, bucket, dest, Window(end=D3))
    assert files_read(s3, bucket) == set()


@pytest.mark.parametrize(
    "defect, line, reason",
    [
        (lambda lines: lines.__setitem__(4, lines[4] + b",extra"), 5, "expected 129 fields"),
        (lambda lines: lines.__setitem__(2, lines[2].replace(b"@example.com", b"@ex\xffample.com", 1)), 3,
         "not UTF-8"),
    ],
    ids=["ragged", "undecodable"],
)
def test_broken_file_fails_with_its_name_and_line_and_a_fixed_one_loads(
    defect, line, reason, s3, bucket, request, tmp_path
):
    dest = destination("postgres", request, tmp_path)
    k1 = put_day(s3, bucket, tmp_path, D1)
    run(s3, bucket, dest, Window(end=D1))
    k2 = put_day(s3, bucket, tmp_path, D2)

    lines = write_export(tmp_path / "bad.csv", D3, 50).read_bytes().split(b"\r\n")
    assert all(lines[i].count(b'"') % 2 == 0 for i in range(1, 6))  # whole records: lines = records
    defect(lines)
    k3 = f"orders-create/{export_name(D3, 'orders-create')}"
    s3.put(bucket, k3, b"\r\n".join(lines))

    with pytest.raises(Exception) as failure:
        run(s3, bucket, dest, Window(end=D3))
    message = str(failure.value)
    assert f"{k3}, line {line}" in message and reason in message and "rerun" in message
    assert {k: v[0] for k, v in per_file(dest).items()} == {k1: ROWS}  # nothing partial, nothing lost
    assert tracked().keys() == {k1}

    fixed = write_export(tmp_path / "fixed.csv", D3, 50)
    s3.put(bucket, k3, fixed.read_bytes())
    assert run(s3, bucket, dest, Window(end=D3))["rows"] == {"orders_create": ROWS + 50}
    assert {k: v[0] for k, v in per_file(dest).items()} == {k1: ROWS, k2: ROWS, k3: 50}


def test_exports_are_written_in_forked_processes_as_in_the_task_itself(s3, bucket, tmp_path):
    """On Postgres several exports are checked and written at once, each in a forked process with
    its own S3 client; the load files are byte for byte those the task's own process writes."""
    import os

    import psutil
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    from signalroom.sources.s3_exports.helpers import BucketConfig, list_exports
    from signalroom.sources.s3_exports.load_files import ExportLoadFiles

    for day in (D1, D2, D3):
        put_day(s3, bucket, tmp_path, day)
    config = BucketConfig(**s3.source_kwargs(bucket))
    items = list_exports(config.filesystem(), config.bucket_url, "orders-create")

    def written(processes: int) -> tuple[list[list[bytes]], int]:
        folder = tmp_path / f"written-{processes}"
        folder.mkdir()
        writer = ExportLoadFiles(str(folder), "1764558000.1", NamingConvention(), processes=processes)
        files, children = [], 0
        for item, export in writer.write_all(items, "713"):
            children = max(children, len(psutil.Process().children()))
            assert export.rows == ROWS and item in items
            files.append([open(f.path, "rb").read() for f in export.files])
        return files, children

    in_task, none = written(1)
    forked, children = written(2)
    assert forked == in_task and len(in_task) == 3 and all(f[0].count(b"\r\n") > ROWS for f in in_task)
    assert none == 0 and children == min(2, os.cpu_count() or 1)


def test_a_column_numeric_in_one_file_and_text_in_the_next_loads(s3, bucket, request, tmp_path):
    dest = destination("postgres", request, tmp_path)
    s3.put(bucket, "orders-update/report_2025-12-01T0301_a.csv", b"orders_id,amount,Click ID\r\n1,10,x1\r\n2,11,\r\n")
    s3.put(bucket, "orders-update/report_2025-12-02T0301_b.csv",
           b'orders_id,amount,Click ID\r\n3,N/A,x3\r\n4,"1,5",x4\r\n')
    assert run(s3, bucket, dest, Window(end=D1), resource="orders_update")["rows"] == {"orders_update": 2}
    assert run(s3, bucket, dest, Window(end=D2), resource="orders_update")["rows"] == {"orders_update": 2}
    rows = query(dest, "SELECT orders_id, amount, click_id FROM s3_exports.orders_update ORDER BY _file_name, _row_id")
    assert rows == [("1", "10", "x1"), ("2", "11", None), ("3", "N/A", "x3"), ("4", "1,5", "x4")]
    assert column_types(dest, "s3_exports", "orders_update")["amount"] == "text"


def test_schema_changes_are_in_the_summary_and_post_one_notice(s3, bucket, request, tmp_path, caplog, monkeypatch):
    """A new export column and one that disappeared from the header: the load summary lists
    what dlt applied (from its load info) and the missing column; the alert connection gets
    one notice (a notice: the load succeeded)."""
    import json

    from tools.standins.webhook import WebhookReceiver

    caplog.set_level(logging.INFO)
    dest = destination("postgres", request, tmp_path)
    s3.put(bucket, "orders-create/report_2025-12-01T0301_a.csv", b"orders_id,amount,Click ID\r\n1,10,x1\r\n")
    first = run(s3, bucket, dest, Window(end=D1))
    assert set(first["schema_changes"]) == {"new_tables"}  # the first load creates the table
    assert {"orders_id", "amount", "click_id"} <= set(first["schema_changes"]["new_tables"]["orders_create"])
    assert "schema_changes" not in run(s3, bucket, dest, Window(end=D1))  # nothing new: nothing listed

    s3.put(bucket, "orders-create/report_2025-12-02T0301_b.csv", b"orders_id,Click ID,Loyalty Tier\r\n2,x2,gold\r\n")
    caplog.clear()
    second = run(s3, bucket, dest, Window(end=D2))
    assert second["schema_changes"] == {"new_columns": {"orders_create": ["loyalty_tier"]}, "missing_columns": ["amount"]}
    assert ("column(s) amount missing from the header of orders-create/report_2025-12-02T0301_b.csv"
            in caplog.text)
    assert "schema: new column(s) in orders_create: loyalty_tier" in caplog.text  # the summary lines
    assert query(dest, "SELECT amount, loyalty_tier FROM s3_exports.orders_create WHERE orders_id = '2'") == [
        (None, "gold")]

    from signalroom.orchestration import alerts  # imports Airflow, which resets logging: after caplog

    with WebhookReceiver() as hook:
        monkeypatch.setenv("AIRFLOW_CONN_SIGNALROOM_SLACK", json.dumps(hook.connection()))
        context = {"run_id": "scheduled__2025-12-03T11:00:00+00:00", "dag": type("D", (), {"dag_id": "signalroom_s3_exports"})()}
        assert alerts.post_schema_notice(second, context)
        assert not alerts.post_schema_notice({**second, "schema_changes": {}}, context)
        (post,) = hook.wait_for(1)
        assert len(hook.posts) == 1
    text = post["text"]
    assert text.startswith(":large_blue_circle: *signalroom_s3_exports* schema change in `s3_exports__orders_create` "
                           "(notice: the load succeeded)")
    assert "- new column(s) in orders_create: loyalty_tier" in text
    assert "- column(s) missing from the export's header (kept in the table, loaded as NULL): amount" in text
    assert "runbook: docs/RUNBOOK.md#schema-changes" in text
