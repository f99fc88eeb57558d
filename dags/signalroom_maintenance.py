"""Airflow DAG `signalroom_maintenance` (manual trigger only): pending load packages and the
incremental state of one registered pipeline, for the on-call.

Thin on purpose: built in signalroom.orchestration.maintenance; no dlt import here.
"""

from signalroom.orchestration.maintenance import build_maintenance_dag

dag = build_maintenance_dag()
