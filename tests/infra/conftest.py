"""testinfra host verification, against any inventory:

    pytest tests/infra --hosts='ansible://all' --ansible-inventory=inventories/lab

On a failure the host's ``ovsr show`` and the service's journal tail are printed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # fleet.inventory, under Molecule too


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("hosts"):
        return
    skip = pytest.mark.skip(reason="host checks need --hosts=ansible://... --ansible-inventory=...")
    for item in items:
        if "tests/infra" in str(item.fspath):
            item.add_marker(skip)


def inventory_sources(config: pytest.Config) -> list[str]:
    source = config.getoption("ansible_inventory")
    if not source:
        raise pytest.UsageError("tests/infra needs --ansible-inventory=INVENTORY")
    return [str(source)]


def host_name(host: Any) -> str:
    return str(host.backend.host)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    host = getattr(item, "funcargs", {}).get("host")
    if host is None:
        return
    show = host.run("ovsr --timeout 10 show")
    journal = host.run("journalctl -u ovs-runtime --no-pager -n 30")
    report.sections.append((f"{host_name(host)}: ovsr show", show.stdout + show.stderr))
    report.sections.append((f"{host_name(host)}: journal tail", journal.stdout + journal.stderr))
