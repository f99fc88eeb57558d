"""Exports -> dlt `csv` load files for a destination that COPYs them (Postgres).

Postgres parses CSV as fast as anything we could run in Python, so the export's bytes go
to it as they are: each record is checked (UTF-8, no NUL byte, as many fields as the header,
quotes closed) and gets the file columns put in front (`_file_name`, `_row_id`, `_file_date`,
`_client_id`, `_dlt_load_id`: what the Arrow path and dlt's normalize would add); the header
line is replaced by the warehouse's column names. dlt's normalize only moves the files and
its load step COPYs them (bench P2: parsing and re-writing every value in Python cost as much
as the COPY itself).

Records are found the way Postgres' CSV reader finds them: a line break ends a record when
the quotes before it are balanced (a quote toggles "inside a value", `""` toggles twice), so
what is checked here is exactly what Postgres will read. Empty lines are skipped, as on the
Arrow path.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from dataclasses import dataclass, field
from datetime import date
from itertools import compress, count, repeat
from operator import and_
from typing import Any, BinaryIO, Iterator, Sequence

from signalroom.sources.s3_exports import settings
from signalroom.sources.s3_exports.helpers import BadExportFileError, file_date, read_header
from signalroom.sources.s3_exports.parallel import in_forked_processes

# a quoted stretch; removed, the commas left are the field separators
_QUOTED = re.compile(rb'"[^"]*"')

# put before every record's own fields, in this order (names as the warehouse has them)
LEADING_COLUMNS = ("_file_name", "_row_id", "_file_date", "_client_id", "_dlt_load_id")


def csv_loads_supported() -> bool:
    """Whether the running pipeline's destination loads dlt `csv` files (Postgres: with COPY).

    Then the source writes the load files itself, in extract, and dlt's normalize only moves
    them; otherwise (DuckDB, no pipeline) it yields Arrow tables and dlt writes parquet."""
    from dlt.common.pipeline import current_pipeline

    pipeline = current_pipeline()
    destination = getattr(pipeline, "destination", None) if pipeline is not None else None
    if destination is None:
        return False
    return "csv" in (destination.capabilities().supported_loader_file_formats or ())


# ---------------------------------------------------------------- records


@dataclass
class _Block:
    """Whole records of one read, and where they started (only the error path needs lines)."""

    records: list[bytes]
    first_line: int  # physical line of records[0]
    skipped: list[int] = field(default_factory=list)  # record indexes an empty line came before


def export_records(
    raw: BinaryIO, file_name: str, width: int, crlf: bool, block_size: int = settings.READ_BLOCK_SIZE
) -> Iterator[list[bytes]]:
    """The records after the header line, a block at a time, each checked (raises
    `BadExportFileError` naming the line). `raw` is positioned after the header. Records keep
    their line's end without the `\n`: each ends with `\r` when `crlf` (the header's style;
    Postgres wants one style per file), with none otherwise.

    Per block, the work is done by C loops (split, count, join, one regex); Python touches
    only records whose quoted value holds a line break.
    """
    rest = b""
    line_no = 2  # of the block's first line
    while True:
        chunk = raw.read(block_size)
        data = rest + chunk if rest else chunk
        if chunk:
            cut = data.rfind(b"\n") + 1
            if not cut:  # no line end in this read yet
                rest = data
                continue
            data, rest = data[:cut], data[cut:]
            lines = data.split(b"\n")
            lines.pop()
        elif data:  # the last line has no line end
            lines, rest = [data], b""
        else:
            break
        _check_bytes(data, file_name, line_no)
        # lines with an odd number of quotes open or close a value holding a line break
        odd = list(compress(count(), map(and_, map(bytes.count, lines, repeat(b'"')), repeat(1))))
        if len(odd) % 2:  # the last such value goes on past this read
            k = odd.pop()
            if not chunk:
                raise BadExportFileError(file_name, line_no + k, "a quoted value starting on this line is never closed")
            rest = b"\n".join(lines[k:]) + b"\n" + rest
            del lines[k:]
        block = _Block(_join_quoted_breaks(lines, odd), line_no)
        line_no += len(lines)
        _normalize(block, crlf)
        if block.records:
            _check_fields(block, file_name, width, crlf)
            yield block.records
        if not chunk:
            break


def _join_quoted_breaks(lines: list[bytes], odd: list[int]) -> list[bytes]:
    """Lines -> records: the lines from an odd-quoted line to the next one are one record."""
    if not odd:
        return lines
    records: list[bytes] = []
    start = 0
    for first, last in zip(odd[::2], odd[1::2], strict=True):
        records.extend(lines[start:first])
        records.append(b"\n".join(lines[first : last + 1]))
        start = last + 1
    records.extend(lines[start:])
    return records


def _normalize(block: _Block, crlf: bool) -> None:
    """Drop empty lines (the Arrow path skips them too) and give every record the file's line end."""
    records = block.records
    if b"" in records or b"\r" in records:
        block.skipped = [k - n for n, k in enumerate(k for k, r in enumerate(records) if r in (b"", b"\r"))]
        records = [r for r in records if r not in (b"", b"\r")]
    if sum(map(bytes.endswith, records, repeat(b"\r"))) != (len(records) if crlf else 0):  # mixed line ends
        if crlf:
            records = [r if r.endswith(b"\r") else r + b"\r" for r in records]
        else:
            records = [r[:-1] if r.endswith(b"\r") else r for r in records]
    block.records = records


def _check_bytes(data: bytes, file_name: str, first_line: int) -> None:
    """UTF-8 and no NUL byte (Postgres refuses both; the Arrow path refuses the first)."""
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line_start = data.rfind(b"\n", 0, exc.start) + 1
            raise BadExportFileError.not_utf8(
                file_name,
                first_line + data.count(b"\n", 0, exc.start),
                data[exc.start : exc.start + 1],
                exc.start - line_start + 1,
            ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BadExportFileError(file_name, first_line + data.count(b"\n", 0, nul), "contains a NUL byte")


def _check_fields(block: _Block, file_name: str, width: int, crlf: bool) -> None:
    """Every record has `width` fields and no carriage return outside quotes but its line end
    (in C: quoted stretches removed from all records at once leave one line per record)."""
    bare = _QUOTED.sub(b"", b"\n".join(block.records))
    lines = bare.split(b"\n")
    line_ends = len(lines) if crlf else 0
    if set(map(bytes.count, lines, repeat(b","))) == {width - 1} and bare.count(b"\r") == line_ends:
        return
    for k, line in enumerate(lines):  # error path: which record, on which line
        found = line.count(b",") + 1
        if found != width or b"\r" in (line[:-1] if crlf else line):
            record_line = (
                block.first_line
                + k
                + sum(r.count(b"\n") for r in block.records[:k])
                + sum(1 for s in block.skipped if s <= k)
            )
            if found != width:
                raise BadExportFileError.wrong_width(file_name, record_line, width, found)
            raise BadExportFileError(
                file_name, record_line, "a carriage return outside quotes (records must end with CRLF or LF)"
            )


# ---------------------------------------------------------------- load files


def _csv_value(value: str) -> bytes:
    raw = value.encode("utf-8")
    if any(c in raw for c in (b",", b'"', b"\n", b"\r")) or not raw:
        return b'"' + raw.replace(b'"', b'""') + b'"'
    return raw


def _with_own_client(item: Any) -> Any:
    """The export with a client of its own: a forked child must not use its parent's (s3fs
    refuses it, "not fork-safe"); fsspec makes a new one for the same options in a new process."""
    fs = item.fsspec
    return type(item)(item, type(fs)(*fs.storage_args, **fs.storage_options))


@dataclass(frozen=True)
class LoadFile:
    path: str
    rows: int


@dataclass
class ExportLoad:
    """One export as load files: its header as read, the warehouse columns, the files."""

    header: list[str]
    columns: dict[str, dict[str, Any]]
    files: list[LoadFile]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


class ExportLoadFiles:
    """Writes each export as load files of about `rows_per_file` rows (so several COPY jobs
    run at once) into `folder`, for dlt to import as they are."""

    def __init__(
        self,
        folder: str,
        load_id: str,
        naming: Any,
        rows_per_file: int = settings.ROWS_PER_LOAD_FILE,
        processes: int | None = None,
    ) -> None:
        self.folder = folder
        self.load_id = load_id
        self.naming = naming
        self.rows_per_file = rows_per_file
        self.processes = settings.WRITE_PROCESSES if processes is None else int(processes)

    def _columns(self, names: list[str], file_name: str) -> dict[str, dict[str, Any]]:
        """Warehouse column -> dlt column schema, the export's columns (text) then the file's."""
        normalized = [self.naming.normalize_identifier(name) for name in names]
        taken: dict[str, str] = {}
        for name, column in zip(names, normalized, strict=True):
            clash = taken.get(column) or (column if column in LEADING_COLUMNS else None)
            if clash:
                raise BadExportFileError(
                    file_name, 1, f"header column {name!r} becomes {column!r} in the warehouse, "
                    f"like {clash!r}: rename one of them in the export"
                )
            taken[column] = name
        columns = {c: {"name": c, "data_type": "text", "nullable": True} for c in normalized}
        columns["_dlt_load_id"] = {"name": "_dlt_load_id", "data_type": "text", "nullable": False}
        return columns

    def write_all(self, items: Sequence[Any], client_id: str) -> Iterator[tuple[Any, ExportLoad]]:
        """(item, `write(item)`) for each export, in order; up to `processes` exports at once,
        in forked processes (`parallel.py`: why)."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        processes = min(self.processes, len(items), cpus)
        if processes < 2 or not hasattr(os, "fork"):
            for n, item in enumerate(items):
                yield item, self.write(item, client_id, n)
            return

        def write_in_child(n: int) -> ExportLoad:
            return self.write(_with_own_client(items[n]), client_id, n)

        with contextlib.closing(in_forked_processes(write_in_child, range(len(items)), processes)) as exports:
            for item, export in zip(items, exports, strict=True):
                yield item, export

    def write(self, item: Any, client_id: str, file_no: int = 0) -> ExportLoad:
        """Check and write one export (`file_no` names its load files); nothing for an empty or
        header-only file.

        The file columns go first in each line, so the export's own line ends stay as they are."""
        file_name = item["relative_path"]
        day: date | None = file_date(file_name)
        with item.open("rb", block_size=settings.FS_BLOCK_SIZE) as raw:
            header_read = read_header(raw, file_name)
            if header_read is None:
                return ExportLoad([], {}, [])
            names, crlf = header_read
            columns = self._columns(names, file_name)
            export_columns = [c for c in columns if c != "_dlt_load_id"]
            header = ",".join([*LEADING_COLUMNS, *export_columns]).encode() + (b"\r\n" if crlf else b"\n")
            before = _csv_value(file_name) + b","
            after = b"".join(
                [b",", day.isoformat().encode() if day else b"", b",", _csv_value(client_id), b",",
                 _csv_value(self.load_id), b","]
            )
            files: list[LoadFile] = []
            out, path, rows, row_id = None, "", 0, 0
            try:
                for records in export_records(raw, file_name, len(names), crlf):
                    if out is None:
                        path = os.path.join(self.folder, f"part.{file_no}.{len(files)}.csv")
                        out, rows = open(path, "wb"), 0
                        out.write(header)
                    n = len(records)
                    prefixes = [b"%b%d%b" % (before, i, after) for i in range(row_id, row_id + n)]
                    out.write(b"".join(itertools.chain.from_iterable(zip(prefixes, records, repeat(b"\n")))))
                    rows, row_id = rows + n, row_id + n
                    if rows >= self.rows_per_file:
                        out.close()
                        files.append(LoadFile(path, rows))
                        out = None
            finally:
                if out is not None:
                    out.close()
                    if rows:
                        files.append(LoadFile(path, rows))
        return ExportLoad(names, columns, files)

    @staticmethod
    def item(load_file: LoadFile, hints: Any) -> Any:
        """The dlt item importing `load_file` as it is; `hints` (columns, write disposition) go with it."""
        import dlt

        return dlt.mark.with_file_import(load_file.path, "csv", load_file.rows, hints=hints)

    def remove_written(self) -> None:
        """Delete the source's copies and folder (dlt hard-links or copies each file into its package)."""
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)
