"""Defaults of the s3_exports source, in one place so a real-bucket surprise is a one-line fix."""

from __future__ import annotations

# One top-level prefix per export kind; configurable as a comma-separated list, blanks ignored.
DEFAULT_PREFIXES = "orders-create,orders-update,prospects-create"
DEFAULT_CLIENT_ID = "713"

# Files below a prefix (at any depth) whose name ends with one of these are exports.
EXPORT_SUFFIXES = (".csv",)

# pyarrow reads each file in blocks of this many bytes: one yielded Arrow table per block,
# so memory stays bounded by the block (and dlt's buffer), not by the file.
CSV_BLOCK_SIZE = 8 * 1024 * 1024
# *Assumed*: a quoted value may hold a line break (free-text notes). Costs little, and an
# export with one would otherwise fail as "ragged".
NEWLINES_IN_VALUES = True
# Empty cells load as NULL; every other value (including "N/A") loads verbatim as text.
NULL_VALUES = ("",)
ENCODING = "utf-8"

# Each reloaded file replaces its own rows: merge with delete-insert keyed on the file.
WRITE_DISPOSITION = {"disposition": "merge", "strategy": "delete-insert"}
MERGE_KEY = "_file_name"

