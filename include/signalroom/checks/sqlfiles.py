"""Reads the check SQL files (`sql/<check>.sql`) and renders them for one run.

A file starts with comment lines saying what the check guards and how it stays cheap, then
named sections, each opened by a line `-- [name]` (optionally `-- [name] expected: ...`,
the sentence logged as the expected result). Placeholders are `${name}` (string.Template):
identifiers arrive validated and quoted by the dialect, values validated and quoted as
literals (`scope.py`); a missing placeholder is an error, never an empty splice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Mapping

SQL_DIR = Path(__file__).parent / "sql"
_SECTION = re.compile(r"^-- \[(?P<name>[a-z_]+)\](?: expected: (?P<expected>.*))?$")


@dataclass(frozen=True)
class CheckSql:
    name: str
    description: str
    sections: Mapping[str, str]
    expected: str

    def section(self, name: str) -> str:
        try:
            return self.sections[name]
        except KeyError:
            raise KeyError(f"sql/{self.name}.sql has no '-- [{name}]' section") from None


@cache
def load(name: str) -> CheckSql:
    text = (SQL_DIR / f"{name}.sql").read_text()
    description: list[str] = []
    sections: dict[str, list[str]] = {}
    expected = ""
    current: list[str] | None = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            current = sections.setdefault(match["name"], [])
            expected = expected or (match["expected"] or "")
        elif current is None:
            description.append(line.removeprefix("--").strip())
        else:
            current.append(line)
    return CheckSql(
        name=name,
        description=" ".join(d for d in description if d),
        sections={k: "\n".join(v).strip() for k, v in sections.items()},
        expected=expected.strip(),
    )


def render(text: str, values: Mapping[str, object]) -> str:
    return Template(text).substitute(values)
