"""The on-call's maintenance DAG and its operators: pending load packages and pipeline state.

Manual trigger only. The operators run the same helpers as `python -m signalroom pending|state`
and the plugin page (`signalroom.maintenance`, `signalroom.state`); dlt is imported only when
they execute, never when the DAG file is parsed.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import DAG, BaseOperator, Param

from signalroom.base.naming import START_DATE, dag_id_for
from signalroom.maintenance import drop_pending, format_report, format_reset, reset_resource
from signalroom.orchestration.connections import warehouse_destination
from signalroom.registry import find_pipeline, registered_pipelines
from signalroom.state import format_state, read_pipeline_state

log = logging.getLogger("signalroom.maintenance")

MAINTENANCE_DAG_ID = "signalroom_maintenance"
ACTIONS = ("inspect", "drop", "reset")
# a run in one of these states may be writing to the pipeline's working folder
LIVE_RUN_STATES = ["running", "queued"]


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean: use true or false")


def _refuse_if_live(context: Any, name: str, what: str, why: str) -> None:
    """A real drop/reset waits for the source's DAG: a live run owns the working folder."""
    spec, _ = find_pipeline(name)
    dag_id = dag_id_for(spec.name)
    live = context["ti"].get_dr_count(dag_id=dag_id, states=LIVE_RUN_STATES)
    if live:
        raise RuntimeError(
            f"refusing to {what} {name}: DAG {dag_id} has {live} run(s) "
            f"{' or '.join(LIVE_RUN_STATES)}, and {why}. Wait for it "
            "to finish (or mark it failed in the UI), then trigger this DAG again."
        )


def _pipeline(value: Any) -> str:
    name = str(value or "").strip()
    find_pipeline(name)  # unknown -> clear error listing the registered pipelines
    return name


class PendingPackagesOperator(BaseOperator):
    """Lists one pipeline's pending load packages and, with `action="drop"`, drops them.

    Dry run by default: it then reports what a drop would remove and changes nothing. A real
    drop refuses while a run of the pipeline's DAG is live, since that run owns the packages.
    """

    template_fields = ("pipeline", "action", "with_partial_loads", "dry_run")
    ui_color = "#fde2c8"

    def __init__(
        self,
        *,
        pipeline: str,
        action: str = "inspect",
        with_partial_loads: bool | str = False,
        dry_run: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.action = action
        self.with_partial_loads = with_partial_loads
        self.dry_run = dry_run

    def _refuse_if_live(self, context: Any, name: str) -> None:
        _refuse_if_live(context, name, "drop pending packages of", "a live load owns those packages")

    def execute(self, context: Any) -> dict[str, Any]:
        name = _pipeline(self.pipeline)
        if self.action not in ACTIONS:
            raise ValueError(f"action={self.action!r} is not known: choose one of {', '.join(ACTIONS)}")
        with_partial = _flag("with_partial_loads", self.with_partial_loads)
        # inspect (and reset, whose own task acts) is a dry run of the drop: it shows the
        # packages and what a drop would remove
        dry_run = self.action in ("inspect", "reset") or _flag("dry_run", self.dry_run)
        if not dry_run:
            self._refuse_if_live(context, name)
        destination = warehouse_destination()
        with destination.writing():  # DuckDB: not while a load writes the file
            report = drop_pending(name, destination, with_partial_loads=with_partial, dry_run=dry_run)
        log.info("%s %s\n%s", self.action, name, format_report(report))
        return report.to_dict()


class ResetResourceOperator(BaseOperator):
    """With `action="reset"`: drops the pipeline's resource table(s) and state with dlt's own
    drop (`signalroom.maintenance.reset_resource`) so the next run reloads it. Dry run by
    default; a real reset refuses while a run of the source's DAG is running or queued. Other
    actions: nothing to do."""

    template_fields = ("pipeline", "action", "dry_run")
    ui_color = "#f9d0c4"

    def __init__(self, *, pipeline: str, action: str = "inspect", dry_run: bool | str = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.action = action
        self.dry_run = dry_run

    def execute(self, context: Any) -> dict[str, Any] | None:
        name = _pipeline(self.pipeline)
        if self.action != "reset":
            log.info("action %s: no reset", self.action)
            return None
        dry_run = _flag("dry_run", self.dry_run)
        if not dry_run:
            _refuse_if_live(context, name, "reset", "its load writes the tables a reset drops")
        report = reset_resource(name, warehouse_destination(), dry_run=dry_run)
        log.info("%s", format_reset(report))
        return report.to_dict()


class PipelineStateOperator(BaseOperator):
    """Logs a pipeline's incremental state as the destination stores it (what a worker restores)."""

    template_fields = ("pipeline",)
    ui_color = "#d7ecf7"

    def __init__(self, *, pipeline: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline

    def execute(self, context: Any) -> dict[str, Any]:
        destination = warehouse_destination()
        with destination.writing():  # DuckDB: not while a load writes the file
            state = read_pipeline_state(_pipeline(self.pipeline), destination)
        log.info("state of %s\n%s", state.pipeline, format_state(state))
        if state.error and "never loaded" not in state.error:
            raise RuntimeError(f"could not read the state of {state.pipeline}: {state.error}")
        return state.to_dict()


def maintenance_params() -> dict[str, Param]:
    return {
        "pipeline": Param(
            type="string",
            enum=list(registered_pipelines()),
            title="Pipeline",
            description="The dlt pipeline (<source>__<resource>) to inspect or unstick.",
        ),
        "action": Param(
            "inspect",
            type="string",
            enum=list(ACTIONS),
            title="Action",
            description="inspect: list pending packages and log the state. drop: drop the "
            "pending packages (an earlier run's leftovers), then sync state from the destination. "
            "reset: drop the resource's table(s) and state (dlt's drop) so the next run reloads it.",
        ),
        "with_partial_loads": Param(
            False,
            type="boolean",
            title="Include partially loaded packages",
            description="Also drop a package some of whose jobs already wrote to the destination "
            "(what it wrote stays; the next run re-reads the window).",
        ),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Only report what a drop or reset would remove; change nothing. Untick to act.",
        ),
    }


DOC_MD = """### SignalRoom maintenance (manual trigger only)

For one pipeline (`<source>__<resource>`):

1. **pending_packages** lists the load packages an earlier try left in `$DLT_DATA_DIR` of the
   worker this task runs on (load id, stage, jobs, tables, age). With `action=drop` and
   `dry_run` unticked it drops them with dlt's own abort, then syncs state from the
   destination. It refuses while a run of the pipeline's DAG is running or queued.
2. **reset_resource** (`action=reset`) drops the resource's table(s) and its state with dlt's
   own drop (`dlt pipeline <name> drop <resource>`); dry run by default, refused while a run of
   the source's DAG is running or queued. The next run of the source's DAG reloads it.
3. **pipeline_state** logs the pipeline's incremental state as stored in the destination.

**When it is still needed.** Load tasks heal by themselves: a retry finishes a package the
destination lacks, drops one it superseded or never saw, and a worker with an empty folder
restores state from the destination. What is left for this DAG: inspecting what a worker
holds, removing a refused (*poison*) package you do not want loaded any more (its cause cannot
be fixed, the window is obsolete, the worker is retired), and packages a load refused to
decide about (the pending-packages hint). With
workers that share no disk, a package lives only on the worker that made it (the error names
its host and `DLT_DATA_DIR`): this DAG's task must run there (a Celery queue served by that
worker only, or `python -m signalroom pending <pipeline> --drop` on that host).

See the runbook: "pipeline stuck" and "what has been loaded".
"""


def build_maintenance_dag() -> DAG:
    with DAG(
        dag_id=MAINTENANCE_DAG_ID,
        description="Pending load packages, resource reset and incremental state of one pipeline (on-call)",
        doc_md=DOC_MD,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        params=maintenance_params(),
        render_template_as_native_obj=True,
        default_args={"owner": "data-team", "retries": 0},
        tags=["signalroom", "maintenance"],
    ) as dag:
        pending = PendingPackagesOperator(
            task_id="pending_packages",
            pipeline="{{ params.pipeline }}",
            action="{{ params.action }}",
            with_partial_loads="{{ params.with_partial_loads }}",
            dry_run="{{ params.dry_run }}",
        )
        reset = ResetResourceOperator(
            task_id="reset_resource",
            pipeline="{{ params.pipeline }}",
            action="{{ params.action }}",
            dry_run="{{ params.dry_run }}",
        )
        state = PipelineStateOperator(task_id="pipeline_state", pipeline="{{ params.pipeline }}")
        pending >> reset >> state
    return dag
