# Airflow image with this package installed: hooks, the jikeyun/kingdee connection types and the sandboxes.
# dags/ and include/ are mounted by docker-compose.yaml, not baked in.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# .dockerignore lets only setup.cfg, pyproject.toml, README.md and plugins/ into the build context.
COPY --chown=airflow:0 . /opt/airflow-jikeyun-kingdee/
# Pin the image's own Airflow so resolving this package's ranges never up- or downgrades it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow-jikeyun-kingdee
