"""Turns the registry into Airflow DAGs. Knows no particular source: everything it needs
comes from a `SourceSpec`. Parse-time modules here import Airflow's SDK, never dlt."""
