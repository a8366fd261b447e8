"""Driving a running lab from the control node: playbooks, SSH commands, guests ("VMs")
and ``ovsr-fleet``. Shared by ``make demo`` and the fleet tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fleet.inventory import host_variables
from lab import fleet as lab_fleet

REPO = Path(__file__).resolve().parent.parent
INVENTORY = REPO / "inventories" / "lab"


@dataclass
class LabControl:
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
            raise RuntimeError(
                f"{host}: {command}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def guest(self, host: str, name: str, port: str, address: str, mtu: int, mac: str = "") -> None:
        """Make a "VM" namespace on a hypervisor out of one of its TAP ports."""
        self._guest_script(host, " ".join([name, port, address, str(mtu), mac]).strip())

    def guest_address(self, host: str, name: str, cidr: str, action: str) -> None:
        """Add (``add``) or remove (``del``) an extra address in a guest."""
        self._guest_script(host, f"address {name} {cidr} {action}")

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
        if proc.returncode != 0:
            raise RuntimeError(f"{host}: guest.py {args}: {proc.stderr.strip()}")

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


def make_declared_guests(lab: LabControl) -> dict[str, dict[str, str]]:
    """The "VMs" the inventory declares (tenant-a over VXLAN, tenant-b over trunks)."""
    declared = host_variables([str(INVENTORY)], "hv1", ("lab_guests", "lab_guest_mtu"))
    guests: dict[str, dict[str, str]] = declared["lab_guests"]
    for host, members in guests.items():
        for name, address in members.items():
            lab.guest(host, name, name, address, declared["lab_guest_mtu"][name])
    return guests
