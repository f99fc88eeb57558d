"""Typed contracts every layer shares: the load window, the run plan, the load summary and
the names of DAGs and pipelines.

Plain dataclasses with `to_dict`/`from_dict` (XCom stays JSON); no dlt, no Airflow import,
so sources, the core and the orchestration can all depend on this package and nothing here
depends back (import-linter keeps it so: pyproject.toml).
"""
