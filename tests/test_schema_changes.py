"""What a load changed in the schema, from dlt's per-package schema updates (pure rules; the
real dlt load info is exercised in tests/sources/test_s3_exports.py)."""

from __future__ import annotations

from signalroom.base.schema_changes import describe, schema_changes
from signalroom.base.summary import LoadSummary
from signalroom.base.window import Window
from signalroom.logs import summary_lines

KNOWN = {"orders": ["id", "amount", "_dlt_id"], "_dlt_loads": ["load_id"]}


def test_new_tables_new_columns_variants_and_missing_header_columns():
    updates = [
        {"orders": {"columns": {"loyalty_tier": {}, "amount__v_text": {}, "_dlt_extra": {}}},
         "_dlt_pipeline_state": {"columns": {"x": {}}}},
        {"refunds": {"columns": {"id": {}, "orders_id": {}}}},
    ]
    changes = schema_changes(KNOWN, updates, ["id", "amount", "Channel"], ["id", "amount"])
    assert changes == {
        "new_tables": {"refunds": ["id", "orders_id"]},
        "new_columns": {"orders": ["loyalty_tier"]},
        "changed_columns": {"orders": ["amount (now also amount__v_text)"]},
        "missing_columns": ["Channel"],
    }
    assert describe(changes) == [
        "new table refunds (2 columns)",
        "new column(s) in orders: loyalty_tier",
        "changed type in orders: amount (now also amount__v_text)",
        "column(s) missing from the export's header (kept in the table, loaded as NULL): Channel",
    ]


def test_nothing_new_is_nothing_and_no_header_yet_is_no_missing_column():
    assert schema_changes(KNOWN, [{"orders": {"columns": {"id": {}}}}], None, ["id"]) == {}
    assert schema_changes(KNOWN, [], ["id"], None) == {}  # no file read this run: nothing compared


def test_summary_carries_and_logs_them():
    summary = LoadSummary(source="s", resource="r", pipeline="s__r", dataset="s", destination="d",
                          window=Window(end=Window.from_dict({"end": "2025-01-02"}).end),
                          schema_changes={"new_columns": {"orders": ["loyalty_tier"]}})
    assert LoadSummary.from_dict(summary.to_dict()) == summary
    assert "summary s__r: schema: new column(s) in orders: loyalty_tier" in summary_lines(summary)
    plain = LoadSummary.from_dict({**summary.to_dict(), "schema_changes": {}})
    assert "schema_changes" not in plain.to_dict()
    assert not [line for line in summary_lines(plain) if "schema:" in line]
