# MPR: the index of commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
PYTEST_ARGS ?=
COMPOSE := docker compose -f deploy/compose.yml --env-file $(or $(wildcard .env),deploy/.env.example)
N ?= 2
BENCH ?=
TRANSCODERS ?= 1
export TRANSCODERS

.PHONY: help install infra test-infra status dev test test-unit test-service test-integration test-e2e test-cluster \
        lint format bench faults docs screenshot up down logs scale migrate clean

help: ## List the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

install: ## Install uv, system packages and the Python workspace
	@bash scripts/install.sh
	@$(UV) sync --all-packages --frozen

infra: install ## Start RabbitMQ, PostgreSQL and the S3 server (idempotent)
	@bash scripts/infra.sh up

status: ## Show what runs
	@bash scripts/infra.sh status

migrate: ## Apply database migrations
	@$(UV) run python -m mpr_shared.db upgrade

dev: infra ## Run all four services in the foreground (TRANSCODERS=3 for three replicas)
	@bash scripts/dev.sh

# The tests use the default local endpoints (or MPR_TEST_*), never what the shell exports for
# `make dev`, so their infrastructure is started on the defaults.
test-infra: install ## Start the infrastructure the tests use (default endpoints)
	@bash scripts/infra.sh up --defaults

test: test-infra ## Run every test tier (unit, service, integration, e2e)
	@$(UV) run pytest $(PYTEST_ARGS)

test-cluster: test-infra ## 200 jobs on a 3-node RabbitMQ cluster (ports 5701-5703) losing a node (~2 min)
	@$(UV) run pytest -m cluster $(PYTEST_ARGS)

test-unit: ## Unit tests only (no I/O)
	@$(UV) run pytest -m unit $(PYTEST_ARGS)

test-service: ## Service tests (in-memory broker)
	@$(UV) run pytest -m service $(PYTEST_ARGS)

test-integration: test-infra ## Integration tests (real RabbitMQ, S3, database, FFmpeg)
	@$(UV) run pytest -m integration $(PYTEST_ARGS)

test-e2e: test-infra ## End-to-end tests (all services as processes)
	@$(UV) run pytest -m e2e $(PYTEST_ARGS)

lint: ## Ruff lint and format check, mypy (strict on shared/)
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .
	@$(UV) run mypy

format: ## Apply ruff fixes and formatting
	@$(UV) run ruff check --fix .
	@$(UV) run ruff format .

bench: infra ## Benchmarks, side by side with bare tools and a Celery baseline (one: make bench BENCH=celery)
	@$(UV) run python -m bench $(BENCH)

screenshot: test-infra ## Retake docs/dashboard.png (the README's) with the dashboard's browser test
	@MPR_TEST_SCREENSHOT=docs/dashboard.png $(UV) run pytest tests/e2e/test_dashboard.py $(PYTEST_ARGS)

# Its own RabbitMQ node (:5692), S3 server (:9190) and database beside `make infra`'s, so
# breaking them disturbs nobody: bench/README.md, "Fault suite".
faults: infra ## Fault suite: kill -9, RabbitMQ restart, S3 outage against make dev (FAULT_KILLS=20 FAULT_JOBS=200)
	@$(UV) run python -m bench.faults $(FAULTS)

docs: ## Generate the AsyncAPI documents under docs/
	@$(UV) run python -m scripts.asyncapi

up: ## Start the Docker Compose stack (needs a Docker engine)
	$(COMPOSE) up -d --build

down: ## Stop the compose stack (if a Docker engine runs) and what `make infra` started
	@if docker info >/dev/null 2>&1; then $(COMPOSE) down; fi
	@bash scripts/infra.sh down

logs: ## Follow the compose stack's logs
	$(COMPOSE) logs -f

scale: ## Scale compose transcoders: make scale N=4
	$(COMPOSE) up -d --no-recreate --scale transcoder=$(N)

clean: ## Remove local state (var/)
	rm -rf var/
