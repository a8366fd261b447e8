"""The lab fleet: hypervisors hv1..hvN and the top-of-rack switch sw1, each a booted
Debian 12 nspawn host, wired like a rack, reached over SSH.

Wiring (all addresses from 198.51.100.0/24 and 203.0.113.0/24):

- Management: each host's ``host0`` holds its ``ansible_host`` address (198.51.100.1X/25);
  the control node's end, ``ve-lab-X``, holds 198.51.100.1/32 with a host route to it.
  Hosts are reached from the control node only, as from a bastion.
- Rack: hypervisor ``hvN``'s ``eth1`` is a veth into sw1's front-panel port ``swpN``,
  and holds the hypervisor's underlay address 203.0.113.1N/24 (what the host's own network
  config would set; the role moves it onto the bridge with ``move-addresses``). A second
  cable, ``eth2`` into ``swp2N``, makes the uplink an active-backup bond.
- The switch's own tunnel endpoint: sw1's ``vtep0`` (203.0.113.10/24) is a veth into its
  port ``swp0``, as a Linux switch routes its VTEP address into the bridge.
- Bare-metal servers: namespaces ``lab-bm1`` and ``lab-bm2`` on the control node; their
  ``eth0`` are sw1's ``swp10`` (198.51.100.140/26, tenant-a) and ``swp11``
  (198.51.100.200/26, tenant-b).

Nothing is routed off the machine: no default routes, no forwarding. State (PIDs, links,
namespaces) is kept in ``/var/lib/ovs-runtime-lab/state.json``, so ``down`` removes
exactly what ``up`` made, and is safe to run twice or after a crash (it also finds stray
lab hosts by name).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from pyroute2 import IPRoute, NetNS, netns

from lab.nspawn import NspawnHost

REPO = Path(__file__).resolve().parent.parent
# Outside the checkout: the inventory names the SSH key by this absolute path, which
# every tool reads untemplated (ssh, testinfra, Fabric).
LAB_DIR = Path(os.environ.get("OVSR_LAB_DIR", "/var/lib/ovs-runtime-lab"))
CONTROL_IP = "198.51.100.1"
MGMT_PREFIX = 25
MACHINE_PREFIX = "lab-"
BARE_METAL = {
    "bm1": ("swp10", "198.51.100.140", 26),  # tenant-a (VLAN 10, VNI 5010)
    "bm2": ("swp11", "198.51.100.200", 26),  # tenant-b (VLAN 20)
}
EXTRA_INVENTORY = REPO / "inventories" / "lab" / "hosts-extra.yml"
DEFAULT_HYPERVISORS = 3
MAX_HYPERVISORS = 9  # swp1..swp9 (and swp21..swp29); swp10 and swp11 are bare-metal servers


@dataclass
class LabHost:
    name: str
    role: str  # "hw_switches" or "hypervisors"
    mgmt_ip: str
    underlay_ip: str
    pid: int = 0
    leader: int = 0

    @property
    def machine(self) -> str:
        return f"{MACHINE_PREFIX}{self.name}"

    @property
    def netns_path(self) -> str:
        return f"/proc/{self.leader}/ns/net"


def plan(hypervisors: int) -> list[LabHost]:
    if not 1 <= hypervisors <= MAX_HYPERVISORS:
        raise ValueError(f"hypervisors: {hypervisors} is out of range; 1 to {MAX_HYPERVISORS}")
    hosts = [LabHost("sw1", "hw_switches", "198.51.100.10", "203.0.113.10")]
    for n in range(1, hypervisors + 1):
        hosts.append(
            LabHost(f"hv{n}", "hypervisors", f"198.51.100.{10 + n}", f"203.0.113.{10 + n}")
        )
    return hosts


# -- state --------------------------------------------------------------------------------


def state_path() -> Path:
    return LAB_DIR / "state.json"


def load_state() -> list[LabHost]:
    try:
        data = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return []
    return [LabHost(**h) for h in data.get("hosts", [])]


def save_state(hosts: list[LabHost]) -> None:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    state_path().write_text(json.dumps({"hosts": [asdict(h) for h in hosts]}, indent=1))


def alive(pid: int) -> bool:
    return pid > 0 and Path(f"/proc/{pid}").exists()


# -- up -------------------------------------------------------------------------------------


def ssh_key() -> Path:
    """The lab's SSH key; the public half is every host's root authorized_keys."""
    folder = LAB_DIR / "ssh"
    key = LAB_DIR / "id_ed25519"
    if not key.exists():
        LAB_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ovs-runtime-lab",
                "-f",
                str(key),
            ],
            check=True,
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    authorized = folder / "authorized_keys"
    authorized.write_text(Path(f"{key}.pub").read_text())
    os.chmod(authorized, 0o600)
    return key


def _identity_files(host: LabHost) -> dict[Path, str]:
    """A distinct hostname and machine-id per host (the image's own are shared)."""
    folder = LAB_DIR / "hosts" / host.name
    folder.mkdir(parents=True, exist_ok=True)
    machine_id = uuid.uuid5(uuid.NAMESPACE_DNS, f"{host.name}.lab.ovs-runtime").hex
    (folder / "hostname").write_text(f"{host.name}\n")
    (folder / "machine-id").write_text(f"{machine_id}\n")
    return {folder / "hostname": "/etc/hostname", folder / "machine-id": "/etc/machine-id"}


class LabError(RuntimeError):
    pass


PREREQUISITES = {  # command -> the Debian package that has it
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ssh-keygen": "openssh-client",
    "nsenter": "util-linux",
}


def check_prerequisites() -> None:
    missing = sorted({pkg for cmd, pkg in PREREQUISITES.items() if shutil.which(cmd) is None})
    if missing:
        raise LabError(
            f"missing Debian package(s) {', '.join(missing)}: run `make deps` "
            "(scripts/install-deps.sh) as root"
        )
    if os.geteuid() != 0:
        raise LabError("the lab boots containers and makes network devices: run it as root")


def up(hypervisors: int = DEFAULT_HYPERVISORS, log: bool = True) -> list[LabHost]:
    plan(hypervisors)  # a bad count fails before anything happens
    check_prerequisites()
    running = load_state()
    if running and all(alive(h.pid) for h in running):
        if len(running) == hypervisors + 1:
            _say(log, f"lab: already up, reusing it ({', '.join(h.name for h in running)})")
            return running
        raise LabError(
            f"a lab with {len(running) - 1} hypervisor(s) is running; "
            "take it down first (make lab-down)"
        )
    down(log=False)  # a partial or crashed lab: never reuse half-built hosts
    hosts = plan(hypervisors)
    ssh_key()
    machines = {}
    try:
        for host in hosts:
            machine = NspawnHost(
                host.machine,
                {LAB_DIR / "ssh": "/root/.ssh", **_identity_files(host)},
                hostname=host.name,
                network="veth",
            )
            machine.start(log=LAB_DIR / f"{host.name}.log")
            machines[host.name] = machine
        for host in hosts:
            machine = machines[host.name].wait_booted(180)
            assert machine.proc is not None and machine.leader is not None
            host.pid, host.leader = machine.proc.pid, machine.leader
            save_state(hosts)  # as soon as there is something to clean up
        _wire_management(hosts)
        _wire_rack(hosts)
        _wire_bare_metal(hosts[0])
        _wait_for_ssh(hosts)
    except BaseException:
        save_state([h for h in hosts if h.pid])
        down(log=False)
        raise
    _write_extra_inventory(hosts)
    _say(log, f"lab: up: {', '.join(f'{h.name} {h.mgmt_ip}' for h in hosts)}")
    return hosts


def _wire_management(hosts: list[LabHost]) -> None:
    with IPRoute() as ipr:
        for host in hosts:
            veth = f"ve-{host.machine}"[:15]
            index = _wait_link(ipr, veth)
            ipr.link("set", index=index, state="up")
            with contextlib.suppress(Exception):
                ipr.addr("add", index=index, address=CONTROL_IP, prefixlen=32)
            ipr.route("replace", dst=host.mgmt_ip, dst_len=32, oif=index)
            with NetNS(host.netns_path) as nsr:
                inner = nsr.link_lookup(ifname="host0")[0]
                nsr.link("set", index=inner, state="up")
                nsr.addr("add", index=inner, address=host.mgmt_ip, prefixlen=MGMT_PREFIX)


def _wait_link(ipr: IPRoute, name: str, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ipr.link_lookup(ifname=name)
        if found:
            return int(found[0])
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not appear")


def _veth_between(a_path: str, a_name: str, b_path: str, b_name: str, tag: str) -> None:
    """A veth pair from one namespace (a path) to another, renamed and up on both sides."""
    tmp_a, tmp_b = f"lab{tag}a", f"lab{tag}b"
    with IPRoute() as ipr:
        ipr.link("add", ifname=tmp_a, kind="veth", peer=tmp_b)
        for tmp, path in ((tmp_a, a_path), (tmp_b, b_path)):
            fd = os.open(path, os.O_RDONLY)
            try:
                ipr.link("set", index=ipr.link_lookup(ifname=tmp)[0], net_ns_fd=fd)
            finally:
                os.close(fd)
    for tmp, path, name in ((tmp_a, a_path, a_name), (tmp_b, b_path, b_name)):
        with NetNS(path) as nsr:
            index = nsr.link_lookup(ifname=tmp)[0]
            nsr.link("set", index=index, ifname=name, state="up")


def _wire_rack(hosts: list[LabHost]) -> None:
    switch = hosts[0]
    for n, host in enumerate(hosts[1:], start=1):
        _veth_between(host.netns_path, "eth1", switch.netns_path, f"swp{n}", f"r{n}")
        _veth_between(host.netns_path, "eth2", switch.netns_path, f"swp{20 + n}", f"s{n}")
        _address(host.netns_path, "eth1", host.underlay_ip, 24)
    _veth_between(switch.netns_path, "vtep0", switch.netns_path, "swp0", "v0")
    _address(switch.netns_path, "vtep0", switch.underlay_ip, 24)


def _address(path: str, device: str, address: str, prefixlen: int) -> None:
    with NetNS(path) as nsr:
        nsr.addr(
            "add", index=nsr.link_lookup(ifname=device)[0], address=address, prefixlen=prefixlen
        )


def _wire_bare_metal(switch: LabHost) -> None:
    for name, (port, address, prefixlen) in BARE_METAL.items():
        ns = f"{MACHINE_PREFIX}{name}"
        netns.create(ns)
        _veth_between(f"/run/netns/{ns}", "eth0", switch.netns_path, port, name)
        with NetNS(ns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
            nsr.addr(
                "add", index=nsr.link_lookup(ifname="eth0")[0], address=address, prefixlen=prefixlen
            )


def _wait_for_ssh(hosts: list[LabHost], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    waiting = {h.name: h.mgmt_ip for h in hosts}
    while waiting and time.monotonic() < deadline:
        for name, address in list(waiting.items()):
            try:
                with socket.create_connection((address, 22), timeout=1) as conn:
                    if conn.recv(4).startswith(b"SSH-"):
                        del waiting[name]
            except OSError:
                pass
        time.sleep(0.2)
    if waiting:
        raise RuntimeError(f"sshd did not answer on {', '.join(sorted(waiting))} in {timeout:g} s")


def _write_extra_inventory(hosts: list[LabHost]) -> None:
    """hv4 and up (the static inventory lists sw1 and hv1..hv3)."""
    extra = [h for h in hosts if h.role == "hypervisors" and int(h.name[2:]) > DEFAULT_HYPERVISORS]
    if not extra:
        EXTRA_INVENTORY.unlink(missing_ok=True)
        return
    lines = [
        "---",
        "# Written by the lab tooling (lab up --hypervisors N); removed by lab down.",
        "all:",
        "  children:",
        "    hypervisors:",
        "      hosts:",
    ]
    for h in extra:
        lines += [
            f"        {h.name}:",
            f"          ansible_host: {h.mgmt_ip}",
            f"          ovs_runtime_network_underlay_ip: {h.underlay_ip}",
        ]
    EXTRA_INVENTORY.write_text("\n".join(lines) + "\n")


# -- down -----------------------------------------------------------------------------------


def _stray_machines() -> list[int]:
    """nspawn processes of lab hosts this state file does not know (a crashed ``up``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"systemd-nspawn")
            and any(a.startswith(f"--machine={MACHINE_PREFIX}".encode()) for a in argv)
        ):
            found.append(int(proc.name))
    return found


def _leader_of(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _power_off(pid: int) -> None:
    leader = _leader_of(pid)
    if leader is not None:
        subprocess.run(
            ["nsenter", "-t", str(leader), "-a", "systemctl", "poweroff", "--no-block"],
            capture_output=True,
            timeout=30,
            check=False,
        )


def _wait_or_kill(pids: set[int], timeout: float = 15) -> None:
    """Wait for all hosts to power off, together; kill what is left after ``timeout``.
    The hosts are volatile, so a kill loses nothing (systemd in a container can take
    long to give up on cgroups it cannot clean)."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def down(log: bool = True) -> None:
    hosts = load_state()
    pids = {h.pid for h in hosts if alive(h.pid)} | set(_stray_machines())
    # Power off all at once, then wait: a fleet shuts down in the time of one host.
    for pid in sorted(pids):
        _power_off(pid)
    _wait_or_kill(pids)
    for name in BARE_METAL:
        with contextlib.suppress(Exception):
            netns.remove(f"{MACHINE_PREFIX}{name}")
    with IPRoute() as ipr:  # the control node's ends vanish with the hosts; make sure
        for link in ipr.get_links():
            ifname = link.get_attr("IFLA_IFNAME") or ""
            if ifname.startswith(f"ve-{MACHINE_PREFIX}") or (
                ifname.startswith("lab") and ifname[-1:] in ("a", "b") and len(ifname) <= 8
            ):
                with contextlib.suppress(Exception):
                    ipr.link("del", index=link["index"])
    state_path().unlink(missing_ok=True)
    EXTRA_INVENTORY.unlink(missing_ok=True)
    _say(log, f"lab: down ({len(pids)} host(s) stopped)")


def status() -> list[dict[str, object]]:
    rows = []
    for host in load_state():
        reachable = False
        try:
            with socket.create_connection((host.mgmt_ip, 22), timeout=1):
                reachable = True
        except OSError:
            pass
        rows.append(
            {
                "host": host.name,
                "role": host.role,
                "mgmt": host.mgmt_ip,
                "running": alive(host.pid),
                "ssh": reachable,
            }
        )
    return rows


def _say(enabled: bool, text: str) -> None:
    if enabled:
        print(text, flush=True)
