"""Readable summaries of dlt resource state (incremental cursors and custom state).

Pure functions over the decoded state dict, shared by the load task's log line, the CLI
and the plugin, so every view of a cursor says the same thing.
"""

from __future__ import annotations

from typing import Any, Mapping


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def cursor_summary(resource_state: Mapping[str, Any]) -> dict[str, Any]:
    """`{"incremental.<cursor>": {...values}, "<key>": <size or value>}` for one resource."""
    summary: dict[str, Any] = {}
    for key, value in resource_state.items():
        if key == "incremental" and isinstance(value, Mapping):
            for cursor, inc in value.items():
                summary[f"incremental.{cursor}"] = {
                    "initial_value": _scalar(inc.get("initial_value")),
                    "start_value": _scalar(inc.get("start_value")),
                    "last_value": _scalar(inc.get("last_value")),
                    "unique_hashes": len(inc.get("unique_hashes") or ()),
                }
        elif isinstance(value, (Mapping, list, tuple, set)):
            summary[key] = {"entries": len(value)}
        else:
            summary[key] = _scalar(value)
    return summary
