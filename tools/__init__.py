"""Local harness shared by the demo, the tests and the benchmarks: environment for a
project-local Airflow, and stand-ins for the external systems (never imported by DAGs)."""
