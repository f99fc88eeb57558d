"""The load summary: what `pipeline.run_load` returns (the load task's XCom) and what the
checks, the task log and the CLI read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from signalroom.base.window import Window


@dataclass(frozen=True)
class LoadSummary:
    source: str
    resource: str
    pipeline: str
    dataset: str
    destination: str
    window: Window
    load_ids: tuple[str, ...] = ()
    rows: Mapping[str, int] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    cursor_before: Mapping[str, Any] = field(default_factory=dict)
    cursor_after: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    files: tuple[str, ...] = ()  # file-tracking resources (s3_exports): files this run loaded
    schema_changes: Mapping[str, Any] = field(default_factory=dict)  # base.schema_changes
    # what this try did with an earlier try's leftovers: {"finished": [load id], "dropped": {load id: why}}
    healed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def cursor_moved(self) -> bool:
        return dict(self.cursor_before) != dict(self.cursor_after)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "source": self.source,
            "resource": self.resource,
            "pipeline": self.pipeline,
            "dataset": self.dataset,
            "destination": self.destination,
            "window": self.window.to_dict(),
            "load_ids": list(self.load_ids),
            "rows": dict(self.rows),
            "timings": dict(self.timings),
            "cursor_before": dict(self.cursor_before),
            "cursor_after": dict(self.cursor_after),
            "seconds": self.seconds,
        }
        if self.files:
            data["files"] = list(self.files)
        if self.schema_changes:
            data["schema_changes"] = dict(self.schema_changes)
        data["healed"] = {"finished": list(self.healed.get("finished") or []),
                          "dropped": dict(self.healed.get("dropped") or {})}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadSummary:
        """Raises KeyError/TypeError/ValueError on a dict that is not a load summary."""
        return cls(
            source=str(data.get("source", "")),
            resource=str(data.get("resource", "")),
            pipeline=str(data["pipeline"]),
            dataset=str(data.get("dataset", "")),
            destination=str(data.get("destination", "")),
            window=Window.from_dict(data["window"]),
            load_ids=tuple(data.get("load_ids") or ()),
            rows=dict(data.get("rows") or {}),
            timings=dict(data.get("timings") or {}),
            cursor_before=dict(data.get("cursor_before") or {}),
            cursor_after=dict(data.get("cursor_after") or {}),
            seconds=data.get("seconds", 0.0),
            files=tuple(data.get("files") or ()),
            schema_changes=dict(data.get("schema_changes") or {}),
            healed=_healed(data.get("healed")),
        )


def _healed(value: Any) -> dict[str, Any]:
    """Healing that did nothing reads back as nothing (`to_dict` writes empty lists)."""
    value = dict(value or {})
    return value if value.get("finished") or value.get("dropped") else {}
