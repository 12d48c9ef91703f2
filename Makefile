# Two entry points: `make demo` runs the warehouse DAG against the sandboxes; `make test` runs every test:
# `test-airflow3` (everything, on Airflow 3) and `test-airflow2` (unit, sandbox, dag.test() and CLI suites on
# Airflow 2.11, in a second venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AF2_VENV ?= .venv-af2
AF2_BIN := $(AF2_VENV)/bin
AF2_STAMP := $(AF2_VENV)/.installed

.PHONY: demo test test-airflow3 test-airflow2 install clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

$(AF2_STAMP): setup.cfg pyproject.toml
	test -x $(AF2_BIN)/python || $(PYTHON) -m venv $(AF2_VENV)
	$(AF2_BIN)/pip install --quiet --upgrade pip
	$(AF2_BIN)/pip install --quiet -e ".[test]" "apache-airflow==2.11.*"
	touch $(AF2_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m jikeyun_kingdee.demo

test: test-airflow3 test-airflow2

test-airflow3: $(STAMP)
	bash tools/install-compose.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The real deployment (Celery, PostgreSQL, REST API) and its compose file are tested on Airflow 3 only.
test-airflow2: $(AF2_STAMP)
	$(AF2_BIN)/python -m pytest --ignore=tests/deployment --ignore=tests/packaging/test_compose.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(AF2_VENV) .demo .pytest_cache
