"""Airflow DAG `signalroom_maintenance` (manual trigger only): pending load packages and the
incremental state of one registered pipeline, for the on-call.

Thin on purpose: built in signalroom.orchestration.maintenance; no dlt import here.
"""

import runpy
from pathlib import Path

# this bundle version's include/ first on the import path: include/bundle_path.py
runpy.run_path(str(Path(__file__).resolve().parent.parent / "include" / "bundle_path.py"))

from signalroom.orchestration.maintenance import build_maintenance_dag  # noqa: E402

dag = build_maintenance_dag()
