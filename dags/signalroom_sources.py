"""Airflow DAGs: one per source in the SignalRoom registry (include/signalroom/registry.py), and
the intraday DAG of each source with an intraday schedule (`signalroom_<source>_intraday`).

Thin on purpose: the factory builds every DAG from plain registry data; no dlt import here.
"""

import runpy
from pathlib import Path

# this bundle version's include/ first on the import path: include/bundle_path.py
runpy.run_path(str(Path(__file__).resolve().parent.parent / "include" / "bundle_path.py"))

from signalroom.orchestration.factory import build_all_dags  # noqa: E402
from signalroom.orchestration.intraday import build_all_intraday_dags  # noqa: E402

globals().update(build_all_dags())
globals().update(build_all_intraday_dags())
