#!/usr/bin/env bash
# Install docker-compose v1.29.2 into its own venv (.venv-compose/) so `docker-compose config` can validate
# docker-compose.yaml without a Docker engine. It needs PyYAML 5.4.1, which has no wheel for current Pythons and
# must be built with Cython < 3, so it cannot share the main venv (Airflow wants PyYAML 6).
# Idempotent: does nothing when .venv-compose/bin/docker-compose already exists.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${COMPOSE_VENV:-.venv-compose}
PYTHON=${PYTHON:-python3}

if [ -x "$VENV/bin/docker-compose" ]; then
    exit 0
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "cython<3" wheel setuptools
"$VENV/bin/pip" install --quiet --no-build-isolation "pyyaml==5.4.1"
"$VENV/bin/pip" install --quiet docker-compose==1.29.2
"$VENV/bin/docker-compose" version
