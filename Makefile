# greenlight — every target does its own set-up (virtualenv, installs, cluster binaries, cluster).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOWEST := .venv-lowest
CLUSTER ?= local
CLUSTERS ?= 1
export GREENLIGHT_CACHE ?= $(CURDIR)/.cache

.PHONY: help venv venv-lowest wheelhouse test-lowest build browser netplane postgres cluster cluster-down cluster-status test unit e2e docs docs-check demo down clean

help:
	@echo "make demo          set everything up and release the first tutorial blue -> green"
	@echo "make test          set everything up and run every test (unit + e2e on a real cluster)"
	@echo "make docs          build the documentation site into site/ (mkdocs.yml, docs/)"
	@echo "make cluster       start the local cluster (CLUSTER=kind for a kind cluster where Docker exists)"
	@echo "make cluster-down  stop it"
	@echo "make cluster CLUSTERS=3   staging, prod-a, prod-b side by side (one kubeconfig, a context each)"

# The newest Prefect and Kubernetes client that resolve within pyproject.toml's ranges (-U on both, so an existing
# virtualenv moves up too) ...
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -U -e '.[test,blocks,judge,docs]' prefect kubernetes
	touch $@

# ... and the lowest end of those ranges (constraints/prefect-lowest.txt), in a second virtualenv.
$(LOWEST)/bin/.installed: pyproject.toml constraints/prefect-lowest.txt
	test -x $(LOWEST)/bin/python || $(PY) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install -q --upgrade pip
	$(LOWEST)/bin/pip install -q -e '.[test,blocks,judge]' -c constraints/prefect-lowest.txt
	touch $@

venv: $(BIN)/.installed

# A local wheelhouse of the newest Prefect and Kubernetes client (the versions .venv resolved) with their
# dependencies, so tests/e2e/test_packaging.py installs "a user's virtualenv" from this machine alone (setuptools:
# the wheel's build backend, for tests/e2e/test_get_started.py's offline `pip wheel`).
WHEELHOUSE := $(GREENLIGHT_CACHE)/wheelhouse
$(WHEELHOUSE)/.complete: $(BIN)/.installed
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(BIN)/pip download -q -d $(WHEELHOUSE) \
	  "prefect==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("prefect"))')" \
	  "kubernetes==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("kubernetes"))')" \
	  "requests>=2.31" "pydantic>=2.7,<3" "PyYAML>=6" "setuptools>=68"
	touch $@

wheelhouse: $(WHEELHOUSE)/.complete

venv-lowest: $(LOWEST)/bin/.installed

build:
ifeq ($(CLUSTER),local)
	bash hack/cluster/build.sh
endif

# Debian's chromium for the Prefect UI test (tests/e2e/test_ui_approval.py); a no-op when it is installed.
browser:
	bash hack/browser.sh

# PostgreSQL's server binaries for the tests that run Prefect on PostgreSQL; a no-op when they are installed.
postgres:
	bash hack/postgres.sh

# nftables (nft) and iproute2 (ip) for the local cluster's Service data path (kube-proxy in a network namespace);
# a no-op when they are installed.
netplane:
ifeq ($(CLUSTER),local)
	bash hack/netplane.sh
endif

cluster: venv build netplane
ifeq ($(CLUSTER),kind)
	bash hack/cluster/kind.sh up
else ifeq ($(CLUSTERS),1)
	$(BIN)/python -m tests.cluster.launcher up
else
	$(BIN)/python -m tests.cluster.multi up --clusters $(CLUSTERS)
endif

cluster-down: venv
ifeq ($(CLUSTER),kind)
	bash hack/cluster/kind.sh down
else ifeq ($(CLUSTERS),1)
	$(BIN)/python -m tests.cluster.launcher down
	for d in $(GREENLIGHT_CACHE)/cluster-gw*; do [ -d "$$d" ] || continue; \
	  GREENLIGHT_CLUSTER_DIR="$$d" $(BIN)/python -m tests.cluster.launcher down; done
else
	$(BIN)/python -m tests.cluster.multi down
endif

cluster-status: venv
	$(BIN)/python -m tests.cluster.launcher status

# The e2e session fixture starts the local cluster unless one is already up (or GREENLIGHT_TEST_KUBECONFIG
# names another) and stops what it started. pytest's exit code 5 (no tests collected) fails the target.
# TEST_JOBS pytest-xdist workers, whole files each, every worker with a cluster and a Prefect server of its own
# (tests/parallel.py); TEST_JOBS=0 runs everything in one process.
TEST_JOBS ?= 2
XDIST = $(if $(filter 0,$(TEST_JOBS)),-p no:xdist,-n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder)

# Both ends of the supported Prefect range: everything on the newest, then the unit tier and the e2e tests marked
# both_ends on the lowest (PYTEST_ADDOPTS etc. pass through to both).
test: venv venv-lowest wheelhouse build browser netplane postgres docs-check
	$(BIN)/python -m pytest $(XDIST) tests
	$(MAKE) --no-print-directory test-lowest

test-lowest: venv-lowest build browser netplane
	$(LOWEST)/bin/python -m pytest $(XDIST) -m 'both_ends or not e2e' tests/unit tests/e2e

unit: venv
	$(BIN)/python -m pytest tests/unit

e2e: venv wheelhouse build browser netplane postgres
	$(BIN)/python -m pytest $(XDIST) tests/e2e

# The documentation site: the reference pages are generated from the code at build time (hack/docs/). --strict:
# a broken link, a missing page or anchor fails the build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-check: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(GREENLIGHT_CACHE)/site-check

demo: venv build netplane
	bash hack/demo.sh

# Stop what `make demo` left running (the cluster and the demo's Prefect server).
down: cluster-down
	bash hack/prefect-server.sh down

clean: down
	rm -rf $(VENV) $(LOWEST) .pytest_cache
