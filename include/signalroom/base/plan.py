"""The run plan: what the `plan` task resolved and every later reader (load tasks, alerts,
logs) takes from XCom instead of re-reading the trigger form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from signalroom.base.window import Window


@dataclass(frozen=True)
class RunPlan:
    window: Window
    resources: tuple[str, ...]
    dry_run: bool = False
    run_type: str = "manual"

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.to_dict(),
            "resources": list(self.resources),
            "dry_run": self.dry_run,
            "run_type": self.run_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunPlan:
        return cls(
            window=Window.from_dict(data["window"]),
            resources=tuple(data["resources"]),
            dry_run=bool(data.get("dry_run", False)),
            run_type=str(data.get("run_type", "manual")),
        )
