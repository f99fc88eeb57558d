"""Readable summaries of dlt resource state (incremental cursors and custom state).

Pure functions over the decoded state dict, shared by the load task's log line, the CLI, the
maintenance DAG and the plugin, so every view of a cursor says the same thing.
`read_pipeline_state` decodes a pipeline's newest state from the destination the way dlt
restores it on a fresh worker, so it works from any process (API server, terminal), not only
on the worker that ran the load. dlt is imported only inside the functions that read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping
from urllib.parse import unquote, urlsplit

from signalroom.destinations import DestinationConfig
from signalroom.dltenv import prepare_dlt_env
from signalroom.registry import find_pipeline, pipeline_name, registered_pipelines


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def cursor_summary(resource_state: Mapping[str, Any]) -> dict[str, Any]:
    """`{"incremental.<cursor>": {...values}, "<key>": <size or value>}` for one resource."""
    summary: dict[str, Any] = {}
    for key, value in resource_state.items():
        if key == "incremental" and isinstance(value, Mapping):
            for cursor, inc in value.items():
                summary[f"incremental.{cursor}"] = {
                    "initial_value": _scalar(inc.get("initial_value")),
                    "start_value": _scalar(inc.get("start_value")),
                    "last_value": _scalar(inc.get("last_value")),
                    "unique_hashes": len(inc.get("unique_hashes") or ()),
                }
        elif isinstance(value, (Mapping, list, tuple, set)):
            summary[key] = {"entries": len(value)}
        else:
            summary[key] = _scalar(value)
    return summary


# ---------------------------------------------------------------------------------------------
# Per-resource rows: what the task log, the CLI and the plugin page show


@dataclass(frozen=True)
class CursorRow:
    """One incremental cursor: where it lives in the state and its values."""

    path: str  # sources.<source>.resources.<resource>.incremental.<cursor>
    initial_value: Any
    start_value: Any
    last_value: Any
    unique_hashes: int  # rows at last_value dlt will skip as duplicates next run


@dataclass(frozen=True)
class TrackedRow:
    """Custom resource state holding a collection, e.g. the files s3_exports has loaded."""

    path: str
    count: int
    newest: Any  # newest entry (by its timestamp when entries carry one, else by name)


@dataclass(frozen=True)
class ResourceView:
    source: str
    resource: str
    cursors: list[CursorRow] = field(default_factory=list)
    tracked: list[TrackedRow] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # other scalar custom state


_TIME_KEYS = ("modified", "mtime", "last_modified", "modification_date", "loaded_at", "created_at")


def _entry_time(value: Any) -> Any:
    if isinstance(value, Mapping):
        for key in _TIME_KEYS:
            if value.get(key) is not None:
                return value[key]
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    return None


def _newest(collection: Any) -> Any:
    """Newest entry of a tracked collection: the key with the latest timestamp, else max key."""
    if isinstance(collection, Mapping):
        if not collection:
            return None
        timed = [(str(_entry_time(v)), str(k)) for k, v in collection.items() if _entry_time(v) is not None]
        if len(timed) == len(collection):
            return max(timed)[1]
        return max(str(k) for k in collection)
    items = [str(v) for v in collection if isinstance(v, (str, int, float))]
    return max(items) if items else None


def resource_views(sources_state: Mapping[str, Any]) -> list[ResourceView]:
    """Every resource in a pipeline's `state["sources"]`, as rows (pure; no dlt needed)."""
    views = []
    for source, source_state in (sources_state or {}).items():
        for resource, res_state in (source_state.get("resources") or {}).items():
            base = f"sources.{source}.resources.{resource}"
            cursors, tracked, values = [], [], {}
            for key, value in res_state.items():
                if key == "incremental" and isinstance(value, Mapping):
                    for cursor, inc in value.items():
                        cursors.append(
                            CursorRow(
                                path=f"{base}.incremental.{cursor}",
                                initial_value=_scalar(inc.get("initial_value")),
                                start_value=_scalar(inc.get("start_value")),
                                last_value=_scalar(inc.get("last_value")),
                                unique_hashes=len(inc.get("unique_hashes") or ()),
                            )
                        )
                elif isinstance(value, (Mapping, list, tuple, set)):
                    tracked.append(TrackedRow(path=f"{base}.{key}", count=len(value), newest=_newest(value)))
                else:
                    values[key] = _scalar(value)
            views.append(ResourceView(source, resource, cursors, tracked, values))
    return views


# ---------------------------------------------------------------------------------------------
# A pipeline's state as stored in the destination


LOAD_STATUS = {0: "loaded"}


@dataclass(frozen=True)
class LoadRow:
    """A `_dlt_loads` row (only completed packages get one; status 0 is success)."""

    load_id: str
    status: int
    inserted_at: str | None

    @property
    def status_text(self) -> str:
        return LOAD_STATUS.get(self.status, f"status {self.status}")


@dataclass
class PipelineState:
    """What the destination says about one pipeline: its newest state and its last load."""

    pipeline: str
    source: str
    resource: str
    dataset: str
    destination: str  # log-safe description
    found: bool = False
    state_version: int | None = None
    state_created_at: str | None = None
    state_load_id: str | None = None
    resources: list[ResourceView] = field(default_factory=list)
    last_load: LoadRow | None = None
    # several pipelines load this dataset: last_load is the newest load that saved this state
    shared_dataset: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.last_load:
            data["last_load"]["status_text"] = self.last_load.status_text
        return data

    @property
    def sources_summary(self) -> dict[str, dict[str, Any]]:
        """`{resource: cursor_summary-shaped dict}`, comparable with what the load task logs."""
        out: dict[str, dict[str, Any]] = {}
        for view in self.resources:
            summary: dict[str, Any] = {}
            for c in view.cursors:
                summary["incremental." + c.path.rsplit(".incremental.", 1)[1]] = {
                    "initial_value": c.initial_value,
                    "start_value": c.start_value,
                    "last_value": c.last_value,
                    "unique_hashes": c.unique_hashes,
                }
            for t in view.tracked:
                summary[t.path.rsplit(".", 1)[1]] = {"entries": t.count}
            summary.update(view.values)
            out[view.resource] = summary
        return out


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _scrub(message: str, destination: DestinationConfig) -> str:
    """Error text without the destination's credentials."""
    url = destination.postgres_url or ""
    for secret in (url, urlsplit(url).password, unquote(urlsplit(url).password or "")):
        if secret:
            message = message.replace(secret, "***")
    return message


def _last_load(client: Any, pipeline_name: str, dataset_shared: bool) -> LoadRow | None:
    """The pipeline's newest completed load (`_dlt_loads` has no pipeline column).

    A dataset written by one pipeline: its newest load. A dataset shared by several pipelines
    (s3_exports): the newest load that saved this pipeline's state. Both are index-free lookups
    on small tables; attributing through the data table's `_dlt_load_id` would scan it.
    """
    sql = client.sql_client
    loads = sql.make_qualified_table_name("_dlt_loads")
    query = f"SELECT l.load_id, l.status, l.inserted_at FROM {loads} l"
    args: tuple[Any, ...] = ()
    if dataset_shared:
        states = sql.make_qualified_table_name("_dlt_pipeline_state")
        query += f" WHERE l.load_id IN (SELECT s._dlt_load_id FROM {states} s WHERE s.pipeline_name = %s)"
        args = (pipeline_name,)
    rows = sql.execute_sql(query + " ORDER BY l.load_id DESC LIMIT 1", *args)
    if not rows:
        return None
    load_id, status, inserted_at = rows[0]
    return LoadRow(load_id=str(load_id), status=int(status), inserted_at=_iso(inserted_at))


def _read_one(client: Any, result: PipelineState, dataset_shared: bool) -> None:
    from dlt.common.versioned_state import decompress_state  # dlt: only when state is read

    stored = client.get_stored_state(result.pipeline)  # dlt's own query: newest row of a status-0 load
    if stored is not None:
        state = decompress_state(stored.state)
        result.found = True
        result.state_version = stored.version
        result.state_created_at = _iso(stored.created_at)
        result.state_load_id = stored._dlt_load_id
        result.resources = resource_views(state.get("sources") or {})
    result.shared_dataset = dataset_shared
    result.last_load = _last_load(client, result.pipeline, dataset_shared)


def read_states(pipeline_names: Iterable[str], destination: DestinationConfig) -> list[PipelineState]:
    """Decode each pipeline's newest state from the destination (one connection per dataset)."""
    prepare_dlt_env()
    # dlt (heavy): only when state is read, after its environment is set
    import dlt
    from dlt.common.destination.exceptions import DestinationUndefinedEntity
    from dlt.dataset.utils import get_destination_clients

    by_dataset: dict[str, list[PipelineState]] = {}
    results = []
    for name in pipeline_names:
        spec, resource = find_pipeline(name)
        result = PipelineState(
            pipeline=pipeline_name(spec.name, resource.name),
            source=spec.name,
            resource=resource.name,
            dataset=spec.dataset_name,
            destination=destination.describe(),
        )
        results.append(result)
        by_dataset.setdefault(spec.dataset_name, []).append(result)
    writers: dict[str, int] = {}  # registered pipelines per dataset
    for other in registered_pipelines():
        dataset = find_pipeline(other)[0].dataset_name
        writers[dataset] = writers.get(dataset, 0) + 1

    dest = destination.to_dlt()
    for dataset, members in by_dataset.items():
        try:
            client = get_destination_clients(
                dlt.Schema(members[0].source), destination=dest, destination_dataset_name=dataset
            )[0]
            with client:
                for result in members:
                    try:
                        _read_one(client, result, writers.get(dataset, 1) > 1)
                    except DestinationUndefinedEntity:
                        result.error = (
                            f"no dlt state in dataset {dataset!r} yet: pipeline {result.pipeline} "
                            "never loaded into this destination (or the dataset name is wrong)"
                        )
        except DestinationUndefinedEntity:
            for result in members:
                result.error = f"dataset {dataset!r} does not exist in {destination.describe()}: never loaded"
        except Exception as exc:  # connection, auth: shown to the on-call, never with the password
            for result in members:
                result.error = _scrub(f"{type(exc).__name__}: {exc}", destination)
    return results


def read_pipeline_state(name: str, destination: DestinationConfig) -> PipelineState:
    return read_states([name], destination)[0]


# ---------------------------------------------------------------------------------------------
# Plain-text table for the maintenance task log and the terminal


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def text_table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def state_rows(state: PipelineState) -> list[list[Any]]:
    """One row per cursor / tracked collection: the same rows the plugin page renders."""
    rows: list[list[Any]] = []
    for view in state.resources:
        for c in view.cursors:
            rows.append([c.path, c.initial_value, c.start_value, c.last_value, c.unique_hashes, None, None])
        for t in view.tracked:
            rows.append([t.path, None, None, None, None, t.count, t.newest])
    return rows


STATE_HEADER = ["state path", "initial_value", "start_value", "last_value", "dedup hashes", "tracked", "newest"]


def format_state(state: PipelineState) -> str:
    load = state.last_load
    basis = " (newest that saved this state; the dataset is shared)" if state.shared_dataset else ""
    head = (
        f"pipeline {state.pipeline} (dataset {state.dataset}, {state.destination})\n"
        f"  last load: {load.load_id + ' ' + load.status_text + ' at ' + _cell(load.inserted_at) if load else '-'}"
        f"{basis}\n"
        f"  state: version {_cell(state.state_version)}, saved {_cell(state.state_created_at)} "
        f"by load {_cell(state.state_load_id)}"
    )
    if state.error:
        return f"{head}\n  ERROR: {state.error}"
    if not state.found:
        return f"{head}\n  no state stored for this pipeline yet"
    rows = state_rows(state)
    return f"{head}\n" + (text_table(STATE_HEADER, rows) if rows else "  (no resource state)")
