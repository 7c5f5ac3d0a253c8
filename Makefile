# Floorwatch: `make demo` and `make test` set up everything a fresh machine needs, then run.
# Settings: environment variables documented in .env.example (e.g. `make up INGEST_PORT=18081`).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Python: the newest supported CPython found (pyproject's requires-python: 3.11 to 3.13), or PYTHON=.
# Found = `python3.X` on PATH that runs (a pyenv shim of a version not selected does not), else a
# pyenv-installed 3.X. An existing .venv is kept whatever it was made with (`rm -rf .venv` to change).
SUPPORTED_PYTHONS := 3.13 3.12 3.11
find_python = $(shell for p in $$(command -v python$(1)) $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -V -r); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "$(1)".split("."))))' 2>/dev/null && { echo "$$p"; break; }; done)
PYTHONS_FOUND = $(strip $(foreach v,$(SUPPORTED_PYTHONS),$(call find_python,$(v))))
PYTHON ?= $(firstword $(PYTHONS_FOUND))
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.floorwatch-installed
STACK := $(PY) deploy/local/stack.py
# -ra: every skip, xfail and failure is listed with its reason at the end of the run.
PYTEST_ARGS ?= -q -ra --durations=15 --junitxml=test-artifacts/junit.xml

# Debian packages behind each command the stack needs (command=package).
SYSTEM_DEPS := prometheus=prometheus prometheus-alertmanager=prometheus-alertmanager \
	promtool=prometheus amtool=prometheus-alertmanager chromium=chromium \
	java=openjdk-17-jre-headless mvn=maven

.PHONY: help venv system-deps kafka-jars ops-tools k8s-secrets up down status demo lint typecheck check-configs test test-pythons

help:
	@echo "make demo      start the whole stack and the traffic simulator (Ctrl-C stops everything)"
	@echo "make test      set up everything and run the whole test suite"
	@echo "make test-pythons  the unit tests on every supported Python found (3.11-3.13), each in .venv-3.X"
	@echo "make up|down   start the stack detached / stop it (make down WIPE=1 also deletes its data)"
	@echo "make status    show each part of the local stack"
	@echo "make bench     run the benchmarks (~30 min): benchmarks/results/latest.json and its PNG"
	@echo "make k8s-secrets  random secrets for deploy/kubernetes/base (git-ignored files, never overwritten)"
	@echo "make lint typecheck check-configs venv system-deps kafka-jars ops-tools"

# ---- setup ----------------------------------------------------------------------------------
venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then
	  [ -n "$(PYTHON)" ] || { echo "no Python 3.11, 3.12 or 3.13 found: install one, or make PYTHON=/path/to/python3.X"; exit 1; }
	  echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV)
	fi
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# Installs what is missing, never starts anything (no init scripts run: policy-rc.d says no).
system-deps:
	@missing=""
	for pair in $(SYSTEM_DEPS); do
	  command -v "$${pair%%=*}" >/dev/null 2>&1 || missing="$$missing $${pair#*=}"
	done
	# The wallboard's Chinese labels need a CJK font in headless Chromium (screenshots, and real TVs).
	ls /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"
	if [ -z "$$missing" ]; then exit 0; fi
	missing=$$(tr ' ' '\n' <<<"$$missing" | sort -u | xargs)
	echo "installing Debian packages: $$missing"
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo
	if [ ! -e /usr/sbin/policy-rc.d ]; then
	  printf '#!/bin/sh\nexit 101\n' | $$sudo tee /usr/sbin/policy-rc.d >/dev/null
	  $$sudo chmod +x /usr/sbin/policy-rc.d
	  trap "$$sudo rm -f /usr/sbin/policy-rc.d" EXIT
	fi
	$$sudo apt-get update
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

kafka-jars: venv system-deps
	$(STACK) jars

# Offline checkers for deploy/kubernetes (Kubernetes JSON schemas vendored in the package, strict)
# and the YAML/JSON-schema libraries tests/unit/test_deploy_manifests.py and
# test_grafana_dashboards.py use. Pinned; into the project's venv.
OPS_TOOLS := kubernetes-validate==1.37.0
OPS_TOOLS_STAMP := $(VENV)/.ops-tools-$(subst ==,-,$(OPS_TOOLS))
ops-tools: $(OPS_TOOLS_STAMP)

$(OPS_TOOLS_STAMP): $(VENV_STAMP)
	$(PY) -m pip install -q --disable-pip-version-check '$(OPS_TOOLS)'
	@touch $@

# Random secrets for `kubectl apply -k deploy/kubernetes/base`: one env file per workload under
# deploy/kubernetes/base/secrets/ (git-ignored, 0600), read by the kustomization's secretGenerator.
k8s-secrets:
	$(PYTHON_BIN) deploy/local/k8s_secrets.py

# ---- local stack ----------------------------------------------------------------------------
up: venv system-deps kafka-jars
	$(STACK) up

down:
	@if [ -x $(PY) ]; then $(STACK) down $(if $(WIPE),--wipe); else echo "no venv: nothing was started"; fi

status: venv
	$(STACK) status

# Whole stack plus the traffic simulator in the foreground; Ctrl-C (or any exit) stops the stack.
demo: up
	@eval "$$($(STACK) env)"
	cleanup() { trap - EXIT INT TERM; echo; echo "stopping the stack..."; $(MAKE) --no-print-directory down; }
	trap cleanup EXIT INT TERM
	echo
	echo "Wallboard: $$API_URL/   API docs: $$API_URL/docs   Ingest: $$INGEST_URL"
	echo "Prometheus: $$PROMETHEUS_URL   Alertmanager: $$ALERTMANAGER_URL"
	echo "Simulator sending traffic to $$INGEST_URL; Ctrl-C stops the simulator and the stack."
	$(PY) -m services.simulator --ingest "$$INGEST_URL"

# ---- checks ---------------------------------------------------------------------------------
lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

# Render the Prometheus/Alertmanager templates with the current settings and check them offline:
# config and rules (promtool check), the rules' unit tests (promtool test rules: each alert fires
# and stays quiet where it should), Alertmanager's config and its routing by severity (amtool),
# and the Kubernetes base against the Kubernetes and CRD schemas (tests/unit/test_deploy_manifests.py).
check-configs: venv system-deps ops-tools
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT
	rendered=$$($(STACK) render --out "$$out")
	prom=$$(sed -n 1p <<<"$$rendered"); am=$$(sed -n 2p <<<"$$rendered")
	promtool check config "$$prom"
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml
	amtool check-config "$$am"
	route() { got=$$(amtool config routes test --config.file="$$am" "$${@:2}" 2>/dev/null || true)
	  [ "$$got" = "$$1" ] || { echo "alertmanager routes $${*:2} to '$$got', expected '$$1'"; exit 1; }; }
	route oncall-page alertname=FloorAlert severity=critical queue=presales shop=acme-jd
	route floor-channel alertname=FloorAlert severity=warning queue=presales shop=acme-jd
	route oncall-page alertname=ScorerDown severity=critical
	route default-webhook alertname=Unlabelled
	echo "alertmanager routing: OK"
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit/test_deploy_manifests.py

test: export PYTHONUNBUFFERED := 1
test: export PYTHONFAULTHANDLER := 1
test: export PYTHONDONTWRITEBYTECODE := 1
test: export HYPOTHESIS_PROFILE ?= $(if $(CI),ci,dev)
test: venv system-deps kafka-jars lint typecheck check-configs
	@mkdir -p test-artifacts
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The unit tests (no broker, no browser) on each supported Python found, each in its own venv
# .venv-3.X (git-ignored, reused; `PYTHONS="/usr/bin/python3.12 …"` picks them by hand). Every
# interpreter runs even when one fails; the summary names each one's result.
PYTHONS ?= $(PYTHONS_FOUND)
UNIT_TESTS ?= tests/unit
test-pythons: export PYTHONDONTWRITEBYTECODE := 1
test-pythons:
	@[ -n "$(strip $(PYTHONS))" ] || { echo "no Python 3.11, 3.12 or 3.13 found"; exit 1; }
	summary=""; failed=0
	for py in $(PYTHONS); do
	  v=$$("$$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	  venv=.venv-$$v
	  echo "==== Python $$v ($$py) in $$venv"
	  if [ ! -x $$venv/bin/python ] || [ pyproject.toml -nt $$venv/.floorwatch-installed ]; then
	    "$$py" -m venv $$venv
	    $$venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	    touch $$venv/.floorwatch-installed
	  fi
	  if $$venv/bin/python -m pytest -q -ra -p no:cacheprovider $(UNIT_TESTS); then
	    summary="$$summary\n  $$v: passed"
	  else
	    summary="$$summary\n  $$v: FAILED"; failed=1
	  fi
	done
	printf "unit tests by Python:$$summary\n"
	exit $$failed

# ---- benchmarks -----------------------------------------------------------------------------
# `make bench` (about 30 minutes on 2 cores): every section of benchmarks/ on a broker of its own
# (TEST_PORT_OFFSET, default 700), figures to benchmarks/results/latest.json and its PNG.
# `make bench ONLY=throughput,memory` runs some sections; `make bench QUICK=1` checks the benchmarks.
BENCH_STAMP := $(VENV)/.floorwatch-bench-installed
.PHONY: bench
bench: export TEST_PORT_OFFSET ?= 700
bench: venv system-deps kafka-jars $(BENCH_STAMP)
	$(PY) -m benchmarks $(if $(ONLY),--only $(ONLY)) $(if $(QUICK),--quick)

$(BENCH_STAMP): pyproject.toml $(VENV_STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

.ONESHELL:
