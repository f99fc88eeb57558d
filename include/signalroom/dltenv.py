"""The process environment dlt needs, set before dlt is first imported (by a load, the
state reader or the maintenance code alike)."""

from __future__ import annotations

import os

from signalroom.destinations import data_dir
from signalroom.logs import route_dlt_logs


def prepare_dlt_env() -> None:
    """Environment dlt needs under Airflow; set before dlt is imported."""
    # dlt's Airflow secrets provider makes ~300 Variable lookups per pipeline: credentials
    # are passed explicitly instead.
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "INFO")
    os.environ.setdefault("DLT_DATA_DIR", str(data_dir()))
    # Load files are local and short-lived; gzip (level 9) of them took 28 s per 48 MB of
    # export CSV, most of an s3_exports run (bench/bench_p2_s3_load.py).
    os.environ.setdefault("DATA_WRITER__DISABLE_COMPRESSION", "true")
    # Arrow rows (s3_exports) get `_dlt_load_id` as JSON rows do, so checks can join _dlt_loads.
    os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
    route_dlt_logs()  # dlt's stderr lines would be ERROR in Airflow 3 task logs (dlt#4462)
