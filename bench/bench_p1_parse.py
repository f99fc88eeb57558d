"""P1: parse cost of the whole `dags/` folder vs a folder holding one trivial DAG.

Each sample is the same process type for both folders: a fresh interpreter that imports
Airflow, fills a `DagBag` from the folder and serializes every DAG (what a DAG-processor
parse does), timed from spawn to exit. Samples alternate between the two folders; the ratio
of the medians is the P1 figure (target <= 1.5: importing dlt at parse time alone costs more).
The in-process DagBag time of each folder is printed too, as the absolute increment.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]
from tools import localenv  # noqa: E402

TRIVIAL_DAG = '''
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="trivial", start_date=datetime(2025, 1, 1), schedule=None):
    EmptyOperator(task_id="noop")
'''

SAMPLE = '''
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
for dag in bag.dags.values():
    DagSerialization.to_dict(dag)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "dags": len(bag.dags), "errors": len(bag.import_errors),
                  "dlt_imported": "dlt" in sys.modules}))
'''


def sample(folder: Path) -> dict:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", SAMPLE, str(folder)], capture_output=True, text=True, check=True, env=os.environ.copy()
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def main(rounds: int = 7) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-p1-"))
    localenv.apply(tmp / "airflow", tmp / "dlt")
    trivial = tmp / "trivial_dags"
    trivial.mkdir()
    (trivial / "trivial_dag.py").write_text(TRIVIAL_DAG)
    bundle, base = [], []
    for _ in range(rounds):
        base.append(sample(trivial))
        bundle.append(sample(ROOT / "dags"))
    def med(samples: list[dict], key: str) -> float:
        return statistics.median(s[key] for s in samples)

    bp, tp = med(bundle, "process_seconds"), med(base, "process_seconds")
    b, t = med(bundle, "seconds"), med(base, "seconds")
    print(f"P1 bundle dags/: {bundle[0]['dags']} DAGs, {bundle[0]['errors']} import errors, "
          f"dlt imported at parse: {bundle[0]['dlt_imported']}")
    print(f"P1 parse process (spawn..exit), median of {rounds}: bundle {bp:.2f} s, trivial {tp:.2f} s")
    print(f"P1 in-process DagBag+serialize: bundle {b * 1000:.0f} ms, trivial {t * 1000:.0f} ms "
          f"(+{(b - t) * 1000:.0f} ms for the bundle)")
    print(f"P1 ratio bundle/trivial = {bp / tp:.2f} (target <= 1.5)")
    if bundle[0]["errors"] or bundle[0]["dlt_imported"]:
        raise SystemExit("P1: the bundle has import errors or imports dlt at parse time")


if __name__ == "__main__":
    main()
