"""Airflow DAGs of the reporting models (registry MODELS): `signalroom_daily_performance`,
scheduled on the assets of the tables it reads, not on a clock.

Thin on purpose: built in signalroom.orchestration.reporting; no connection read here.
"""

from signalroom.orchestration.reporting import build_all_model_dags

globals().update(build_all_model_dags())
