"""SignalRoom's data loads: dlt sources, the registry that names them, and their orchestration.

Layers (import-linter contracts in pyproject.toml; docs/ARCHITECTURE.md): base <- registry <-
sources; core (checks, hints, logs, destinations, dltenv, state, pipeline, maintenance) <-
orchestration <- plugin, CLI, deploy, dags. Sources never import Airflow; the core finds them
by name through the registry.
"""
