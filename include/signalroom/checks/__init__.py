"""Post-load health checks on dlt's metadata (`_dlt_loads`, `_dlt_pipeline_state`, `_dlt_load_id`).

Pure Python, no Airflow import: the SQL (one file per check in `sql/`), the run's scope taken
from the load summary (`scope.py`), identifier rules (`identifiers.py`) and the few places where
Postgres and DuckDB differ (`dialects.py`). The Airflow operators that run them are in
`signalroom.orchestration.check_operators`; the DAG wiring in `signalroom.orchestration.checks`.

Severity (what fails the run, what only logs) is decided per check in `catalog.py`.
"""
