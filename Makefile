# cdc development tasks. `make test` sets up everything from nothing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
NATIVE := native/copytext
# rustup's cargo, which builds $(NATIVE), lives here unless PATH says otherwise
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Go builds dev/k8scheck; the official tarball puts it in /usr/local/go
GO ?= $(or $(shell command -v go),/usr/local/go/bin/go)

.PHONY: help install services services-down lint test test-unit test-chaos check-kubernetes bench demo clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(VENV)/.installed: pyproject.toml $(NATIVE)/Cargo.toml $(NATIVE)/pyproject.toml $(wildcard $(NATIVE)/src/*.rs)
	@command -v cargo >/dev/null || { echo "cdc builds $(NATIVE) with Rust: install cargo (rustup) first" >&2; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q ./$(NATIVE) -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install cdc in it (.venv/bin/cdc)

services:  ## install (if missing) and start PostgreSQL 15, MariaDB 10.11, Kafka (KRaft); writes .dev/env
	bash dev/services.sh up

services-down:  ## stop the local servers
	bash dev/services.sh down

lint: install  ## ruff and mypy; rustfmt, clippy and the unit tests of $(NATIVE)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd $(NATIVE) && cargo fmt --check && cargo clippy --release -- -D warnings && cargo test --release

test: install services  ## the whole default suite on the real local servers
	$(VENV)/bin/pytest -m 'not chaos' --durations=30 tests

test-unit: install  ## tests that need no server
	$(VENV)/bin/pytest tests/unit

test-chaos: install services  ## long runs: crash, soak, randomized, network faults (toxiproxy), a million rows
	bash dev/toxiproxy.sh
	$(VENV)/bin/pytest -m chaos tests

# The Secret holds the database credentials: the base names it, each namespace creates it.
check-kubernetes:  ## render deploy/kubernetes as `kubectl kustomize` does; decode it strictly into the API types and check probes, mounts, selectors
	cd dev/k8scheck && $(GO) run -mod=readonly . -external-secret cdc-credentials $(CURDIR)/deploy/kubernetes

demo: install services  ## a live MariaDB -> PostgreSQL migration on the local servers, verified row by row
	$(PY) dev/demo.py

bench: install services  ## benchmarks against the reference tools; report in bench/results/
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	$(PY) -m bench.run

clean:  ## remove the venv and caches (server data stays in .dev/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
