"""`make demo`: the lab fleet, deployed, verified and shown working.

Builds the packages, boots the lab (sw1 and hv1..hv3, each a Debian 12 host with systemd,
reached over SSH), deploys it with ``playbooks/site.yml``, makes the VMs the inventory
declares, verifies every host with the testinfra suite, then shows the fleet status
(``ovsr-fleet status``), a live cross-host VM ping, the reachability matrix (tenant-a
over the VXLAN mesh and sw1's VXLAN gateway, tenant-b over VLAN trunks, the two
isolated) and a picture of the topology drawn from live state. Each stage prints its
time. The lab stays up for exploring; ``make lab-down`` removes it.
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
from lab import topology  # noqa: E402
from lab.control import INVENTORY, REPO, LabControl, changed_count, make_declared_guests  # noqa: E402

TIMES: list[tuple[str, float]] = []


class Stage:
    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self) -> Stage:
        print(f"\n=== {self.title}", flush=True)
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        took = time.monotonic() - self.started
        TIMES.append((self.title, took))
        print(f"--- {took:.1f} s", flush=True)


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
    verdict = "LEAKED" if leaked else "blocked, as it must be"
    print(f"  isolation: hv1/vm2 (tenant-b) -> tenant-a 198.51.100.132: {verdict}")
    return failures + leaked


def testinfra(lab: LabControl) -> int:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(
        [
            sys.executable,
            *("-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "tests" / "infra")),
            "--hosts=ansible://all",
            f"--ansible-inventory={INVENTORY}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    print("  " + (proc.stdout.strip().splitlines() or ["(no output)"])[-1])
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
    return proc.returncode


def main() -> int:
    started = time.monotonic()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="ovsr-demo-") as tmp:
        with Stage("building the .deb and .rpm"):
            dist = build_packages(Path(tmp))
        with Stage("booting the lab fleet: sw1 (top-of-rack switch) and hv1..hv3"):
            lab_fleet.down(log=False)
            hosts = lab_fleet.up(log=False)
            for host in hosts:
                print(f"  {host.name:<4} {host.role:<12} ssh root@{host.mgmt_ip}")
        lab = LabControl(hosts, dist)
        with Stage("ansible-playbook -i inventories/lab playbooks/site.yml (switches first)"):
            run = lab.playbook("site.yml")
            print("\n".join(line for line in run.stdout.splitlines() if ": ok=" in line))
            if run.returncode != 0:
                print(run.stdout[-3000:])
                return 1
            again = lab.playbook("site.yml")
            print(f"  second run: changed={changed_count(again.stdout)}")
        with Stage("making the VMs the inventory declares (TAP ports moved into namespaces)"):
            guests = make_declared_guests(lab)
            time.sleep(1)
        with Stage("verifying every host with testinfra (tests/infra)"):
            failures += testinfra(lab) != 0
        with Stage("ovsr-fleet -i inventories/lab status (Fabric)"):
            print(lab.fleet_cli("status").stdout.rstrip())
        with Stage("hv1's uplink: an active-backup bond of two cables (ovsr bond-show)"):
            bond = lab.ssh("hv1", "ovsr bond-show bond0", check=False)
            print("\n".join("  " + line for line in bond.stdout.rstrip().splitlines()))
            failures += bond.returncode != 0 or "active member\n" not in bond.stdout
        with Stage("a live cross-host ping: hv1/vm1 -> hv3/vm1 over the VXLAN mesh"):
            ping = lab.in_guest("hv1", "vm1", "ping -c 3 -i 0.2 198.51.100.133")
            print("\n".join("  " + line for line in ping.stdout.strip().splitlines()[-3:]))
            failures += ping.returncode != 0
        with Stage("reachability matrix (tenant-a: VXLAN mesh + sw1 gateway; tenant-b: trunks)"):
            failures += reachability(lab, guests)
        with Stage("drawing the topology from live state"):
            picture = topology.draw(lab, lab_fleet.LAB_DIR / "topology.svg")
            print(f"  {picture}")
    verdict = "everything as declared" if failures == 0 else f"{failures} FAILURE(S)"
    print(f"\n=== done in {time.monotonic() - started:.0f} s: {verdict}")
    for title, took in TIMES:
        print(f"  {took:6.1f} s  {title}")
    key = lab_fleet.LAB_DIR / "id_ed25519"
    print(
        "\nThe lab is still running. To explore:\n"
        f"  ssh -i {key} root@198.51.100.11 ovsr show          # hv1's switch\n"
        f"  ssh -i {key} root@198.51.100.10 ovsr fdb-show br-int\n"
        f"  ssh -i {key} root@198.51.100.11 ovsr dump-flows br-int   # the declared ACL\n"
        f"  ssh -i {key} root@198.51.100.11 ovsr trace br-int "
        "'in_port=vm1,tcp,nw_dst=198.51.100.130,tp_dst=23'\n"
        "  scripts/ovsr-fleet -i inventories/lab status          # the fleet, over SSH\n"
        "  ansible-playbook -i inventories/lab playbooks/verify.yml\n"
        "To tear it down: make lab-down"
    )
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
