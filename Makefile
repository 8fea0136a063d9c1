# Every operator action. `make run` and `make test` set up the virtualenv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run run-bg stop status demo migrate test test-unit test-integration test-e2e lint typecheck \
        check bench bench-relay bench-consumer bench-registry outbox-status registry-check compose-config clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[embedded,dev]'
	touch $(STAMP)

venv: $(STAMP) ## create or update the virtualenv (pinned by constraints.txt)

run: $(STAMP) ## run the whole system on the embedded stack (Ctrl-C stops everything)
	$(PY) -m services.stack run

run-bg: $(STAMP) ## the same, in the background; `make stop` stops it
	$(PY) -m services.stack run-bg

stop: $(STAMP) ## stop a background stack
	$(PY) -m services.stack stop

status: $(STAMP) ## is a stack running, and where
	$(PY) -m services.stack status

demo: $(STAMP) ## drive the event path through the APIs of a running stack and time it
	$(PY) -m services.demo

migrate: $(STAMP) ## create the databases and run Alembic to head (DATABASE_URL)
	$(PY) -m eventbus.migrate

outbox-status: $(STAMP) ## backlog, oldest age, rate and relays of each outbox (running stack)
	$(PY) -m eventbus.outbox.cli status

test: $(STAMP) ## all three tiers: unit, integration, e2e
	$(PY) -m pytest tests/unit tests/integration tests/e2e $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

typecheck: $(STAMP) ## mypy (strict)
	$(VENV)/bin/mypy eventbus registry services

check: lint typecheck ## lint and typecheck

compose-config: ## validate docker-compose.yml (needs the docker CLI, not an engine)
	docker compose config -q

clean: ## remove the embedded stack's data (databases, logs)
	rm -rf .data
