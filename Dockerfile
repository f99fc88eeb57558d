# The SignalRoom Airflow image: the official Airflow 3.3.2 image plus exactly the bundle's lock.
# The repository is mounted by docker-compose.yaml as a DAG bundle, not baked in, so code edits
# need no rebuild; rebuild after changing requirements.lock (`docker compose build`). No
# PYTHONPATH: each DAG file puts its bundle's include/ on the import path.
FROM apache/airflow:3.3.2-python3.11

# Named volumes copy ownership from the image on first use: the shared dlt working folder and
# the config folder must exist and belong to the airflow user before a volume is mounted there.
USER root
RUN mkdir -p /opt/airflow/dlt_data /opt/airflow/config \
    && chown -R airflow:0 /opt/airflow/dlt_data /opt/airflow/config \
    && chmod -R g+rwX /opt/airflow/dlt_data /opt/airflow/config
USER airflow

# uv ships in the official image; pinning apache-airflow keeps the base image's Airflow in place.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN uv pip install --no-cache "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.lock

ENV DLT_DATA_DIR=/opt/airflow/dlt_data
