"""Airflow DAGs: one per source in the SignalRoom registry (include/signalroom/registry.py).

Thin on purpose: the factory builds every DAG from plain registry data; no dlt import here.
"""

from signalroom.orchestration.factory import build_all_dags

globals().update(build_all_dags())
