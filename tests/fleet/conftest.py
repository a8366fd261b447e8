"""The fleet tests run against the lab: booted Debian 12 hosts (sw1, hv1..hv3) reached
over SSH, deployed with the real playbooks from freshly built packages. The lab is
brought up fresh for the session and taken down afterwards, even on failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab import fleet as lab_fleet
from lab.control import REPO, LabControl, changed_count, make_declared_guests
from tests.packaging.test_packages import build

__all__ = ["REPO", "LabControl", "changed_count"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/fleet" in str(item.fspath):
            item.add_marker(pytest.mark.fleet)


@pytest.fixture(scope="session")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabControl]:
    out = tmp_path_factory.mktemp("fleet-packages")
    deb, _ = build(out)
    lab_fleet.down(log=False)
    hosts = lab_fleet.up(log=False)
    try:
        lab = LabControl(hosts, deb.parent)
        first = lab.playbook("site.yml")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        make_declared_guests(lab)
        yield lab
    finally:
        lab_fleet.down(log=False)
