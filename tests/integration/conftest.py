"""Integration tests run real daemons (and, later, namespaces): marked ``integration``."""

from __future__ import annotations

import pytest

from tests.integration.switch_fixtures import lab, ovs, switch  # noqa: F401  (fixtures)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
