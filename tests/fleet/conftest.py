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
            [*self.ssh_argv(), f"root@{address}", command],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{host}: {command}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def guest(self, host: str, name: str, port: str, address: str, mtu: int, mac: str = "") -> None:
        """Make a "VM" namespace on a hypervisor out of one of its TAP ports."""
        self._guest_script(host, " ".join([name, port, address, str(mtu), mac]).strip())

    def pause_guest(self, host: str, name: str) -> None:
        """The VM stops answering and sending (paused), its NIC still plugged."""
        self._guest_script(host, f"pause {name}")

    def _guest_script(self, host: str, args: str) -> None:
        script = (REPO / "lab" / "guest.py").read_text()
        address_of = next(h.mgmt_ip for h in self.hosts if h.name == host)
        proc = subprocess.run(
            [*self.ssh_argv(), f"root@{address_of}", f"python3 - {args}"],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr

    def in_guest(
        self, host: str, guest: str, command: str, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return self.ssh(host, f"nsenter --net=/run/netns/{guest} {command}", check=check)

    @staticmethod
    def ssh_argv() -> list[str]:
        return [
            "ssh",
            *("-i", str(lab_fleet.LAB_DIR / "id_ed25519")),
            *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
            *("-o", "LogLevel=ERROR", "-o", "BatchMode=yes"),
        ]

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
        for n in (1, 2, 3):  # tenant-a VMs (over VXLAN) and tenant-b VMs (over trunks)
            lab.guest(f"hv{n}", "vm1", "vm1", f"198.51.100.{130 + n}/26", 1450)
            lab.guest(f"hv{n}", "vm2", "vm2", f"198.51.100.{192 + n}/26", 1500)
        yield lab
    finally:
        lab_fleet.down(log=False)
