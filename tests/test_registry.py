from __future__ import annotations

import pytest

from signalroom.registry import REGISTRY, SOURCES, UnknownSourceError, get_spec, load_source_function


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
    from datetime import date

    dlt_source = fn(start_date=None, end_date=date(2025, 1, 2), backfill=False)
    assert set(dlt_source.resources) == set(get_spec(source).resource_names)
