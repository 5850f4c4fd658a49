# deksdenflow — one entry point for every task. Needs only python3, make and git: uv is installed from PyPI
# into .tools/ when it is not on PATH, and every Python dependency comes from uv.lock.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export UV_PYTHON_DOWNLOADS ?= never
# Trust the machine's certificate store (corporate proxies, private mirrors), as pip and git do here.
export UV_SYSTEM_CERTS ?= 1
export UV_NATIVE_TLS ?= 1
RUN := $(UV) run --locked --no-sync
# The pinned agent CLIs (codex, claude) installed by `make agents`.
AGENTS_BIN := $(CURDIR)/services/codex_worker/agents/node_modules/.bin

.PHONY: help install agents browser promtool run demo eval test static test-fast migrate rebuild check fmt fmt-check lint typecheck imports proto proto-check bench clean images image-test image-tools

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found on PATH: installing uv==$(UV_VERSION) from PyPI into .tools/"
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml | $(UV)
	$(UV) sync --locked --all-packages
	@touch $@

install: .venv/.synced ## Install locked dependencies into .venv

# The agent CLIs the codex worker drives (Codex CLI, Claude Code), pinned in package-lock.json. The stamp
# makes `npm ci` (which wipes node_modules) run only when the lock changed or node_modules is missing.
AGENTS := services/codex_worker/agents
$(AGENTS)/node_modules/.stamp: $(AGENTS)/package-lock.json $(AGENTS)/package.json
	npm ci --prefix $(AGENTS) --no-audit --no-fund
	@touch $@

agents: $(AGENTS)/node_modules/.stamp ## Install the pinned agent CLIs (npm ci) into services/codex_worker/agents

run: install ## Start the whole system on embedded NATS + PostgreSQL (data under .deksdenflow/)
	PATH="$(AGENTS_BIN):$$PATH" $(RUN) deksdenflow run

demo: install ## One whole protocol on a sample repo (scripted engine): timeline, branch and PR printed
	PATH="$(AGENTS_BIN):$$PATH" $(RUN) deksdenflow demo

# The evaluation suite (evals/README.md): every task x variant through the whole system on the shipped
# cassettes, scored and compared with the baseline; exit 1 on an unexpected regression. RESCORE=<id>
# scores an older evaluation's stored runs again; LIVE=1 BUDGET_USD=<cap> (with OPENAI_API_KEY and/or
# ANTHROPIC_API_KEY, as the variants' engines need) records new cassettes from the real APIs. EVAL_ARGS passes more options (--variants, --tasks, --max-resolved-drop ...).
eval: install agents ## Evaluate the variants of evals/variants.toml on the shipped cassettes (RESCORE=<id>, LIVE=1)
	$(RUN) python -m evals $(if $(RESCORE),rescore $(RESCORE),$(if $(LIVE),live --budget-usd $(BUDGET_USD),run)) --table .deksdenflow/eval/table.txt $(EVAL_ARGS)

# CI runs `make test` (.ci/run): the fast static gates go first, so a format, lint, type, import-rule or
# contract error fails CI in seconds, before the suite. DEKSDENFLOW_IMAGE_TEST=1 lets tests/deploy build the
# images and run them (about 2 minutes); without it (a plain pytest, make test-fast) that test is deselected.
# The console's browser tests drive Debian's Chromium (Playwright launches it by path, downloads nothing).
CHROMIUM ?= /usr/bin/chromium
browser: ## Install Debian's chromium for the console's browser tests when it is missing (apt-get, as root)
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
		echo "chromium not found: installing Debian's chromium (apt-get)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: install agents browser promtool image-tools static ## Static gates (format, lint, types, imports, contracts), then the suite against real NATS, PostgreSQL and git
	DEKSDENFLOW_IMAGE_TEST=1 $(RUN) pytest --durations=25

# promtool (Debian's prometheus package) checks every service's /metrics and unit-tests the alert rules in
# deploy/observability/. CI runs as root on a clean machine: it is installed when missing.
promtool:
	@command -v promtool >/dev/null || { \
	  echo "promtool not found: installing Debian's prometheus package"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

static: fmt-check lint typecheck imports proto-check ## The static gates alone: format, lint, strict types, import rules, contracts

migrate: install ## Migrate the read model of the running system (make run), or of DEKSDENFLOW_DB_URL
	$(RUN) deksdenflow projector migrate

rebuild: install ## Rebuild the read model from the log and swap it in, while the system keeps serving
	$(RUN) deksdenflow projector rebuild

test-fast: install ## The test suite without the slow whole-process tests
	$(RUN) pytest -m "not slow"

bench: install browser ## Benchmarks (embedded servers unless DEKSDENFLOW_BENCH_NATS_URL/_DB_URL); they print their figures
	$(RUN) python -m bench.projector_catchup
	$(RUN) python -m bench.api_commands
	$(RUN) python -m bench.decisions
	$(RUN) python -m bench.reads
	$(RUN) python -m bench.sse_fanout
	$(RUN) python -m bench.orchestration
	$(RUN) python -m bench.autopilot_scale
	$(RUN) python -m bench.footprint
	$(RUN) python -m bench.console

fmt: install ## Format the code
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

fmt-check: install
	$(RUN) ruff format --check .

lint: install
	$(RUN) ruff check .

typecheck: install
	$(RUN) mypy libs/*/src services/*/src tests bench evals proto/codegen

imports: install
	$(RUN) lint-imports

proto: install ## Regenerate the Python bindings from proto/
	$(RUN) bash proto/codegen/generate.sh

proto-check: install ## Lint contracts, fail on drift of the bindings and on breaking changes
	$(RUN) bash proto/codegen/check.sh

# Container images (deploy/images): docker, podman or buildah, whichever works here (deploy/images/build.sh).
images: ## Build the API and workers images (IMAGE_REPOSITORY, IMAGE_TAG, BASE_IMAGE, BUILDER)
	bash deploy/images/build.sh

# The image test builds and runs with Debian's buildah (daemonless, as root: no Docker daemon needed), and
# debootstrap makes the base image from Debian packages when no registry can be reached.
image-tools:
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah debootstrap; }

image-test: install image-tools ## The image tests: build both images, run their services from them (make test: the API image)
	DEKSDENFLOW_IMAGE_TEST=all $(RUN) pytest -m image -p no:cacheprovider -s tests/deploy/test_image.py

check: test ## Everything CI checks: the static gates, then the tests (= make test)

clean: ## Remove caches (keeps .deksdenflow/ data)
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache
