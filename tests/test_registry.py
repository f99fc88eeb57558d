from __future__ import annotations

from datetime import date

import pytest

from signalroom.registry import (
    REGISTRY,
    SOURCES,
    UnknownSourceError,
    get_spec,
    load_source_function,
    resource_contract,
)


def test_seed_shape():
    assert SOURCES == {name: spec.ref for name, spec in REGISTRY.items()}
    assert all(":" in ref for ref in SOURCES.values())


def test_unknown_source_lists_known():
    with pytest.raises(UnknownSourceError) as err:
        get_spec("nope")
    message = str(err.value)
    assert "unknown source 'nope'" in message
    for name in REGISTRY:
        assert name in message


def test_unknown_resource_lists_known():
    with pytest.raises(UnknownSourceError, match="known resources: daily_stats"):
        get_spec("everflow").resource("nope")


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_registered_resources_match_the_dlt_source(source):
    """The registry's static resource list (used at parse time) is what the source yields."""
    fn = load_source_function(source)
    dlt_source = fn(start_date=None, end_date=date(2025, 1, 2), backfill=False)
    assert set(dlt_source.resources) == set(get_spec(source).resource_names)


def _columns_with(table: dict, hint: str) -> tuple[str, ...]:
    return tuple(name for name, column in table["columns"].items() if column.get(hint))


@pytest.mark.parametrize("backfill", [False, True])
@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_registry_contract_is_dlt_schema_of_what_the_source_yields(source, backfill):
    """Table, primary key, write disposition, merge strategy and merge key of every resource,
    as dlt's own schema of the built source states them (not just the names)."""
    spec = get_spec(source)
    dlt_source = load_source_function(source)(
        start_date=date(2025, 1, 1) if backfill else None, end_date=date(2025, 1, 2), backfill=backfill
    )
    tables = {table["resource"]: table for table in dlt_source.discover_schema().data_tables()}
    assert set(tables) == set(spec.resource_names)
    for contract in spec.resources:
        table = tables[contract.name]
        assert table["name"] == contract.table, contract.name
        assert table["write_disposition"] == contract.write_disposition, contract.name
        assert table.get("x-merge-strategy") == contract.merge_strategy, contract.name
        assert _columns_with(table, "primary_key") == contract.primary_key, contract.name
        assert _columns_with(table, "merge_key") == contract.merge_key, contract.name
        for column in (contract.date_column, *contract.key):
            assert column in table["columns"], f"{contract.name}: {column} not declared"


def test_s3_exports_contract_replaces_rows_per_file():
    """What s3_exports actually does: delete-insert keyed on the file (no dlt primary key);
    rows are identified by (_file_name, _row_id) for the unique-key checks."""
    contract = get_spec("s3_exports").resource("orders_create")
    assert contract.dlt_write_disposition == {"disposition": "merge", "strategy": "delete-insert"}
    assert contract.merge_key == ("_file_name",) and contract.primary_key == ()
    assert contract.key == ("_file_name", "_row_id")
    # a prefix configured beyond the registered ones follows the same contract
    assert resource_contract("s3_exports", "refunds").merge_key == ("_file_name",)
