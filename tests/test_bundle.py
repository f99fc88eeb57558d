"""The repository deployed as an Airflow 3 DAG bundle, with PYTHONPATH unset everywhere.

A GitDagBundle of a local clone and a LocalDagBundle of the same tracked files: the
dag-processor parses every DAG, nothing but dags/*.py, no import error. Then real services
(api-server, dag-processor, scheduler with LocalExecutor) run a task from the Git bundle; it
imports the package of its own bundle version, and after a commit that changes include/, the
new version is parsed and its task runs the new code (include/bundle_path.py)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from tests.support.bundles import (
    airflow,
    bundle_env,
    bundle_repo,
    git,
    git_bundle,
    local_bundle,
    query,
)
from tools.airflow_services import AirflowServices, wait_http
from tools.standins.postgres import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return bundle_repo(tmp_path_factory.mktemp("bundle") / "signalroom")


@pytest.fixture(scope="module")
def expected_dag_ids(airflow_db) -> set[str]:
    """What the working tree's dags/ define, parsed in this (PYTHONPATH-free or not) process."""
    from airflow.dag_processing.dagbag import DagBag

    from tools.localenv import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return set(bag.dag_ids)


def _parse_once(tmp_path: Path, bundle: dict) -> tuple[dict, str]:
    empty_plugins = tmp_path / "plugins"
    empty_plugins.mkdir()
    env = bundle_env(tmp_path / "home", [bundle], plugins=empty_plugins)
    airflow(env, "db", "migrate")
    log = airflow(env, "dag-processor", "--num-runs", "1")
    return env, log


@pytest.mark.parametrize("kind", ["git", "local"])
def test_dag_processor_parses_every_dag_and_nothing_else(tmp_path, repo, expected_dag_ids, kind):
    name = f"signalroom_{kind}"
    bundle = git_bundle(name, repo) if kind == "git" else local_bundle(name, repo)
    env, log = _parse_once(tmp_path, bundle)

    dag_files = sorted(p.relative_to(repo).as_posix() for p in (repo / "dags").glob("*.py"))
    found = re.findall(rf"Found (\d+) files for bundle {name}\b", log)
    assert found and {int(n) for n in found} == {len(dag_files)}, log[-3000:]
    assert query(env, "select filename, stacktrace from import_error") == []
    rows = query(env, "select dag_id, relative_fileloc, bundle_version from dag where bundle_name = ?", name)
    assert {dag_id for dag_id, _, _ in rows} == expected_dag_ids
    assert {fileloc for _, fileloc, _ in rows} <= set(dag_files)
    if kind == "git":
        assert {version for _, _, version in rows} == {git(repo, "rev-parse", "HEAD")}


# ---- a task from the Git bundle, before and after a commit changing include/

DAG_ID = "signalroom_everflow"
PLAN_LOG = 'log.info("run plan: %s"'


def _wait(what: str, check, services: AirflowServices, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        value = check()
        if value:
            return value
        time.sleep(2)
    logs = "\n".join(f"--- {n}\n{services.log(n)[-2500:]}" for n in services.procs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _finished_state(env: dict, run_id: str, task_id: str) -> str | None:
    rows = query(env, "select state from task_instance where dag_id = ? and run_id = ? and task_id = ?",
                 DAG_ID, run_id, task_id)
    state = rows[0][0] if rows else None
    return state if state in ("success", "failed", "upstream_failed") else None


def _run_plan(env: dict, services: AirflowServices, run_id: str) -> str:
    """Trigger a dry run, wait for its `plan` task, return that task's log."""
    airflow(env, "dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", '{"dry_run": true}')
    state = _wait(f"{run_id}.plan to finish", lambda: _finished_state(env, run_id, "plan"), services)
    log_file = Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]) / f"dag_id={DAG_ID}/run_id={run_id}/task_id=plan/attempt=1.log"
    text = log_file.read_text()
    assert state == "success", text[-3000:]
    return text


def _parsed_version(env: dict, name: str) -> str | None:
    rows = query(env, "select bundle_version from dag where dag_id = ? and bundle_name = ?", DAG_ID, name)
    return rows[0][0] if rows else None


def test_task_runs_the_code_of_its_own_bundle_version(tmp_path, repo):
    from tools.localenv import ROOT

    name = "signalroom_git_run"
    # the plugin of the working checkout, as a deployment installs it beside the bundle: the
    # task must still import the package of the bundle version it runs
    env = bundle_env(tmp_path / "home", [git_bundle(name, repo)], plugins=ROOT / "plugins")
    api_port = free_port()
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs this test triggers
    })
    airflow(env, "db", "migrate")
    first = git(repo, "rev-parse", "HEAD")
    versions = Path(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH"]) / name / "versions"

    with AirflowServices(env, tmp_path / "services") as services:
        api = services.start("api-server", "api-server", "--apps", "execution", "-H", "127.0.0.1",
                             "-p", str(api_port))
        services.start("dag-processor", "dag-processor")
        wait_http(f"http://127.0.0.1:{api_port}/execution/health", 180, api)
        services.start("scheduler", "scheduler")
        _wait("the first version parsed", lambda: _parsed_version(env, name) == first, services)
        airflow(env, "dags", "unpause", DAG_ID)

        log1 = _run_plan(env, services, "bundle_v1")
        assert f"signalroom package: {versions / first / 'include' / 'signalroom'}" in log1

        marker = f"run plan {uuid.uuid4().hex[:8]}"
        tasks_py = repo / "include" / "signalroom" / "orchestration" / "tasks.py"
        source = tasks_py.read_text()
        assert PLAN_LOG in source
        tasks_py.write_text(source.replace(PLAN_LOG, f'log.info("{marker}: %s"'))
        git(repo, "commit", "-q", "-am", "include/ changes")
        second = git(repo, "rev-parse", "HEAD")
        _wait("the new version parsed", lambda: _parsed_version(env, name) == second, services)

        log2 = _run_plan(env, services, "bundle_v2")
        assert f"signalroom package: {versions / second / 'include' / 'signalroom'}" in log2
        assert marker in log2 and marker not in log1
        runs = dict(query(env, "select run_id, bundle_version from dag_run where dag_id = ?", DAG_ID))
        assert runs == {"bundle_v1": first, "bundle_v2": second}
