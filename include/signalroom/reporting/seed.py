"""The affiliate mapping seed: a CSV kept in the repository, shaped like the business's file.

The file as the business writes it: UTF-8 with a byte-order mark, CRLF line ends, `n/a` for a
missing value, dotted header names (`redtrack.source_id`), labels that may carry trailing
spaces. Read here into typed rows; every problem is reported with the file, the line and the
fix before anything is written to the warehouse. Labels are kept as written: the view trims
them when it joins (so the table shows what the file says).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

SEEDS_DIR = Path(__file__).resolve().parent / "seeds"
MISSING = "n/a"

# header as written -> table column (the dots become underscores, as dlt would name them)
COLUMNS: dict[str, str] = {
    "redtrack.source": "redtrack_source",
    "redtrack.source_alias": "redtrack_source_alias",
    "redtrack.source_id": "redtrack_source_id",
    "everflow.affiliate_id": "everflow_affiliate_id",
    "everflow.affiliate_label": "everflow_affiliate_label",
    "everflow.advertiser_id": "everflow_advertiser_id",
    "everflow.advertiser_label": "everflow_advertiser_label",
}
INTEGER_COLUMNS = ("everflow_affiliate_id", "everflow_advertiser_id")


class SeedError(ValueError):
    """A mapping file that cannot be loaded as it is; the message names the line and the fix."""


@dataclass(frozen=True)
class MappingSeed:
    path: Path
    rows: tuple[tuple[object, ...], ...]  # in `columns` order; None for `n/a`

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(COLUMNS.values())


def seed_path(name: str) -> Path:
    return SEEDS_DIR / name


def _value(raw: str, column: str, where: str) -> object:
    if raw.strip().lower() in (MISSING, ""):
        return None
    if column in INTEGER_COLUMNS:
        try:
            return int(raw.strip())
        except ValueError:
            raise SeedError(
                f"{where}: {column.replace('_', '.', 1)} is {raw!r}, not a whole number; write the "
                f"Everflow id or {MISSING!r}"
            ) from None
    return raw  # labels and names as written (trailing spaces included)


def parse_mapping(text: str, path: Path) -> MappingSeed:
    """Rows of a mapping file's text (BOM already decoded away by `read_mapping`)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise SeedError(f"{path}: the file is empty; it needs the header {', '.join(COLUMNS)}") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise SeedError(
            f"{path}: header lacks {', '.join(missing)} (found: {', '.join(header)}); "
            f"the columns are {', '.join(COLUMNS)}"
        )
    index = {c: header.index(c) for c in COLUMNS}
    rows, seen = [], {}
    for line, record in enumerate(reader, start=2):
        if not any(v.strip() for v in record):
            continue  # a blank line (e.g. the file's last CRLF twice)
        where = f"{path} line {line}"
        if len(record) != len(header):
            raise SeedError(f"{where}: {len(record)} fields, the header has {len(header)}; "
                            "quote a value that contains a comma")
        row = tuple(_value(record[index[c]], col, where) for c, col in COLUMNS.items())
        source_id = row[2]
        if source_id is not None:
            if source_id in seen:
                raise SeedError(
                    f"{where}: redtrack.source_id {source_id!r} is already mapped on line "
                    f"{seen[source_id]}; a source maps to one affiliate (its spend would count twice)"
                )
            seen[source_id] = line
        if row[4] is None:
            raise SeedError(f"{where}: everflow.affiliate_label is missing; the view joins on it")
        rows.append(row)
    return MappingSeed(path, tuple(rows))


def read_mapping(name: str) -> MappingSeed:
    """The named seed file, validated."""
    path = seed_path(name)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # the BOM is optional, never a header char
    except FileNotFoundError:
        raise SeedError(f"mapping seed {path} not found (registry ModelSpec.seed)") from None
    except UnicodeDecodeError as exc:
        raise SeedError(f"{path}: not UTF-8 ({exc}); save it as UTF-8") from None
    return parse_mapping(text, path)
