"""The fleet tests run against the lab: booted Debian 12 hosts (sw1, hv1..hv3) reached
over SSH, deployed with the real playbooks from freshly built packages. The lab is
brought up fresh for the session and taken down afterwards, even on failure."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab import fleet as lab_fleet
from tests.packaging.test_packages import build

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/fleet" in str(item.fspath):
            item.add_marker(pytest.mark.fleet)


@dataclass
class Fleet:
    hosts: list[lab_fleet.LabHost]
    dist: Path

    def playbook(
        self, book: str, *extra: str, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        )
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(INVENTORY),
                str(REPO / "playbooks" / book),
                "-e",
                f"ovs_runtime_install_package_dir={self.dist}",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=REPO,
        )

    def ssh(self, host: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        address = next(h.mgmt_ip for h in self.hosts if h.name == host)
        proc = subprocess.run(
            [
                "ssh",
                *("-i", str(lab_fleet.LAB_DIR / "id_ed25519")),
                *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
                *("-o", "LogLevel=ERROR", "-o", "BatchMode=yes"),
                f"root@{address}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{host}: {command}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def fleet_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet", "-i", str(INVENTORY), *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )


def changed_count(output: str) -> int:
    total = 0
    for line in output.splitlines():
        if "changed=" in line and ": ok=" in line:
            total += int(line.split("changed=")[1].split()[0])
    return total


@pytest.fixture(scope="session")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    out = tmp_path_factory.mktemp("fleet-packages")
    deb, _ = build(out)
    lab_fleet.down(log=False)
    hosts = lab_fleet.up(log=False)
    try:
        lab = Fleet(hosts, deb.parent)
        first = lab.playbook("site.yml")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        yield lab
    finally:
        lab_fleet.down(log=False)
