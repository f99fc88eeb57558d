"""Before a load extracts anything: finish or drop what an earlier try left in this worker's
working folder, so a retry heals a transient failure without a person.

What a killed or failed try can leave, and what the next try does with it:

- **normalized package, not yet in the destination** (killed or failed in dlt's load step; the
  warehouse restarted): *finished* with `pipeline.load()`. dlt records every finished job in the
  package, so only the jobs still missing run: a partly loaded package does not double rows,
  and its state row becomes visible only when the package completes.
- **normalized package the destination already has or has superseded** (its load id is in
  `_dlt_loads`, or this pipeline's newest stored state comes from a later load: another try,
  on another worker, re-read its window since): *dropped*. Finishing it would write older rows
  over newer ones.
- **extracted-only package** (killed in normalize, or between extract and normalize):
  *dropped, and the window re-extracted*. Nothing of it reached the destination, and the
  retry must do exactly what a retry on a worker with an empty folder does (the no-shared-disk
  case): restore state from the destination and read the source for its window. Normalizing
  it instead would load rows read by an earlier try, possibly of another run's window, and
  make the outcome depend on which worker the retry lands on. The price is one extract.

A package whose finishing fails terminally is dropped too and the window re-extracted (a job
that committed just before the crash but was not recorded by dlt cannot be replayed: a key
violation). When this try's own, freshly extracted load fails terminally (the destination
refuses the data: type mismatch, constraint violation), the package is *poison*:
`PoisonPackageError`, which the load task raises without retrying, naming the pipeline, the
load id and the maintenance DAG action. So a poison package never loops: each run tries once.

No Airflow import: the CLI and the tests heal the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("signalroom.healing")

MAINTENANCE_DAG = "signalroom_maintenance"


class PoisonPackageError(RuntimeError):
    """A load package the destination refuses each time it is loaded: retrying cannot help."""

    def __init__(self, pipeline: str, load_id: str, cause: BaseException, where: str) -> None:
        self.pipeline, self.load_id = pipeline, load_id
        super().__init__(
            f"poison load package {load_id} of pipeline {pipeline!r}: the destination refused "
            f"it ({type(getattr(cause, 'client_exception', None) or cause).__name__}: {_first_line(cause)}); retrying would fail the same way, "
            f"so no retry follows. Fix the cause (the hint below), then clear this task: it finishes "
            f"the package, or drops it and reads the window again. To remove it for good, trigger "
            f"the maintenance DAG {MAINTENANCE_DAG!r} with pipeline={pipeline}, action=drop, "
            f"dry_run=false, with_partial_loads=true {where}."
        )


class PendingPackagesError(RuntimeError):
    """Pending packages healing will not decide about alone: the on-call inspects them."""


@dataclass
class Healed:
    """What healing did before this try's own load (for the task log and the load summary)."""

    finished: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # load id -> why

    def __bool__(self) -> bool:
        return bool(self.finished or self.dropped)

    def to_dict(self) -> dict[str, Any]:
        return {"finished": list(self.finished), "dropped": dict(self.dropped)}


def terminal_failure(error: BaseException) -> BaseException | None:
    """The terminal job failure inside a dlt step error, if it is one (else None)."""
    from dlt.load.exceptions import LoadClientJobFailed, LoadClientJobTerminalRetry

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (LoadClientJobFailed, LoadClientJobTerminalRetry)):
            return current
        wrapped = getattr(current, "exception", None)
        current = wrapped if isinstance(wrapped, BaseException) else (current.__cause__ or current.__context__)
    return None


def _first_line(error: BaseException) -> str:
    """The destination's own words (dlt's failed_message is a traceback)."""
    root = getattr(error, "client_exception", None) or error
    text = str(root).strip()
    return text.splitlines()[0][:300] if text else type(root).__name__


def where_it_is() -> str:
    import os
    import socket

    return f"on the worker that holds it (host {socket.gethostname()}, DLT_DATA_DIR {os.environ.get('DLT_DATA_DIR', '?')})"


def destination_load_ids(pipeline: Any, candidates: list[str]) -> tuple[set[str], str | None]:
    """-> (which of `candidates` the destination has in `_dlt_loads`, the load id of this
    pipeline's newest stored state). Nothing when the dataset does not exist yet."""
    try:
        with pipeline.sql_client() as client:
            loads = client.make_qualified_table_name("_dlt_loads")
            states = client.make_qualified_table_name("_dlt_pipeline_state")
            committed: set[str] = set()
            if candidates:
                marks = ", ".join(["%s"] * len(candidates))
                with client.execute_query(f"SELECT load_id FROM {loads} WHERE load_id IN ({marks})",
                                          *candidates) as cur:
                    committed = {row[0] for row in cur.fetchall()}
            with client.execute_query(
                f"SELECT max(l.load_id) FROM {states} AS s JOIN {loads} AS l ON l.load_id = s._dlt_load_id "
                "WHERE s.pipeline_name = %s AND l.status = 0", pipeline.pipeline_name,
            ) as cur:
                row = cur.fetchone()
            return committed, (row[0] if row else None)
    except Exception as exc:  # no dataset / no dlt tables yet: nothing was loaded
        log.debug("%s: no load records in the destination (%s)", pipeline.pipeline_name, exc)
        return set(), None


def heal(pipeline: Any, load: Any) -> Healed:
    """Finish or drop the pending packages of `pipeline` (see the module doc).

    `load` loads the pending normalized packages (`pipeline.load`, wrapped by the caller in
    its schema-race retry).
    """
    healed = Healed()
    if not pipeline.has_pending_data:
        return healed
    name = pipeline.pipeline_name
    normalized = sorted(pipeline.list_normalized_load_packages())
    extracted = sorted(pipeline.list_extracted_load_packages())
    committed, newest_state = destination_load_ids(pipeline, normalized)
    stale = {
        lid: ("already in the destination" if lid in committed
              else f"superseded: the destination's state comes from the later load {newest_state}")
        for lid in normalized
        if lid in committed or (newest_state is not None and newest_state > lid)
    }
    live = [lid for lid in normalized if lid not in stale]
    if stale and live:  # only an older bundle version could leave both; refuse to guess
        raise PendingPackagesError(
            f"pipeline {name!r} has pending packages both superseded ({', '.join(stale)}) and not "
            f"({', '.join(live)}); inspect them with the maintenance DAG {MAINTENANCE_DAG!r} "
            f"(pipeline={name}, action=inspect) and drop what it lists"
        )
    if stale:
        # dlt completes the oldest as aborted (nothing written to the destination) and deletes
        # the rest, extracted ones included; local state rewinds to before them
        pipeline.abort_packages()
        healed.dropped.update(stale)
        extracted = [lid for lid in extracted if lid not in stale]
    if live:
        log.info("%s: finishing load package(s) %s left by an earlier try", name, ", ".join(live))
        try:
            load()
            healed.finished.extend(live)
        except Exception as exc:
            failure = terminal_failure(exc)
            if failure is None:
                raise  # transient (warehouse still down): the next try finishes it
            # e.g. a job that committed just before the crash but was not recorded: replaying
            # it violates a key. Drop the package and read the window again, as a fresh worker
            # would; if fresh data fails the same way, this try's own load stops as poison.
            why = f"could not be finished ({_first_line(failure)}): dropped, this try extracts its window again"
            log.warning("%s: load package(s) %s %s", name, ", ".join(live), why)
            pipeline.abort_packages()
            healed.dropped.update({lid: why for lid in live})
            stale = {lid: why for lid in live}  # everything pending is gone now
    if extracted:
        if not stale:  # nothing normalized is left now: this deletes the extracted packages
            pipeline.abort_packages()
        healed.dropped.update({lid: "extracted only: dropped, this try extracts its window again"
                               for lid in extracted})
    for lid, why in healed.dropped.items():
        log.info("%s: dropped load package %s (%s)", name, lid, why)
    return healed
