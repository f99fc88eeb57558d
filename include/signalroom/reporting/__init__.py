"""Reporting models built in the warehouse from the loaded tables (no Airflow, no dlt).

`seed` reads and validates the affiliate mapping kept in `seeds/`; `sql` holds the
daily_performance view and its checks as SQL both Postgres and DuckDB run. The DAG that runs
them: signalroom.orchestration.reporting. The rules: docs/REPORTING.md.
"""
