"""SignalRoom's data loads: dlt sources, the registry that names them, and their orchestration.

Import direction: dags -> orchestration -> registry/pipeline/checks; pipeline -> registry ->
sources (imported lazily by name). Sources never import Airflow.
"""
