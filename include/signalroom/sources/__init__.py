"""dlt sources, one package each (`__init__.py` with the @dlt.source, `helpers.py`, `settings.py`).

Pure dlt: nothing here imports Airflow. The registry names them; nothing imports them eagerly.
"""
