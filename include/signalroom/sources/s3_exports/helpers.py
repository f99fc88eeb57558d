"""Listing, selecting and reading export files through dlt's filesystem layer (fsspec).

`s3://bucket` (production, moto in tests) and `file:///folder` (demo) go through the same
calls here; nothing below knows which one it talks to.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, BinaryIO, Iterable, Iterator, Mapping, NamedTuple, Sequence

from signalroom.registry import resource_contract
from signalroom.sources.s3_exports import settings

_DATE_IN_PATH = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


class ExportConfigError(ValueError):
    """The source is misconfigured (bucket, prefixes, window): fix the setting named."""


class BadExportFileError(ValueError):
    """An export file that cannot be read as the CSV it should be (ragged, not UTF-8, bad header)."""

    def __init__(self, file_name: str, line: int | None, reason: str) -> None:
        where = f"{file_name}, line {line}" if line else file_name
        super().__init__(
            f"bad export file {where}: {reason}. Nothing of this resource was loaded in this run; "
            "fix or replace the file in the bucket (a re-upload is picked up by its new size/time), "
            "then rerun."
        )
        self.file_name = file_name
        self.line = line
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a writer process, re-raised in the task's
        return type(self), (self.file_name, self.line, self.reason)

    @classmethod
    def not_utf8(cls, file_name: str, line: int, byte: bytes, column: int) -> "BadExportFileError":
        return cls(file_name, line, f"not UTF-8 (byte {byte!r} at column {column})")

    @classmethod
    def wrong_width(cls, file_name: str, line: int, width: int, found: int) -> "BadExportFileError":
        return cls(file_name, line, f"expected {width} fields as in the header, found {found}")


# ---------------------------------------------------------------- configuration


def parse_prefixes(prefixes: str | Sequence[str] | None) -> list[str]:
    """`"a, b,,c/"` -> `["a", "b", "c"]`: comma-separated, blanks and edge slashes ignored."""
    if prefixes is None:
        prefixes = settings.DEFAULT_PREFIXES
    items = prefixes.split(",") if isinstance(prefixes, str) else list(prefixes)
    cleaned = [str(p).strip().strip("/") for p in items]
    result = list(dict.fromkeys(p for p in cleaned if p))
    if not result:
        raise ExportConfigError(
            f"prefixes={prefixes!r} names no prefix: set a comma-separated list such as "
            f"{settings.DEFAULT_PREFIXES!r} (SOURCES__S3_EXPORTS__PREFIXES)"
        )
    return result


def resource_name(prefix: str) -> str:
    """`orders-create` -> `orders_create` (also the table name)."""
    return re.sub(r"[-/]", "_", prefix)


def file_date(path: str) -> date | None:
    """The first valid YYYY-MM-DD in a path (folder or file name), else None."""
    for match in _DATE_IN_PATH.finditer(path):
        try:
            return date(*(int(g) for g in match.groups()))
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class BucketConfig:
    """Where the exports live and how to authenticate; secrets never appear in `repr`."""

    bucket_url: str
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    endpoint_url: str | None = None
    region_name: str | None = None

    def __repr__(self) -> str:
        return f"BucketConfig(bucket_url={self.bucket_url!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def protocol(self) -> str:
        return self.bucket_url.split("://", 1)[0] if "://" in self.bucket_url else "file"

    def filesystem(self) -> Any:
        """An authenticated fsspec filesystem from dlt's own factory (same for s3:// and file://)."""
        # dlt's filesystem helpers pull in fsspec/s3fs: only when a bucket is opened
        from dlt.common.configuration.specs import AwsCredentialsWithoutDefaults
        from dlt.common.storages.fsspec_filesystem import fsspec_filesystem

        credentials = None
        if self.protocol in ("s3", "s3a"):
            # keys left None fall through to boto's default chain (instance role, env, profile)
            credentials = AwsCredentialsWithoutDefaults(
                aws_access_key_id=self.aws_access_key_id,
                aws_secret_access_key=self.aws_secret_access_key,
                endpoint_url=self.endpoint_url,
                region_name=self.region_name,
            )
        return fsspec_filesystem(self.bucket_url, credentials)[0]


def check_bucket_url(bucket_url: str | None) -> str:
    if not bucket_url or not str(bucket_url).strip():
        raise ExportConfigError(
            "s3_exports has no bucket_url: set the config key sources.s3_exports.bucket_url "
            "(SOURCES__S3_EXPORTS__BUCKET_URL) to s3://<bucket> or file:///<absolute folder>"
        )
    url = str(bucket_url).strip().rstrip("/")
    if "://" not in url:
        raise ExportConfigError(
            f"bucket_url={url!r} has no scheme: use s3://<bucket>[/<path>] or file:///<absolute folder>"
        )
    return url


# ---------------------------------------------------------------- listing and selection


def list_exports(fs: Any, bucket_url: str, prefix: str) -> list[Any]:
    """Export files under `prefix` (any depth), as dlt `FileItemDict`s sorted by path.

    A missing or empty prefix gives an empty list (S3 has no real folders).
    """
    from dlt.common.storages.fsspec_filesystem import FileItemDict, glob_files  # fsspec: only when listing

    items = []
    for file_item in glob_files(fs, bucket_url, f"{prefix}/**"):
        if file_item["relative_path"].lower().endswith(settings.EXPORT_SUFFIXES):
            items.append(FileItemDict(file_item, fs))
    return sorted(items, key=lambda item: item["relative_path"])


def fingerprint(item: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies one version of a file: a re-upload changes size or modification time."""
    mtime = item.get("modification_date")
    return {
        "size": item.get("size_in_bytes"),
        "mtime": mtime.isoformat() if hasattr(mtime, "isoformat") else mtime,
    }


def is_tracked(tracked: Mapping[str, Any], path: str, print_: Mapping[str, Any]) -> bool:
    entry = tracked.get(path)
    return bool(entry) and entry.get("size") == print_["size"] and entry.get("mtime") == print_["mtime"]


@dataclass
class Selection:
    files: list[Any]
    already_loaded: int = 0
    outside_window: int = 0


def select_files(
    items: Iterable[Any],
    tracked: Mapping[str, Any],
    start: date | None,
    end: date | None,
    backfill: bool,
) -> Selection:
    """Backfill: exactly the files dated in [start, end]. Scheduled: untracked (or changed)
    files dated up to `end` (and from `start` when given), plus undated ones."""
    selection = Selection(files=[])
    for item in items:
        path = item["relative_path"]
        day = file_date(path)
        if backfill:
            in_window = day is not None and start <= day <= end  # type: ignore[operator]
        else:
            in_window = day is None or (
                (end is None or day <= end) and (start is None or day >= start)
            )
        if not in_window:
            selection.outside_window += 1
        elif not backfill and is_tracked(tracked, path, fingerprint(item)):
            selection.already_loaded += 1
        else:
            selection.files.append(item)
    return selection


# ---------------------------------------------------------------- destination


def files_with_rows(table: str, paths: Sequence[str]) -> set[str] | None:
    """Which of `paths` already have rows in `table` of the running pipeline's destination.

    None when that cannot be known (no active pipeline or destination, an unexpected error):
    the caller then replaces rows as if every file had some. A table not created yet has none.
    """
    # dlt's destination clients: only at extract, inside a running pipeline
    from dlt.common.pipeline import current_pipeline
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    pipeline = current_pipeline()
    if pipeline is None or getattr(pipeline, "destination", None) is None or not paths:
        return None if pipeline is None else set()
    found: set[str] = set()
    try:
        with pipeline.sql_client() as client:
            qualified = client.make_qualified_table_name(table)
            column = client.escape_column_name(_merge_column(table))
            for i in range(0, len(paths), 500):
                chunk = list(paths[i : i + 500])
                rows = client.execute_sql(
                    f"SELECT DISTINCT {column} FROM {qualified} WHERE {column} IN "
                    f"({', '.join(['%s'] * len(chunk))})",
                    *chunk,
                )
                found.update(row[0] for row in rows or ())
    except DatabaseUndefinedRelation:
        return set()
    except Exception as exc:  # never guess "new" on an error: the merge is always correct
        logging.getLogger(__name__).warning("could not look up loaded files in %s (%s): merging", table, exc)
        return None
    return found


def _merge_column(table: str) -> str:
    """The file-name column the registry's contract merges on (one column)."""
    (column,) = resource_contract("s3_exports", table).merge_key
    return column


def write_disposition(table: str, paths: Sequence[str]) -> tuple[Any, str]:
    """Append when no selected file has rows in the destination yet (the daily case: no
    staging copy, no delete), else delete-insert on `_file_name`. Runs of one pipeline never
    overlap, so the answer holds until the load. Returns (disposition, why)."""
    present = files_with_rows(table, paths) if settings.APPEND_WHEN_NEW else None
    if present is not None and not present:
        return "append", "append: none of these files has rows in the destination yet"
    why = f"replace the rows of {len(present)} file(s) already loaded" if present else "replace per file"
    contract = resource_contract("s3_exports", table)
    return contract.dlt_write_disposition, f"delete-insert on {_merge_column(table)}: {why}"


# ---------------------------------------------------------------- reading


def parse_header(raw: bytes, file_name: str) -> list[str]:
    """The column names of a header line (BOM, quotes and line end allowed); checked."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadExportFileError(file_name, 1, f"header is not UTF-8 ({exc.reason})") from None
    names = next(csv.reader([text.rstrip("\r\n")]), [])
    blank = [i + 1 for i, name in enumerate(names) if not name.strip()]
    if blank:
        raise BadExportFileError(file_name, 1, f"header has empty column name(s) at position(s) {blank}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadExportFileError(file_name, 1, f"header repeats column(s) {dupes}")
    return names


class Header(NamedTuple):
    names: list[str]
    crlf: bool  # the header line ends with CRLF (the file's line end style)


def read_header(raw: BinaryIO, file_name: str) -> Header | None:
    """The header line's column names and line end, `raw` left just after it; None for an empty file."""
    first = raw.readline()
    if not first.strip():
        return None
    return Header(parse_header(first, file_name), first.endswith(b"\r\n"))


def _decoded_lines(raw: io.BufferedIOBase, file_name: str) -> Iterator[str]:
    """Lines decoded one by one, so an undecodable byte is reported with its line."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    for number, line in enumerate(raw, start=1):
        try:
            yield decoder.decode(line)
        except UnicodeDecodeError as exc:
            raise BadExportFileError.not_utf8(file_name, number, line[exc.start : exc.start + 1], exc.start + 1) from None


def locate_bad_line(item: Any, file_name: str, width: int) -> BadExportFileError | None:
    """Re-read a file pyarrow rejected, line by line, to name the first bad line (error path only)."""
    with item.open("rb") as raw:
        reader = csv.reader(_decoded_lines(raw, file_name))
        try:
            next(reader)  # header
            for record in reader:
                if len(record) != width:
                    return BadExportFileError.wrong_width(file_name, reader.line_num, width, len(record))
        except csv.Error as exc:
            return BadExportFileError(file_name, reader.line_num, f"malformed CSV ({exc})")
        except BadExportFileError as exc:
            return exc
    return None


def _file_columns(table: Any, file_name: str, day: date | None, client_id: str, offset: int) -> Any:
    # pyarrow (heavy): only when a file is read
    import pyarrow as pa

    n = table.num_rows
    return (
        table.append_column(
            pa.field("_file_name", pa.string(), nullable=False),
            pa.repeat(pa.scalar(file_name, pa.string()), n),
        )
        .append_column(
            pa.field("_row_id", pa.int64(), nullable=False), pa.array(range(offset, offset + n), pa.int64())
        )
        .append_column(pa.field("_file_date", pa.date32()), pa.repeat(pa.scalar(day, pa.date32()), n))
        .append_column(
            pa.field("_client_id", pa.string(), nullable=False),
            pa.repeat(pa.scalar(client_id, pa.string()), n),
        )
    )


def read_export(
    item: Any,
    client_id: str,
    block_size: int = settings.CSV_BLOCK_SIZE,
    rows_per_table: int = settings.ROWS_PER_TABLE,
) -> Iterator[Any]:
    """Stream one CSV as Arrow tables of about `rows_per_table` rows (parsed in `block_size`
    blocks), every column text, plus `_file_name`, `_row_id`, `_file_date`, `_client_id`.
    Yields nothing for an empty or header-only file; raises `BadExportFileError` (with the
    line) for a broken one."""
    # pyarrow (heavy): only when a file is read
    import pyarrow as pa
    import pyarrow.csv as pacsv

    file_name = item["relative_path"]
    day = file_date(file_name)
    with item.open("rb", block_size=settings.FS_BLOCK_SIZE) as raw:
        header = read_header(raw, file_name)
        if header is None:
            return
        names = header.names
        raw.seek(0)
        offset = 0
        try:
            reader = pacsv.open_csv(
                raw,
                read_options=pacsv.ReadOptions(block_size=block_size, encoding=settings.ENCODING, use_threads=settings.CSV_USE_THREADS),
                parse_options=pacsv.ParseOptions(newlines_in_values=settings.NEWLINES_IN_VALUES),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    strings_can_be_null=True,
                    null_values=list(settings.NULL_VALUES),
                ),
            )
            pending: list[Any] = []
            for batch in reader:
                pending.append(batch)
                if sum(b.num_rows for b in pending) >= rows_per_table:
                    table = pa.Table.from_batches(pending)
                    yield _file_columns(table, file_name, day, client_id, offset)
                    offset += table.num_rows
                    pending = []
            table = pa.Table.from_batches(pending, schema=reader.schema)
            if table.num_rows:
                yield _file_columns(table, file_name, day, client_id, offset)
                offset += table.num_rows
        except pa.ArrowInvalid as exc:
            located = locate_bad_line(item, file_name, len(names))
            raise located or BadExportFileError(
                file_name, None, f"{exc} (after {offset} good rows)"
            ) from None
