# The verbs people type. Every target creates the virtualenv it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROTO  := protos/fleet/orchestrator/v1/orchestrator.proto
GEN    := services/fleet/orchestrator/v1

.PHONY: install protos fmt lint typecheck test test-fast bench bench-quality demo image clean

$(BIN)/orchestrator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev,local-model,bench]'
	@touch $@

install: $(BIN)/orchestrator

protos: install
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=services --grpc_python_out=services --pyi_out=services $(PROTO)

fmt: install
	$(BIN)/ruff format services tests bench scripts
	$(BIN)/ruff check --fix services tests bench scripts

lint: install
	$(BIN)/ruff format --check services tests bench scripts
	$(BIN)/ruff check services tests bench scripts

typecheck: install
	$(BIN)/mypy

test: install
	$(BIN)/pytest -q --durations=15

test-fast: install
	$(BIN)/pytest -q -m unit tests/unit

# bench/web.py needs Debian's chromium and chromedriver (as the browser tests do); about 75 s on 2 loaded cores.
bench: install
	$(BIN)/python bench/deliberation.py --out bench/results/deliberation.json
	$(BIN)/python bench/concurrency.py --out bench/results/concurrency.json
	$(BIN)/python bench/web.py --out bench/results/web.json

# HumanEval through the service's gRPC API: single call, N samples and the council, side by side (README "Quality").
# Minutes per problem on 2 cores: QUALITY_ARGS="--limit 10" for a short run, "--resume" to carry on.
QUALITY_ARGS ?= --slice dev
bench-quality: install
	$(BIN)/python bench/quality.py $(QUALITY_ARGS)

demo: install
	$(BIN)/orchestrator demo

# The service image (docs/deploy.md); needs a Docker engine. Tagged with the project version the manifests use.
IMAGE   ?= fleet-orchestrator
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	docker build -t $(IMAGE):$(VERSION) .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
