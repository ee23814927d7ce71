# The two commands of the README are `make demo` and `make test`; everything they need is
# installed here, into folders of this checkout (.venv, .venv-hub, .venv-old, .node).
# `make test-hubs` adds one .venv-hub-X.Y per JupyterHub of tests/realhub/hub-versions.txt.
PYTHON ?= python3
# Python 3.9 (pyenv's, when its shim is not active), else the default interpreter.
OLD_PYTHON ?= $(shell for p in $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.9*/bin/python3.9 \
	python3.9 $(PYTHON); do $$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help venv hub hubs promtool old-venv demo test test-hubs test-unit test-old lint bench \
        bench-realhub sdist wheel rpm deb systemd-test monitoring-test packages-test clean

help:
	@echo "make demo      run the culler against a real local JupyterHub and show what it did"
	@echo "make test      install what the tests need and run the whole suite"
	@echo "make test-hubs the real-hub tests on every JupyterHub from 1.5 to 6.1"
	@echo "make lint      ruff (target Python 3.9)"
	@echo "make bench     benchmark against the reference culler (bench/README.md)"
	@echo "make bench-realhub   the same on a real JupyterHub (bench/README.md, ~15-20 min)"
	@echo "make sdist wheel rpm deb   build the packages into dist/ (rpm and deb print the"
	@echo "                           system packages they lack; CI=true installs them)"

$(BIN)/.installed: setup.cfg pyproject.toml requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -r requirements-test.txt -e .
	touch $@

venv: $(BIN)/.installed

# JupyterHub 6.1 (the tests' hub, with real single-user servers) and 5.5 (the last that still
# accepts a server named ".", for the test that such a name reaches its own server).
hub:
	bash scripts/install-realhub.sh 6.1 5.5

# Every JupyterHub of tests/realhub/hub-versions.txt, each in its own .venv-hub* (idempotent).
hubs:
	bash scripts/install-realhub.sh all

# The oldest supported versions (RHEL 9, Debian 12) on the oldest supported Python.
.venv-old/.installed: setup.cfg requirements-old.txt
	$(OLD_PYTHON) -m venv .venv-old
	.venv-old/bin/python -m pip install -qq --upgrade pip
	.venv-old/bin/python -m pip install -qq -r requirements-old.txt
	touch $@

old-venv: .venv-old/.installed

# The demo needs the culler and JupyterHub 6.1 only: no test tools, no second hub.
$(BIN)/.demo-installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e .
	touch $@

demo: $(BIN)/.demo-installed
	bash scripts/install-realhub.sh
	$(BIN)/python -m scripts.demo

lint: venv
	$(BIN)/ruff check .

# Debian's promtool, unpacked into .cache/promtool (tests/packaging/test_monitoring.py).
promtool:
	bash .ci/promtool.sh >/dev/null

# CI=true turns "tool missing, skipped" into a failure: make test installs every tool.
test: venv hub old-venv promtool lint
	command -v faketime >/dev/null || [ "$${CI:-}" != true ] || { apt-get update -qq && apt-get install -y -qq faketime >/dev/null; }
	CI=true $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	.venv-old/bin/python -m pip install -qq --no-deps --force-reinstall .
	CI=true .venv-old/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/integration
	.venv-old/bin/python -c "import sys, urllib3, requests, dateutil, sdnotify; \
	print('oldest versions: python', sys.version.split()[0], 'urllib3', urllib3.__version__, \
	'requests', requests.__version__, 'dateutil', dateutil.__version__)"

# The real-hub tests of tests/realhub/test_hub_versions.py on every version, in sequence, one
# hub start per version (make test runs them on 6.1 only).
test-hubs: venv hubs
	CI=true REALHUB_VERSIONS=all $(BIN)/python -m pytest -q -p no:cacheprovider -rxX \
		tests/realhub/test_hub_versions.py $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/python -m pytest -q tests/unit

bench: venv
	$(BIN)/python -m bench.run

bench-realhub: venv hub
	$(BIN)/python -m bench.realhub

sdist wheel: venv
	bash .ci/build-python.sh $@

rpm:
	bash .ci/build-rpm.sh

deb:
	bash .ci/build-deb.sh

# The real-systemd checks (root, systemd-container); with a deb in dist/ they run against it.
systemd-test:
	bash .ci/check-units.sh
	bash .ci/nspawn-e2e.sh

# What .ci/run adds after `make test`: build, lint and install the packages, boot systemd,
# run the deb's autopkgtest.
# The alert rules (promtool check rules, promtool test rules) with Debian's promtool.
monitoring-test:
	bash .ci/check-monitoring.sh

packages-test: venv
	bash .ci/build-python.sh all
	bash .ci/build-rpm.sh
	bash .ci/build-deb.sh
	bash .ci/check-units.sh
	bash .ci/check-monitoring.sh
	bash .ci/nspawn-e2e.sh
	bash .ci/check-deb-install.sh
	bash .ci/check-deb-autopkgtest.sh

clean:
	rm -rf build dist debian *.egg-info .pytest_cache
