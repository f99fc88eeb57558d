"""Airflow DAGs of the reporting models (registry MODELS): `signalroom_daily_performance`,
scheduled on the assets of the tables it reads, not on a clock.

Thin on purpose: built in signalroom.orchestration.reporting; no connection read here.
"""

import runpy
from pathlib import Path

# this bundle version's include/ first on the import path: include/bundle_path.py
runpy.run_path(str(Path(__file__).resolve().parent.parent / "include" / "bundle_path.py"))

from signalroom.orchestration.reporting import build_all_model_dags  # noqa: E402

globals().update(build_all_model_dags())
