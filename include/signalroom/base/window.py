"""The ET business days one run loads: validated once, when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "America/New_York"


@dataclass(frozen=True)
class Window:
    """The ET business days a run loads.

    `start=None` means "from the resource's cursor, minus the source's look-back" (scheduled
    runs). `backfill=True` loads exactly [start, end] and leaves every cursor untouched.
    `intraday=True`: today's partial day (start = end = today), loaded like a backfill (exactly
    that day, merged on the keys, cursor untouched) so that the next daily run restates it.
    """

    end: date
    start: date | None = None
    backfill: bool = False
    intraday: bool = False

    def __post_init__(self) -> None:
        if self.start is not None and self.start > self.end:
            raise ValueError(f"window start {self.start} is after its end {self.end}")
        if self.backfill and self.start is None:
            raise ValueError("a backfill window needs a start date")
        if self.intraday and not (self.backfill and self.start == self.end):
            raise ValueError("an intraday window is one day, loaded without moving the cursor")

    @classmethod
    def today_partial(cls, day: date) -> Window:
        """The intraday window of ET day `day` (the day the run happens)."""
        return cls(start=day, end=day, backfill=True, intraday=True)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat(),
            "backfill": self.backfill,
        }
        if self.intraday:
            data["intraday"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        start = data.get("start")
        return cls(
            end=date.fromisoformat(str(data["end"])),
            start=date.fromisoformat(str(start)) if start else None,
            backfill=bool(data.get("backfill", False)),
            intraday=bool(data.get("intraday", False)),
        )

    def describe(self) -> str:
        if self.intraday:
            return f"intraday window {self.end.isoformat()} (today so far, ET; cursor untouched)"
        kind = "backfill" if self.backfill else "scheduled"
        start = self.start.isoformat() if self.start else "cursor - look-back"
        return f"{kind} window {start} .. {self.end.isoformat()} (ET days, inclusive)"


def last_finished_day(now: datetime | None = None, tz: str = DEFAULT_TIMEZONE) -> date:
    """The newest ET day that has ended at `now` (an aware datetime; default: the clock)."""
    now = now or datetime.now(ZoneInfo("UTC"))
    return now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
