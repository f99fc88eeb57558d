"""Deployment tooling: applies `airflow_settings.yaml` (connections, variables, pools) to an
Airflow metadata database. Run by compose's init service and the demo
(`python -m signalroom.deploy.airflow_settings`); no DAG or task imports it."""
