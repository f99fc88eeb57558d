"""s3_exports: CRM order exports (one CSV per prefix per day) loaded once per file.

Pure dlt, no Airflow. Tracking is per file (path + size + modification time in the
resource's dlt state), never per row: 20k rows sharing one cursor value made a row-level
incremental quadratic. A file loaded again (backfill, re-upload, lost state) replaces its
own rows through a delete-insert merge on `_file_name` (the registry's contract), so exactly
one copy remains.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any, Iterator, Optional, Sequence, Union

import dlt
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource

from signalroom.registry import DEFAULT_CLIENT_ID, resource_contract
from signalroom.sources.s3_exports import settings
from signalroom.sources.s3_exports.helpers import (
    BadExportFileError,
    BucketConfig,
    ExportConfigError,
    check_bucket_url,
    fingerprint,
    list_exports,
    parse_prefixes,
    read_export,
    resource_name,
    select_files,
    write_disposition,
)
from signalroom.sources.s3_exports.load_files import ExportLoadFiles, csv_loads_supported

__all__ = ["s3_exports", "BadExportFileError", "ExportConfigError"]

log = logging.getLogger("signalroom.sources.s3_exports")

# Columns every row gets besides the CSV's own (all text). Identity of a row: (_file_name, _row_id).
FILE_COLUMNS = {
    "_file_name": {"data_type": "text", "nullable": False},
    "_row_id": {"data_type": "bigint", "nullable": False},
    "_file_date": {"data_type": "date", "nullable": True},
    "_client_id": {"data_type": "text", "nullable": False},
}


def _as_date(value: date | str | None, name: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ExportConfigError(f"{name}={value!r} is not a date: use YYYY-MM-DD") from None


@dlt.source(name="s3_exports")
def s3_exports(
    start_date: Optional[date] = None,
    end_date: Optional[date] = None,
    backfill: bool = False,
    lookback_days: int = 3,
    client_id: str = DEFAULT_CLIENT_ID,
    bucket_url: Optional[str] = None,
    prefixes: Union[str, Sequence[str]] = settings.DEFAULT_PREFIXES,
    aws_access_key_id: Optional[str] = None,
    aws_secret_access_key: Optional[TSecretStrValue] = None,
    endpoint_url: Optional[str] = None,
    region_name: Optional[str] = None,
    block_size: int = settings.CSV_BLOCK_SIZE,
    write_processes: Optional[int] = None,
) -> list[DltResource]:
    """One resource per prefix (`orders-create` -> `orders_create`).

    Scheduled run (`backfill=False`): files not loaded yet (or changed since), dated up to
    `end_date` or undated. Backfill: exactly the files dated in [start_date, end_date],
    reloaded, tracked-file state untouched. `lookback_days` is accepted for the common
    contract and unused: per-file tracking already re-reads anything late or re-uploaded.

    Nothing touches storage until a resource is extracted; `bucket_url` (`s3://bucket[/path]`
    or `file:///abs/folder`) is checked then, so the source can be built without it.
    `write_processes`: exports checked at once on Postgres (default `settings.WRITE_PROCESSES`).
    """
    start = _as_date(start_date, "start_date")
    end = _as_date(end_date, "end_date")
    if backfill and (start is None or end is None):
        raise ExportConfigError("a backfill needs both start_date and end_date (ET days, inclusive)")
    if start and end and start > end:
        raise ExportConfigError(f"start_date={start} is after end_date={end}: swap them")
    del lookback_days  # see docstring
    if write_processes is not None and int(write_processes) < 1:
        raise ExportConfigError(
            f"write_processes={write_processes}: set 1 or more (1 = in the task's own process), "
            "e.g. SOURCES__S3_EXPORTS__WRITE_PROCESSES=2"
        )

    def bucket() -> BucketConfig:
        return BucketConfig(
            bucket_url=check_bucket_url(bucket_url),
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            endpoint_url=endpoint_url,
            region_name=region_name,
        )

    return [
        _prefix_resource(prefix, bucket, start, end, backfill, str(client_id), block_size, write_processes)
        for prefix in parse_prefixes(prefixes)
    ]


def _prefix_resource(
    prefix: str,
    bucket: Any,
    start: date | None,
    end: date | None,
    backfill: bool,
    client_id: str,
    block_size: int,
    write_processes: int | None,
) -> DltResource:
    name = resource_name(prefix)

    def export_files() -> Iterator[Any]:
        yield from _extract_prefix(name, prefix, bucket(), start, end, backfill, client_id, block_size, write_processes)

    return dlt.resource(export_files, columns=FILE_COLUMNS, **resource_contract("s3_exports", name).dlt_hints())


def _compare_header(name: str, path: str, columns: list[str], state: dict, backfill: bool) -> None:
    """Name the columns an export no longer has (its header beside the last file's, kept in the
    resource state as `header`): dlt keeps such a column in the table and fills it with NULL,
    silently. Backfills compare but never write the state."""
    header = [c for c in columns if c not in FILE_COLUMNS]
    previous = state.get("header") or []
    missing = [c for c in previous if c not in header]
    if missing:
        log.warning(
            "s3_exports.%s: column(s) %s missing from the header of %s (the previous export had "
            "them); their values load as NULL", name, ", ".join(missing), path,
        )
    if not backfill:
        state["header"] = header


def _extract_prefix(
    name: str,
    prefix: str,
    config: BucketConfig,
    start: date | None,
    end: date | None,
    backfill: bool,
    client_id: str,
    block_size: int,
    write_processes: int | None,
) -> Iterator[Any]:
    state = dlt.current.resource_state()
    # a backfill reads the tracked files but never writes them
    tracked = state.get("files", {}) if backfill else state.setdefault("files", {})

    try:
        listed = list_exports(config.filesystem(), config.bucket_url, prefix)
    except Exception as exc:  # access and configuration problems all surface here, first
        raise ExportConfigError(
            f"cannot list {config.bucket_url}/{prefix}: {type(exc).__name__}: {exc}. Check the config "
            "keys sources.s3_exports.bucket_url, aws_access_key_id, aws_secret_access_key, endpoint_url, "
            "region_name (SOURCES__S3_EXPORTS__*) and that the bucket exists"
        ) from exc
    selection = select_files(listed, tracked, start, end, backfill)
    log.info(
        "s3_exports.%s: %d file(s) under %s/%s; %d to read, %d already loaded, %d outside %s..%s",
        name,
        len(listed),
        config.bucket_url,
        prefix,
        len(selection.files),
        selection.already_loaded,
        selection.outside_window,
        start or "-",
        end or "-",
    )

    disposition = None
    if selection.files:
        disposition, why = write_disposition(name, [f["relative_path"] for f in selection.files])
        log.info("s3_exports.%s: %s", name, why)

    rows_total, rejected = 0, []

    def loaded(item: Any, header: list[str] | None, rows: int) -> None:
        """After a file's rows went to dlt: header compared, file counted and tracked."""
        nonlocal rows_total
        path = item["relative_path"]
        if header is not None:
            _compare_header(name, path, header, state, backfill)
        if rows == 0:
            rejected.append(path)
            log.warning("s3_exports.%s: %s is empty or header-only: nothing loaded", name, path)
        rows_total += rows
        if not backfill:
            tracked[path] = {**fingerprint(item), "rows": rows, "status": "loaded" if rows else "empty"}

    if selection.files and csv_loads_supported():  # Postgres: the exports go to COPY as they are
        load_files = _export_load_files(write_processes)
        columns = None
        try:
            for item, export in load_files.write_all(selection.files, client_id):
                for load_file in export.files:
                    # the write disposition goes with the first file; columns when the header changes
                    hints = {}
                    if disposition is not None:
                        hints["write_disposition"], disposition = disposition, None
                    if export.columns != columns:
                        hints["columns"] = columns = export.columns
                    yield load_files.item(load_file, dlt.mark.make_hints(**hints) if hints else None)
                loaded(item, export.header or None, export.rows)
        finally:
            load_files.remove_written()
    else:
        for item in selection.files:
            rows, header = 0, None
            for table in read_export(item, client_id, block_size):
                if rows == 0:
                    header = table.column_names
                rows += table.num_rows
                if disposition is not None:
                    table, disposition = dlt.mark.with_hints(table, dlt.mark.make_hints(write_disposition=disposition)), None
                yield table
            loaded(item, header, rows)

    log.info(
        "s3_exports.%s: files in %d = loaded %d + rejected %d; rows loaded %d%s",
        name,
        len(selection.files),
        len(selection.files) - len(rejected),
        len(rejected),
        rows_total,
        f"; rejected: {', '.join(rejected)}" if rejected else "",
    )


def _export_load_files(processes: int | None) -> ExportLoadFiles:
    """Load files go to a scratch folder inside the pipeline's working folder (same file
    system as its packages, so dlt imports each by hard link)."""
    import tempfile

    pipeline = dlt.current.pipeline()
    folder = tempfile.mkdtemp(prefix="s3_exports-", dir=pipeline.working_dir)
    return ExportLoadFiles(
        folder,
        dlt.current.load_package_state()["load_id"],
        dlt.current.source_schema().naming,
        rows_per_file=settings.ROWS_PER_LOAD_FILE,
        processes=processes,
    )
