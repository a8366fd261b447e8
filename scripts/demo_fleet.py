"""`make demo`: the lab fleet, deployed and shown working.

Builds the packages, boots the lab (sw1 and hv1..hv3, each a Debian 12 host with systemd,
reached over SSH), deploys it with ``playbooks/site.yml``, makes the VMs the inventory
declares, then shows the fleet status, the reachability matrix (tenant-a over the VXLAN
mesh and sw1's VXLAN gateway, tenant-b over VLAN trunks, the two isolated) and one
host's switch. The lab is taken down at the end, also on failure or Ctrl-C; set
``OVSR_DEMO_KEEP=1`` to keep it for exploring (then ``make lab-down``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.inventory import host_variables  # noqa: E402
from lab import fleet as lab_fleet  # noqa: E402
from lab.control import INVENTORY, REPO, LabControl, changed_count, make_declared_guests  # noqa: E402


def stage(text: str) -> float:
    print(f"\n=== {text}", flush=True)
    return time.monotonic()


def build_packages(out: Path) -> Path:
    env = dict(os.environ, OVSR_BUILD_DIR=str(out / "build"), OVSR_DIST_DIR=str(out / "dist"))
    subprocess.run(["bash", str(REPO / "scripts/build-packages.sh")], env=env, check=True)
    return out / "dist"


def reachability(lab: LabControl, guests: dict[str, dict[str, str]]) -> int:
    networks = host_variables([str(INVENTORY)], "hv1", ("lab_networks",))["lab_networks"]
    failures = 0
    for host, members in sorted(guests.items()):
        for guest, cidr in sorted(members.items()):
            own = cidr.split("/")[0]
            network = next(n for n, addresses in networks.items() if own in addresses)
            cells = []
            for address in networks[network]:
                if address == own:
                    continue
                ok = lab.in_guest(host, guest, f"ping -c 1 -W 1 {address}").returncode == 0
                failures += not ok
                cells.append(f"{address} {'ok' if ok else 'FAIL'}")
            print(f"  {host}/{guest} ({network}, {own}) -> " + ", ".join(cells))
    # Isolation: a tenant-b VM that takes a tenant-a address still reaches nothing there.
    lab.guest_address("hv1", "vm2", "198.51.100.150/26", "add")
    try:
        leaked = lab.in_guest("hv1", "vm2", "ping -c 2 -W 1 198.51.100.132").returncode == 0
    finally:
        lab.guest_address("hv1", "vm2", "198.51.100.150/26", "del")
    print(
        f"  isolation: hv1/vm2 (tenant-b) -> tenant-a 198.51.100.132: "
        f"{'LEAKED' if leaked else 'blocked, as it must be'}"
    )
    return failures + leaked


def main() -> int:
    keep = os.environ.get("OVSR_DEMO_KEEP") == "1"
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="ovsr-demo-") as tmp:
            t = stage("building the .deb and .rpm")
            dist = build_packages(Path(tmp))
            print(f"  done in {time.monotonic() - t:.0f} s")
            t = stage("booting the lab fleet: sw1 (top-of-rack switch) and hv1..hv3")
            lab_fleet.down(log=False)
            hosts = lab_fleet.up(log=False)
            for host in hosts:
                print(f"  {host.name:<4} {host.role:<12} ssh root@{host.mgmt_ip}")
            print(f"  up in {time.monotonic() - t:.0f} s")
            lab = LabControl(hosts, dist)
            t = stage("ansible-playbook -i inventories/lab playbooks/site.yml (switches first)")
            run = lab.playbook("site.yml")
            print("\n".join(line for line in run.stdout.splitlines() if ": ok=" in line))
            if run.returncode != 0:
                print(run.stdout[-3000:])
                return 1
            again = lab.playbook("site.yml")
            print(
                f"  again: changed={changed_count(again.stdout)} "
                f"({time.monotonic() - t:.0f} s for both runs)"
            )
            stage("making the VMs the inventory declares (TAP ports moved into namespaces)")
            guests = make_declared_guests(lab)
            time.sleep(1)
            stage("ovsr-fleet -i inventories/lab status")
            print(lab.fleet_cli("status").stdout.rstrip())
            stage("reachability matrix (tenant-a: VXLAN mesh + sw1 gateway; tenant-b: trunks)")
            failures = reachability(lab, guests)
            stage("hv1: ovsr show (abridged) and the MAC table")
            shown = lab.ssh("hv1", "ovsr show").stdout.splitlines()
            print("\n".join(shown[:24] + (["    ..."] if len(shown) > 24 else [])))
            print(lab.ssh("hv1", "ovsr fdb-show br-int").stdout.rstrip())
            verdict = "all reachable as declared" if failures == 0 else f"{failures} FAILURES"
            stage(f"done in {time.monotonic() - started:.0f} s: {verdict}")
            if keep:
                print(
                    "  the lab stays up (OVSR_DEMO_KEEP=1): ssh -i "
                    f"{lab_fleet.LAB_DIR}/id_ed25519 root@198.51.100.11; make lab-down"
                )
            return 0 if failures == 0 else 1
    finally:
        if not keep:
            lab_fleet.down(log=False)
            print("  lab taken down")


if __name__ == "__main__":
    sys.exit(main())
