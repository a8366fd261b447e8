# ovs-runtime: `make demo` and `make test` are the two commands; each installs what it
# needs (Debian packages, then a venv from pinned requirements) and is safe to re-run.

SHELL := /bin/bash
PYTHON := /usr/bin/python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP_DEPS := $(VENV)/.deps-installed

.PHONY: demo demo-host test deps venv lint unit integration packaging-test bench bench-flows bench-vxlan packages clean lab-up lab-down lab-status fleet-test molecule

deps:
	@bash scripts/install-deps.sh

$(VPY):
	$(PYTHON) -m venv --system-site-packages $(VENV)

$(STAMP_DEPS): requirements-dev.txt pyproject.toml | $(VPY)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

venv: deps $(STAMP_DEPS)

demo: venv
	@bash scripts/demo.sh demo_fleet

demo-host: venv
	@bash scripts/demo.sh demo_single_host

lint: venv
	@bash scripts/run-stage.sh lint bash scripts/lint.sh

unit: venv
	@bash scripts/run-stage.sh unit $(VPY) -m pytest -q -m "not integration" tests/unit tests/ansible

integration: venv
	@bash scripts/run-stage.sh integration $(VPY) -m pytest -q -m integration tests/integration tests/ansible

# The lab fleet (systemd-nspawn hosts hv1..hvN and sw1, reached over SSH): HYPERVISORS=N.
HYPERVISORS ?= 3
lab-up: venv
	$(VPY) -m lab up --hypervisors $(HYPERVISORS)

lab-down: venv
	$(VPY) -m lab down

lab-status: venv
	$(VPY) -m lab status

packages: deps
	@bash scripts/build-packages.sh

bench: venv
	$(VPY) -m bench.l2_forwarding

bench-flows: venv
	$(VPY) -m bench.flow_tables

bench-vxlan: venv
	$(VPY) -m bench.vxlan_overlay

packaging-test: venv
	@bash scripts/run-stage.sh packaging $(VPY) -m pytest -q tests/packaging

# The lab fleet, deployed with the playbooks and exercised over SSH (tests/fleet).
fleet-test: venv
	@bash scripts/run-stage.sh fleet $(VPY) -m pytest -q tests/fleet

test: venv
	@bash scripts/test.sh

clean:
	rm -rf $(VENV) dist build *.egg-info .mypy_cache .ruff_cache .pytest_cache

# Molecule scenarios (delegated driver on the lab): default (one host), fleet, upgrade.
molecule: venv
	@bash scripts/run-stage.sh molecule bash scripts/molecule.sh
