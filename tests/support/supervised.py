"""Run one DAG the way a worker does: `dag.test()`'s loop, but every task under Airflow's real
task supervisor (forked task process, stdout/stderr/log sockets, the JSON task log file in
$AIRFLOW_HOME/logs), talking to Airflow's in-process execution API instead of an API server.

Why: `dag.test()` runs tasks inside the test process, so what a task prints to stderr never
becomes the ERROR line a worker's task log gets (dlt-hub/dlt#4462), and no task log file is
written. `airflow dags test --use-executor` needs an API server (~20 s to start here) and
fights the executor over SQLite. This keeps everything else of `dag.test()`.

    python tests/support/supervised.py '[{"dag_id": ..., "conf": {...}, "env": {...}}, ...]'
    -> prints "RESULT <state> <run_id>" per run
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace


def task_log_path(dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    """Airflow's default `[logging] log_filename_template`, relative to the base log folder."""
    return f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log"


def _run_supervised(ti, task, client=None):
    """Stands in for `run_task_in_process` (what `dag.test()` calls per task)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.api.datamodels._generated import BundleInfo
    from airflow.sdk.execution_time import supervisor
    from airflow.utils.session import create_session

    dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).resolve()
    supervisor.supervise_task(
        ti=ti,
        bundle_info=BundleInfo(name="dags-folder"),
        dag_rel_path=Path(task.dag.fileloc).resolve().relative_to(dags_folder),
        token="",
        client=supervisor.InProcessTestSupervisor._api_client(task.dag),
        log_path=task_log_path(ti.dag_id, ti.run_id, ti.task_id, ti.try_number),
    )
    with create_session() as session:
        state = session.get(TaskInstance, ti.id).state
    return SimpleNamespace(ti=SimpleNamespace(state=state, task=task), msg=None, error=None)


def main(runs: list[dict]) -> list[str]:
    """Run each `{"dag_id", "conf", "env"}` in turn (one interpreter: Airflow starts once);
    `env` is applied over this process's environment for that run (e.g. its connections)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.execution_time import supervisor

    supervisor.run_task_in_process = _run_supervised
    dags = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags
    base_env = dict(os.environ)
    results = []
    for spec in runs:
        os.environ.clear()
        os.environ.update({**base_env, **spec.get("env", {})})
        run = dags[spec["dag_id"]].test(run_conf=spec.get("conf"))
        results.append(f"RESULT {run.state} {run.run_id}")
        print(results[-1], flush=True)
    return results


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
