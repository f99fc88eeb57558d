"""Defaults of the s3_exports source, in one place so a real-bucket surprise is a one-line fix."""

from __future__ import annotations

# One top-level prefix per export kind; configurable as a comma-separated list, blanks ignored.
DEFAULT_PREFIXES = "orders-create,orders-update,prospects-create"

# Files below a prefix (at any depth) whose name ends with one of these are exports.
EXPORT_SUFFIXES = (".csv",)

# pyarrow parses each file in blocks of this many bytes. Measured (bench P7): 1 MiB blocks keep
# the peak flat from 100k to 1M rows; 8 MiB blocks grew it from 250 to 480 MB.
CSV_BLOCK_SIZE = 1024 * 1024
# Parsed blocks are yielded to dlt in Arrow tables of about this many rows: fewer, larger items
# cost dlt less per row, and a few MB of batches is all that is held.
ROWS_PER_TABLE = 10_000
# Postgres (any destination loading dlt `csv`): the source checks each export and writes it as
# load files of about this many rows, so several COPY jobs run at once (bench P2) ...
ROWS_PER_LOAD_FILE = 50_000
# ... reading it this many bytes at a time (what a writer holds: a few times this). Scale bench,
# 10 files, 200k rows, two writers: 4 MiB blocks peaked at 164 MB for the tree, 1 MiB at 108 MB,
# for the same CPU.
READ_BLOCK_SIZE = 1024 * 1024
# ... and this many exports at once, each in a forked process (never more than the CPUs; 1 = in
# the task's own process). Bench P2, 2 cores: extract ~0.6x as long, same CPU.
WRITE_PROCESSES = 2
# fsspec read-ahead per request (s3fs defaults to 50 MiB, which grew the peak with file size).
FS_BLOCK_SIZE = 8 * 1024 * 1024
# *Assumed*: a quoted value may hold a line break (free-text notes). Costs little, and an
# export with one would otherwise fail as "ragged".
NEWLINES_IN_VALUES = True
# Empty cells load as NULL; every other value (including "N/A") loads verbatim as text.
NULL_VALUES = ("",)
ENCODING = "utf-8"
# pyarrow's own threads for converting parsed blocks (its CPU pool).
CSV_USE_THREADS = True

# Each reloaded file replaces its own rows (the registry's contract: merge, delete-insert on
# `_file_name`). A run whose files have no rows in the destination yet appends instead (asked of the
# destination at extract, not of our state, which may be lost): bench P2, ~30% less time.
APPEND_WHEN_NEW = True

