"""Test helpers (no tests here): `db` (the one Postgres helper: query, create/drop database,
warehouse connection, stored dlt state), `api` (source-test destinations and loads),
`dagrun` (whole-DAG scenarios), `maintenance` (RedTrack loads for the maintenance, state and
plugin tests), `checks_source` (a small source for the health-check tests), `headless`
(Chromium), `supervised` (a DAG run under Airflow's task supervisor, run as a script),
`celery` (the distributed stack: Redis, api-server, scheduler, dag-processor, two Celery
workers; `crashpoints/` is the dlt step barrier its workers load)."""
