"""P3: what Airflow adds to a load. The s3_exports DAG run by Airflow (`airflow dags test`: a
real DAG run, its tasks executed by Airflow's task runner) against the bare runner
(`python -m signalroom run`) on the same data: P2's ten files, 200k rows x 129 columns.

Per round, interleaved, each in its own fresh process, database and dlt working folder:

- bare: `python -m signalroom run s3_exports --resources orders_create` (process wall time:
  interpreter, imports, the load);
- DAG: `airflow dags test signalroom_s3_exports -c '{"resources": ["orders_create"]}'`; the
  `orders_create.load` task's duration as Airflow recorded it (target <= 1.3x the bare runner;
  both import dlt, as a task process of a real executor does);
- the same DAG again with no new data: the whole run's fixed cost (plan, three loads that
  find nothing, their checks, the DAG checks, scheduling) as task seconds per resource, and
  the bare runner's no-data run of all three resources beside it.

    .venv/bin/python bench/bench_p3_orchestration.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from _s3_bench import PREFIX, postgres_server, private_env

TARGET = 1.3
DAG_ID = "signalroom_s3_exports"


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, str]:
    """(wall seconds, stdout) of a command in a fresh process; stderr and stdout are kept in `log`."""
    started = time.perf_counter()
    with log.open("w") as err:
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    seconds = time.perf_counter() - started
    with log.open("a") as out:
        out.write(done.stdout)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[2:5])} failed ({done.returncode}): see {log}")
    return seconds, done.stdout


STARTUP = r"""
import json, runpy, sys, time
t0 = time.process_time()
import airflow.sdk  # noqa: F401 - every task process has this
t1 = time.process_time()
from airflow.sdk.plugins_manager import integrate_macros_plugins
integrate_macros_plugins()  # what a task does for its template context: imports every plugin
t2 = time.process_time()
runpy.run_path(sys.argv[1])  # the DAG file, parsed again by each task process
t3 = time.process_time()
print(json.dumps({"airflow": t1 - t0, "plugins": t2 - t1, "dag_file": t3 - t2}))
"""


def task_startup(env: dict[str, str], dag_file: Path) -> dict[str, float]:
    """CPU seconds a fresh task process spends before its body: Airflow's SDK, the plugins, the DAG file."""
    out = subprocess.run([sys.executable, "-c", STARTUP, str(dag_file)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def last_run_tasks(db: Path) -> dict[str, tuple[str, float]]:
    """task_id -> (state, duration seconds) of the DAG's newest run, as Airflow recorded them."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT task_id, state, duration FROM task_instance WHERE dag_id = ? AND run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (DAG_ID, DAG_ID),
        ).fetchall()
    return {task: (state, duration or 0.0) for task, state, duration in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    tmp = private_env("p3")
    # `python -m signalroom` (the bare runner) needs include/ on its path; the Airflow processes
    # do not (their DAG files put it first) and get the same environment for a fair comparison
    from tools.localenv import cli_env

    base_env = cli_env()
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    from signalroom.registry import REGISTRY
    from tools.localenv import airflow_connection_env
    from tools.standins.exports import DEFAULT_PREFIXES, write_exports

    yesterday = datetime.now(ZoneInfo("America/New_York")).date() - timedelta(days=1)
    days = [yesterday - timedelta(days=i) for i in range(args.files)][::-1]
    write_exports(tmp / "exports", days, args.rows // args.files, prefixes=(PREFIX,))
    for prefix in DEFAULT_PREFIXES:  # the other resources' prefixes exist, empty (a folder on file://)
        (tmp / "exports" / prefix).mkdir(parents=True, exist_ok=True)
    bucket = (tmp / "exports").as_uri()
    resources = list(REGISTRY["s3_exports"].resource_names)
    print(f"P3: {args.files} files, {args.rows} rows under {PREFIX}; DAG {DAG_ID} with {len(resources)} resources")

    bare_s, bare_load_s, task_s, dag_s, idle_dag_s, idle_tasks_s, idle_bare_s = [], [], [], [], [], [], []
    with postgres_server() as (new_database, _cpu):

        def env_for(name: str) -> dict[str, str]:
            url = new_database(name)
            env = {**base_env, "DLT_DATA_DIR": str(tmp / name), "SIGNALROOM_DESTINATION": "postgres",
                   "DESTINATION__POSTGRES__CREDENTIALS": url, "SOURCES__S3_EXPORTS__BUCKET_URL": bucket}
            host_port, database = url.split("@", 1)[1].split("/", 1)
            host, port = host_port.split(":")
            env.update(airflow_connection_env("signalroom_warehouse", {
                "conn_type": "postgres", "host": host, "port": int(port), "login": url.split("//")[1].split(":")[0],
                "password": "trust", "schema": database}))
            env.update(airflow_connection_env("signalroom_s3", {"conn_type": "aws", "extra": {"bucket_url": bucket}}))
            return env

        cli = [sys.executable, "-m", "signalroom", "run", "s3_exports"]
        dag = [sys.executable, "-m", "airflow", "dags", "test", DAG_ID]
        # the load run narrows to orders_create like the bare runner: the other loads skip before
        # importing dlt, so this task pays the imports as the bare runner's process does
        dag_load = dag + ["-c", json.dumps({"resources": ["orders_create"]})]
        db = Path(base_env["AIRFLOW_HOME"]) / "airflow.db"
        for n in range(1, args.rounds + 1):
            bare_env, dag_env = env_for(f"bare{n}"), env_for(f"dag{n}")

            def bare(n: int = n, env: dict = bare_env) -> None:
                seconds, out = timed(cli + ["--resources", "orders_create"], env, tmp / f"bare{n}.log")
                bare_s.append(seconds)
                bare_load_s.append(json.loads(out)[0]["seconds"])  # run_load's own time, inside the process
                idle_bare_s.append(timed(cli, env, tmp / f"bare{n}-idle.log")[0])

            def airflow(n: int = n, env: dict = dag_env) -> None:
                dag_s.append(timed(dag_load, env, tmp / f"dag{n}.log")[0])
                tasks = last_run_tasks(db)
                failed = {t: s for t, (s, _) in tasks.items() if s not in ("success", "skipped")}
                if failed:
                    raise SystemExit(f"DAG run: tasks not successful {failed}; see {tmp / f'dag{n}.log'}")
                task_s.append(tasks["orders_create.load"][1])
                idle_dag_s.append(timed(dag, env, tmp / f"dag{n}-idle.log")[0])
                idle_tasks_s.append(sum(d for _, d in last_run_tasks(db).values()))

            for step in (bare, airflow) if n % 2 else (airflow, bare):
                step()
            print(f"  round {n}: bare {bare_s[-1]:5.2f} s (run_load {bare_load_s[-1]:5.2f} s) | load task {task_s[-1]:5.2f} s (DAG run {dag_s[-1]:5.1f} s) "
                  f"| x{task_s[-1] / bare_s[-1]:.2f} | no new data: DAG run {idle_dag_s[-1]:5.1f} s, tasks "
                  f"{idle_tasks_s[-1]:5.1f} s; bare {idle_bare_s[-1]:4.1f} s", flush=True)
        tasks = last_run_tasks(db)
        dag_file = Path(__file__).resolve().parent.parent / "dags" / "signalroom_sources.py"
        startups = [task_startup(bare_env, dag_file) for _ in range(args.rounds)]

    startup = {k: statistics.median(s[k] for s in startups) for k in startups[0]}
    print(f"  every task process (a real executor starts one per task), CPU s before the task body: Airflow SDK "
          f"{startup['airflow']:.2f}, plugins {startup['plugins']:.2f}, DAG file {startup['dag_file']:.2f}; "
          f"x {len(tasks)} tasks per run")
    ratio = statistics.median(t / b for t, b in zip(task_s, bare_s, strict=True))
    inner = statistics.median(t / b for t, b in zip(task_s, bare_load_s, strict=True))
    idle = statistics.median(idle_tasks_s)
    print("  no-new-data run, task seconds (last round): " + ", ".join(
        f"{task} {duration:.1f}" for task, (_, duration) in sorted(tasks.items(), key=lambda kv: -kv[1][1])))
    print(f"P3 fixed cost of a DAG run with no new data: {idle:.1f} task-seconds = {idle / len(resources):.1f} s per "
          f"resource ({len(tasks)} tasks; DAG run wall {statistics.median(idle_dag_s):.1f} s; the bare runner's "
          f"no-data run of the {len(resources)} resources {statistics.median(idle_bare_s):.1f} s)")
    ok = ratio <= TARGET
    print(f"P3 ratio load task/bare runner = {ratio:.2f}, median of {len(task_s)} (target <= {TARGET}) "
          f"{'PASS' if ok else 'FAIL'}")
    print(f"P3 ratio load task/run_load inside the bare runner (its imports and start-up left out) = {inner:.2f} (median)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
