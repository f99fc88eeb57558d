# SignalRoom Airflow bundle. `make demo` and `make test` are the two commands (README).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# No PYTHONPATH: Airflow imports the package through the DAG files (include/bundle_path.py),
# the harness (tools/, tests/) through tools/localenv.py, as in any Airflow the bundle runs in.
export AIRFLOW_HOME ?= $(CURDIR)/.airflow

# the layer contracts of pyproject.toml ([tool.importlinter]); the plugin package lives in plugins/
LINT_IMPORTS := PYTHONPATH=$(CURDIR)/include:$(CURDIR)/plugins $(VENV)/bin/lint-imports --no-cache

.PHONY: bootstrap demo airflow test lint bench lock clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	$(PY) -m tools.demo

# the demo's Airflow as services with its UI until Ctrl-C (tools/airflow_local.py)
airflow: bootstrap
	$(PY) -m tools.airflow_local

test: bootstrap
	@scripts/system-deps.sh
	$(VENV)/bin/ruff check --select AIR dags plugins include
	$(LINT_IMPORTS)
	$(PY) -m pytest

lint: bootstrap
	$(VENV)/bin/ruff check dags plugins include tools tests bench
	$(LINT_IMPORTS)

bench: bootstrap
	@failed=""; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "targets missed:$$failed"; exit 1; fi

# the runtime lock first, then the dev lock constrained by it (same version of every shared package)
lock:
	$(VENV)/bin/uv pip compile requirements.txt --python-version 3.11 -o requirements.lock
	$(VENV)/bin/uv pip compile requirements-dev.txt --python-version 3.11 -c requirements.lock -o requirements-dev.lock

clean:
	rm -rf .airflow .dlt_data .demo
