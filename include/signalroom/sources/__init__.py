"""dlt sources, one package each (`__init__.py` with the @dlt.source, `helpers.py`, `settings.py`).

Pure dlt: nothing here imports Airflow. Each resource's table, keys and write disposition come
from the registry's contract; the registry names the sources and nothing imports them eagerly.
"""
