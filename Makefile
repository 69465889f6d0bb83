# The README names these targets. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit integration tools lock down clean

# Two distributions, both editable: the product (ferry, pyproject.toml) and the local environment
# (ferry-local, local/pyproject.toml), which the operator's image leaves out.
$(BIN)/ferry: pyproject.toml local/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
	  -e '.[dev]' -e ./local
	touch $@

# What the local environment's pod network needs from Debian: nft, which kube-proxy's nftables
# mode runs (and `ferry local down` to remove the cluster's table). Installed when missing.
.PHONY: host-packages
host-packages:
	@command -v nft >/dev/null || { apt-get update -qq && apt-get install -y -qq nftables; }

# Builds (first time only) kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy,
# kubectl, etcd, helm, kwok and CoreDNS from their Go modules into ~/.cache/ferry/toolchain/.
tools: $(BIN)/ferry host-packages
	$(BIN)/ferry local build

# The local environment with the iris example serving real predictions (see README).
demo: tools
	$(BIN)/ferry local demo

down: $(BIN)/ferry
	$(BIN)/ferry local down

# ruff, then the layers' import contracts (pyproject.toml, [tool.importlinter]).
lint: $(BIN)/ferry
	$(BIN)/ruff check operator local tests bench tools examples
	$(BIN)/ruff format --check operator local tests bench tools examples
	$(BIN)/lint-imports

typecheck: $(BIN)/ferry
	$(BIN)/mypy

unit: $(BIN)/ferry
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: tools
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test: lint typecheck tools
	$(BIN)/pytest $(PYTEST_ARGS)

# The chart's copy of the CRD, manifests/install.yaml and manifests/fluent-bit.yaml, made from
# charts/ferry with `helm template` (a test fails when one is stale).
.PHONY: manifests
manifests: tools
	$(BIN)/python -m tools.manifests

# Re-pins every Python dependency of both pyproject.toml files into constraints.txt (setuptools
# too, which dev asks for; pip itself stays the venv's own).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]' -e ./local
	{ echo "# Pinned versions of every Python package Ferry, its local environment (local/) and their tests install (make lock regenerates)."; \
	  .lock-venv/bin/pip freeze --all --exclude-editable --exclude pip; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
