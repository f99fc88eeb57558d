"""s3_exports on Postgres: the exports go to COPY as they are, with the file columns put in
front of each record (sources/s3_exports/load_files.py). Real dlt, real Postgres, a file://
bucket; the DuckDB destination (Arrow path, pyarrow parses every value) is the reference the
Postgres rows must equal, value for value and NULL for NULL."""

from __future__ import annotations

from datetime import date

import pytest

from signalroom.pipeline import Window
from signalroom.registry import DEFAULT_CLIENT_ID
from signalroom.sources.s3_exports import settings
from tests.support.api import destination, load, query

DAY = date(2025, 12, 1)
KEY = "orders-create/report_2025-12-01T0301_x.csv"

# what a CRM export may hold: BOM, CRLF, quoted commas, doubled quotes, a line break (CRLF and LF)
# inside a value, an empty quoted value, N/A, non-ASCII text, an empty line, no final line end
TRICKY = (
    "\ufefforders_id,Customer Name,Notes,amount\r\n"
    '1,"Doe, Jane","said ""hi""",10.5\r\n'
    '2,Zoë Ünïcode,"line one\r\nline two",\r\n'
    '3,"",N/A,"1,5"\r\n'
    "\r\n"
    '4,plain,"a\nb\nc",7\r\n'
    '5,last,"no line end after me",8'
).encode("utf-8")

SELECT = "SELECT orders_id, customer_name, notes, amount, _row_id, _file_name, _file_date, _client_id FROM s3_exports.orders_create ORDER BY _row_id"


def _load(tmp_path, kind, request, content: bytes, name: str = KEY):
    folder = tmp_path / f"bucket-{kind}"
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    dest = destination(kind, request if kind == "postgres" else None, tmp_path / kind)
    summary = load("s3_exports", "orders_create", Window(end=DAY), dest, bucket_url=folder.resolve().as_uri())
    return dest, summary


@pytest.mark.parametrize("block_size", [settings.READ_BLOCK_SIZE, 7], ids=["one read", "7-byte reads"])
def test_postgres_rows_equal_the_arrow_paths_value_for_value(block_size, tmp_path, request, dlt_data_dir, monkeypatch):
    """7-byte reads cut records, quoted line breaks and multi-byte characters at every place."""
    monkeypatch.setattr(settings, "READ_BLOCK_SIZE", block_size)
    pg, pg_summary = _load(tmp_path, "postgres", request, TRICKY)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "duckdb-worker"))  # its own working folder
    duck, _ = _load(tmp_path, "duckdb", request, TRICKY)
    rows = query(pg, SELECT)
    assert pg_summary["rows"] == {"orders_create": 5}
    assert [tuple(r) for r in rows] == [tuple(r) for r in query(duck, SELECT)]
    assert rows[0][:4] == ("1", "Doe, Jane", 'said "hi"', "10.5")
    assert rows[1][1:4] == ("Zoë Ünïcode", "line one\r\nline two", None)  # empty cell: NULL
    assert rows[2][1:4] == (None, "N/A", "1,5")  # empty quoted value: NULL, as on the Arrow path
    assert rows[3][2] == "a\nb\nc"
    assert [r[4] for r in rows] == [0, 1, 2, 3, 4]
    assert {(r[5], r[6], r[7]) for r in rows} == {(KEY, DAY, DEFAULT_CLIENT_ID)}


def test_mixed_line_ends_and_lf_files_load(tmp_path, request, dlt_data_dir):
    mixed = b"orders_id,Customer Name,Notes,amount\r\n1,a,b,1\n2,c,d,2\r\n3,e,f,3\n"
    pg, summary = _load(tmp_path, "postgres", request, mixed)
    assert summary["rows"] == {"orders_create": 3}
    assert query(pg, "SELECT orders_id, amount FROM s3_exports.orders_create ORDER BY _row_id") == [
        ("1", "1"), ("2", "2"), ("3", "3")
    ]


@pytest.mark.parametrize(
    "content, line, reason",
    [
        (b'id,b\r\n1,x\r\n2,"never closed\r\n3,y\r\n', 3, "never closed"),
        (b"id,b\r\n1,x\r\n2,y,z\r\n", 3, "expected 2 fields as in the header, found 3"),
        (b"id,b\r\n1,x\r\n\r\n2\r\n", 4, "expected 2 fields as in the header, found 1"),
        (b'id,b\r\n1,"a\nb"\r\n2,x\ry\r\n', 4, "carriage return outside quotes"),
        (b"id,b\r\n1,x\r\n2,\x00\r\n", 3, "NUL byte"),
        (b"id,b\r\n1,x\r\n2,caf\xe9\r\n", 3, "not UTF-8 (byte b'\\xe9' at column 6)"),
        (b"Order ID,order_id\r\n1,2\r\n", 1, "becomes 'order_id' in the warehouse"),
        (b"id,_file_name\r\n1,2\r\n", 1, "becomes '_file_name'"),
    ],
    ids=["open quote", "extra field", "missing field after empty line", "bare CR", "NUL", "latin-1", "name clash",
         "file column"],
)
def test_a_bad_export_names_its_line_and_nothing_loads(content, line, reason, tmp_path, request, dlt_data_dir,
                                                       monkeypatch):
    monkeypatch.setattr(settings, "READ_BLOCK_SIZE", 5)  # the line must be right across reads too
    with pytest.raises(Exception) as failure:
        _load(tmp_path, "postgres", request, content)
    message = str(failure.value)
    assert f"{KEY}, line {line}" in message and reason in message, message


def test_a_big_export_is_split_into_load_files_with_running_row_ids(tmp_path, request, dlt_data_dir, monkeypatch):
    monkeypatch.setattr(settings, "ROWS_PER_LOAD_FILE", 3)
    monkeypatch.setattr(settings, "READ_BLOCK_SIZE", 16)
    body = b"".join(b"%d,name %d\r\n" % (i, i) for i in range(10))
    pg, summary = _load(tmp_path, "postgres", request, b"id,name\r\n" + body)
    assert summary["rows"] == {"orders_create": 10}
    rows = query(pg, "SELECT id, _row_id FROM s3_exports.orders_create ORDER BY _row_id")
    assert rows == [(str(i), i) for i in range(10)]
