"""Tunnels with real packets: ovs-runtime's userspace VXLAN against the kernel's own
VXLAN device (interoperability), Geneve between two ovs-runtime switches, TCP with
offloads on through the tunnel, 200 tunnel ports, malformed datagrams and bad options.

Topology: namespace ``h1`` runs the daemon; its underlay ``und0`` (203.0.113.1) is a
veth to namespace ``h2`` (203.0.113.2). A "VM" namespace hangs off h1's bridge in VLAN 10.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyroute2 import NetNS

from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import wait_attached
from tests.netns_lab import NetnsLab, RawPort, in_namespace

H1, H2 = "203.0.113.1", "203.0.113.2"
H1_V6, H2_V6 = "2001:db8:113::1", "2001:db8:113::2"  # documentation prefix (RFC 3849)
VM_IP, FAR_IP = "198.51.100.1", "198.51.100.2"
VNI = 5010
TENANT_MTU = 1450  # 1500 minus the 50 bytes of VXLAN over IPv4


class Underlay:
    def __init__(self, lab: NetnsLab, tmp: Path) -> None:
        self.lab, self.tmp = lab, tmp
        self.h1 = lab.add_namespace("h1")
        self.h2 = lab.add_namespace("h2")
        lab.wire(self.h1, "und0", self.h2, "und0")
        for ns, address in ((self.h1, H1), (self.h2, H2)):
            with NetNS(ns) as nsr:
                nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
                nsr.addr(
                    "add", index=nsr.link_lookup(ifname="und0")[0], address=address, prefixlen=24
                )
        self.vm = lab.add_host("vm", ip=f"{VM_IP}/24")
        lab.move_link(self.vm.switch_port, "/proc/self/ns/net", self.h1)
        with NetNS(self.vm.ns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="eth0")[0], mtu=TENANT_MTU)
        self.daemons: dict[str, DaemonProcess] = {}

    def start(self, name: str, ns: str) -> DaemonProcess:
        self.daemons[name] = DaemonProcess(self.tmp / name, extra_args=(), netns=ns).start()
        return self.daemons[name]

    def apply(
        self, daemon: DaemonProcess, ports: dict[str, Any], attach: list[str] | None = None
    ) -> None:
        path = self.tmp / "tun.yaml"
        path.write_text(yaml.safe_dump({"bridges": {"br0": {"ports": ports}}}))
        proc = daemon.ovsr("--timeout", "60", "apply", str(path))
        assert proc.returncode in (0, 2), proc.stderr
        wait_attached(daemon, attach if attach is not None else list(ports), timeout=30)

    def stop(self) -> None:
        for daemon in self.daemons.values():
            daemon.stop()
            print(daemon.log()[-2500:])


@pytest.fixture
def underlay(lab: NetnsLab, tmp_path: Path) -> Iterator[Underlay]:
    net = Underlay(lab, tmp_path)
    try:
        yield net
    finally:
        net.stop()


def kernel_vxlan(ns: str, address: str, remote: str = H1, local: str = H2) -> None:
    """h2 is a plain Linux host: a kernel VXLAN device toward h1, holding the far IP.

    Its underlay veth gets checksum offload off: a veth hands a partial inner checksum
    to the receiver as it is, where a real NIC completes it before the wire. This is the
    far host emulating a NIC; nothing is changed on the ports of the switch under test.
    """
    subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", "ethtool", "-K", "und0", "tx", "off"],
        check=True,
        capture_output=True,
    )
    with NetNS(ns) as nsr:
        v6 = ":" in remote
        ends = (
            {"vxlan_group6": remote, "vxlan_local6": local}
            if v6
            else {"vxlan_group": remote, "vxlan_local": local}
        )
        nsr.link("add", ifname="vx0", kind="vxlan", vxlan_id=VNI, vxlan_port=4789, **ends)
        index = nsr.link_lookup(ifname="vx0")[0]
        nsr.link("set", index=index, state="up", mtu=TENANT_MTU - 20 if v6 else TENANT_MTU)
        nsr.addr("add", index=index, address=address, prefixlen=24)


def tunnel(remote: str, kind: str = "vxlan", key: int = VNI, **extra: str) -> dict[str, Any]:
    return {"type": kind, "tag": 10, "options": {"remote_ip": remote, "key": str(key), **extra}}


def interface(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    rows = json.loads(daemon.ovsr("--format", "json", "list", "Interface", name).stdout)
    return dict(rows[0])


def status_map(row: dict[str, Any]) -> dict[str, str]:
    value = row["status"]
    return dict(value[1]) if isinstance(value, list) and value[:1] == ["map"] else dict(value)


def test_userspace_vxlan_interoperates_with_the_kernel_vxlan(
    underlay: Underlay, lab: NetnsLab
) -> None:
    kernel_vxlan(underlay.h2, f"{FAR_IP}/24")
    daemon = underlay.start("h1", underlay.h1)
    underlay.apply(daemon, {underlay.vm.switch_port: {"tag": 10}, "vx-h2": tunnel(H2)})
    assert lab.ping("vm", FAR_IP), "ping through userspace VXLAN to the kernel's VXLAN"

    # TCP with the veth offloads left on: GSO super-frames are segmented and
    # checksummed in software before encapsulation.
    server = lab.popen("h2", "iperf3", "-s", "-1", "-B", FAR_IP)
    try:
        time.sleep(0.5)
        client = lab.run("vm", "iperf3", "-c", FAR_IP, "-t", "2", "-J", timeout=60)
        assert client.returncode == 0, client.stdout[-2000:] + client.stderr
        result = json.loads(client.stdout)
        gbits = result["end"]["sum_received"]["bits_per_second"] / 1e9
        assert gbits > 0.01, f"TCP over the tunnel: {gbits:.3f} Gbit/s"
        print(f"TCP through userspace VXLAN to the kernel: {gbits:.2f} Gbit/s")
        # The kernel cut the super-frames: the daemon's segmenting device is up in
        # its namespace (and the far kernel accepted every checksum, or TCP stalls).
        with NetNS(underlay.h1) as nsr:
            names = [link.get_attr("IFLA_IFNAME") for link in nsr.get_links()]
        assert any(name.startswith("ovsr-gso") for name in names), names
    finally:
        server.kill()
        server.wait()

    # Status: the remote is reachable over und0.
    row = interface(daemon, "vx-h2")
    status = status_map(row)
    assert status["tunnel_remote_ip"] == H2 and status["tunnel_egress_iface"] == "und0"
    assert status["tunnel_remote_reachable"] == "true" and row["link_state"] in ("up", ["up"])

    # A VM left at MTU 1500 sends a frame too large for the underlay: it fails with a
    # counted, explained error, never silently.
    with NetNS(underlay.vm.ns) as nsr:
        nsr.link("set", index=nsr.link_lookup(ifname="eth0")[0], mtu=1500)
    big = lab.run("vm", "ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1472", FAR_IP)
    assert big.returncode != 0
    deadline = time.monotonic() + 5
    while (
        "tunnel_last_error" not in status_map(interface(daemon, "vx-h2"))
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    message = status_map(interface(daemon, "vx-h2"))["tunnel_last_error"]
    # und0's MTU is 1500: 1514 + 36 does not fit, and 1500 - 36 - 14 would.
    assert "1514 bytes + 36 bytes of vxlan overhead exceeds path MTU 1500" in message, message
    assert "lower the MTU of the ports in this network to 1450" in message, message
    stats = status_map({"status": interface(daemon, "vx-h2")["statistics"]})
    print(message)
    assert stats["tx_errors"] >= 1


def test_ipv6_underlay_interoperates_with_the_kernel_vxlan(
    underlay: Underlay, lab: NetnsLab
) -> None:
    """An IPv6 underlay, with no local_ip: the tunnel gets an IPv6 socket of its own
    (the IPv4 tunnels keep theirs on the same port), and the kernel's VXLAN over IPv6
    on the far host answers."""
    for ns, address in ((underlay.h1, H1_V6), (underlay.h2, H2_V6)):
        lab.sysctl(ns, "net/ipv6/conf/und0/accept_dad", "0")
        with NetNS(ns) as nsr:
            nsr.addr("add", index=nsr.link_lookup(ifname="und0")[0], address=address, prefixlen=64)
    kernel_vxlan(underlay.h2, f"{FAR_IP}/24", remote=H1_V6, local=H2_V6)
    daemon = underlay.start("h1", underlay.h1)
    underlay.apply(
        daemon,
        {underlay.vm.switch_port: {"tag": 10}, "vx6-h2": tunnel(H2_V6), "vx4": tunnel(H2, key=7)},
    )
    assert lab.ping("vm", FAR_IP), "ping through userspace VXLAN over IPv6 to the kernel"
    status = status_map(interface(daemon, "vx6-h2"))
    assert status["tunnel_remote_ip"] == H2_V6 and status["tunnel_egress_iface"] == "und0"
    assert "tunnel_last_error" not in status, status
    dpif = json.loads(daemon.ovsr("--format", "json", "dpif-show").stdout)
    assert sorted(dpif["tunnel_endpoints"]) == ["vxlan 0.0.0.0:4789", "vxlan [::]:4789"]


def test_malformed_datagrams_are_dropped_and_counted(underlay: Underlay, lab: NetnsLab) -> None:
    kernel_vxlan(underlay.h2, f"{FAR_IP}/24")
    daemon = underlay.start("h1", underlay.h1)
    underlay.apply(daemon, {underlay.vm.switch_port: {"tag": 10}, "vx-h2": tunnel(H2)})
    garbage = [
        b"",  # empty
        b"\x08\x00",  # truncated header
        b"\x00" * 8 + b"\x11" * 60,  # VNI flag missing
        b"\x08\x00\x00\x00" + (4242 << 8).to_bytes(4, "big") + b"\x22" * 60,  # unknown VNI
        b"\x08\x00\x00\x00" + (VNI << 8).to_bytes(4, "big") + b"\x33" * 5,  # runt inner frame
    ]
    with in_namespace(underlay.h2):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(200):
            for payload in garbage:
                sender.sendto(payload, (H1, 4789))
    finally:
        sender.close()
    time.sleep(0.5)
    dpif = json.loads(daemon.ovsr("--format", "json", "dpif-show").stdout)
    drops = next(iter(dpif["tunnel_endpoints"].values()))["drops"]
    assert drops.get("truncated", 0) >= 400 and drops.get("bad-vxlan-flags", 0) >= 200
    assert drops.get("unknown-tunnel", 0) >= 200
    assert lab.ping("vm", FAR_IP), "still switching after 1000 malformed datagrams"


def outer_and_inner_ports(frame: bytes) -> tuple[int, int] | None:
    """(outer UDP source port, inner UDP source port) of a VXLAN datagram carrying UDP
    over IPv4, else None."""
    if frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    udp = 14 + (frame[14] & 0x0F) * 4
    outer_source, outer_dest = struct.unpack_from("!HH", frame, udp)
    inner = frame[udp + 16 :]  # UDP header, VXLAN header
    if outer_dest != 4789 or inner[12:14] != b"\x08\x00" or inner[23] != 17:
        return None
    inner_source: int = struct.unpack_from("!H", inner, 14 + (inner[14] & 0x0F) * 4)[0]
    return outer_source, inner_source


def test_inner_flows_spread_over_outer_source_ports(underlay: Underlay, lab: NetnsLab) -> None:
    """RFC 7348 section 5: the outer UDP source port follows the inner flow, so an ECMP
    underlay spreads a host's tunnel traffic and keeps each flow on one path. Captured
    on the far host's underlay; the kernel's VXLAN takes every datagram whatever port it
    came from."""
    kernel_vxlan(underlay.h2, f"{FAR_IP}/24")
    daemon = underlay.start("h1", underlay.h1)
    underlay.apply(daemon, {underlay.vm.switch_port: {"tag": 10}, "vx-h2": tunnel(H2)})
    assert lab.ping("vm", FAR_IP)
    flows = range(40001, 40033)
    capture = RawPort(underlay.h2, "und0")
    with in_namespace(underlay.h2):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    senders = []
    try:
        receiver.bind((FAR_IP, 9000))
        receiver.settimeout(2)
        with in_namespace(underlay.vm.ns):
            for port in flows:
                senders.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                senders[-1].bind((VM_IP, port))
        for _ in range(3):
            for sender in senders:
                sender.sendto(b"flow", (FAR_IP, 9000))
        delivered = [receiver.recvfrom(100)[1][1] for _ in range(3 * len(senders))]
        frames = capture.drain(0.3)
    finally:
        capture.close()
        receiver.close()
        for sender in senders:
            sender.close()
    assert sorted(delivered) == sorted(list(flows) * 3)
    outer_by_inner: dict[int, set[int]] = defaultdict(set)
    for frame in frames:
        ports = outer_and_inner_ports(frame)
        if ports is not None and ports[1] in flows:
            outer_by_inner[ports[1]].add(ports[0])
    assert set(outer_by_inner) == set(flows), "every datagram was captured on the underlay"
    assert all(len(outer) == 1 for outer in outer_by_inner.values()), outer_by_inner
    used = set().union(*outer_by_inner.values())
    print(f"{len(flows)} inner flows left from {len(used)} outer source ports")
    assert len(used) >= 16 and 4789 not in used
    dpif = json.loads(daemon.ovsr("--format", "json", "dpif-show").stdout)
    assert used <= set(next(iter(dpif["tunnel_endpoints"].values()))["source_ports"])


def test_geneve_between_two_switches_with_learning(underlay: Underlay, lab: NetnsLab) -> None:
    far_vm = lab.add_host("far", ip=f"{FAR_IP}/24")
    lab.move_link(far_vm.switch_port, "/proc/self/ns/net", underlay.h2)
    with NetNS(far_vm.ns) as nsr:
        nsr.link("set", index=nsr.link_lookup(ifname="eth0")[0], mtu=TENANT_MTU)
    d1 = underlay.start("h1", underlay.h1)
    d2 = underlay.start("h2", underlay.h2)
    underlay.apply(d1, {underlay.vm.switch_port: {"tag": 10}, "gn-h2": tunnel(H2, "geneve")})
    underlay.apply(d2, {far_vm.switch_port: {"tag": 10}, "gn-h1": tunnel(H1, "geneve")})
    assert lab.ping("vm", FAR_IP)
    fdb = json.loads(d1.ovsr("--format", "json", "fdb-show", "br0").stdout)
    learned = {e["port_name"] for e in fdb if e["vlan"] == 10}
    assert "gn-h2" in learned, "the far VM's MAC is learned behind the tunnel port"


def test_two_hundred_tunnels_on_one_bridge(underlay: Underlay, lab: NetnsLab) -> None:
    kernel_vxlan(underlay.h2, f"{FAR_IP}/24")
    daemon = underlay.start("h1", underlay.h1)
    ports: dict[str, Any] = {underlay.vm.switch_port: {"tag": 10}, "vx-h2": tunnel(H2)}
    for n in range(1, 200):
        ports[f"vx{n}"] = tunnel(H2, key=n)
        ports[f"vx{n}"]["tag"] = 20
    underlay.apply(daemon, ports)
    listed = json.loads(
        daemon.ovsr("--format", "json", "--columns=name,type,ofport", "list", "Interface").stdout
    )
    tunnels = [r for r in listed if r["type"] == "vxlan"]
    assert len(tunnels) == 200 and all(r["ofport"][0] > 0 for r in tunnels)
    assert lab.ping("vm", FAR_IP), "traffic flows with 200 tunnel ports on the bridge"


def test_bad_tunnel_options_are_refused_whole(underlay: Underlay) -> None:
    daemon = underlay.start("h1", underlay.h1)
    assert daemon.ovsr("add-br", "br0").returncode == 0
    assert (
        daemon.ovsr(
            "add-port",
            "br0",
            "vx-ok",
            "--",
            "set",
            "Interface",
            "vx-ok",
            "type=vxlan",
            f"options:remote_ip={H2}",
            "options:key=7",
        ).returncode
        == 0
    )
    config = ("--format", "json", "--columns=name,type,options", "list", "Interface")
    before = daemon.ovsr(*config).stdout
    cases = [
        (["options:remote_ip=203.0.113.300", "options:key=1"], "is not an IPv4 or IPv6 address"),
        ([f"options:remote_ip={H2}", "options:key=16777216"], "expected 0 to 16777215"),
        ([f"options:remote_ip={H2}", "options:key=1", "options:dst_port=70000"], "dst_port"),
        ([f"options:remote_ip={H2}", "options:key=1", "options:colour=red"], "unknown option"),
        ([f"options:remote_ip={H2}", "options:key=7"], "are the same vxlan tunnel"),
        (["options:key=1"], "remote_ip is required"),
    ]
    for settings, message in cases:
        proc = daemon.ovsr(
            "add-port", "br0", "vx-bad", "--", "set", "Interface", "vx-bad", "type=vxlan", *settings
        )
        assert proc.returncode == 1 and message in proc.stderr, (settings, proc.stderr)
    assert daemon.ovsr(*config).stdout == before


@pytest.mark.parametrize("remote", [H2, "flow"])
def test_key_flow_tunnel_selects_the_vni_by_flow_rules(
    underlay: Underlay, lab: NetnsLab, remote: str
) -> None:
    """One ``key=flow`` tunnel port carries two tenants: flow rules put each VM's frames
    in its VNI (set_tunnel) and deliver by ``tun_id``. The far host is Linux with one
    kernel VXLAN device per VNI: each VM reaches only the address in its own VNI, and the
    underlay carries both VNIs. With ``remote_ip=flow`` the rules also choose the remote
    (``set_field:...->tun_dst``) and match where frames came from (``tun_src``)."""
    vm2 = lab.add_host("vm2", ip="198.51.100.4/24")
    lab.move_link(vm2.switch_port, "/proc/self/ns/net", underlay.h1)
    for ns in (underlay.vm.ns, vm2.ns):
        with NetNS(ns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="eth0")[0], mtu=TENANT_MTU)
    subprocess.run(
        ["nsenter", f"--net=/run/netns/{underlay.h2}", "ethtool", "-K", "und0", "tx", "off"],
        check=True,
        capture_output=True,
    )
    lab.sysctl(underlay.h2, "net/ipv4/conf/all/arp_ignore", "1")  # ARP per device, like VMs
    with NetNS(underlay.h2) as nsr:
        for name, vni, address, vm_ip in (
            ("vx10", 5010, "198.51.100.2", VM_IP),
            ("vx20", 5020, "198.51.100.3", "198.51.100.4"),
        ):
            nsr.link(
                "add",
                ifname=name,
                kind="vxlan",
                vxlan_id=vni,
                vxlan_group=H1,
                vxlan_local=H2,
                vxlan_port=4789,
            )
            index = nsr.link_lookup(ifname=name)[0]
            nsr.link("set", index=index, state="up", mtu=TENANT_MTU)
            nsr.addr("add", index=index, address=address, prefixlen=32)
            nsr.route("add", dst=f"{vm_ip}/32", oif=index)
    daemon = underlay.start("h1", underlay.h1)
    vm1_port, vm2_port = underlay.vm.switch_port, vm2.switch_port
    underlay.apply(
        daemon,
        {
            vm1_port: {},
            vm2_port: {},
            "vxf": {"type": "vxlan", "options": {"remote_ip": remote, "key": "flow"}},
        },
    )
    to = f"set_field:{H2}->tun_dst," if remote == "flow" else ""
    came = f",tun_src={H2}" if remote == "flow" else ""
    rules = underlay.tmp / "tenants.flows"
    rules.write_text(
        f"priority=100,in_port={vm1_port} actions={to}set_tunnel:5010,output:vxf\n"
        f"priority=100,in_port={vm2_port} actions={to}set_tunnel:5020,output:vxf\n"
        f"priority=100,in_port=vxf,tun_id=5010{came} actions=output:{vm1_port}\n"
        f"priority=100,in_port=vxf,tun_id=5020{came} actions=output:{vm2_port}\n"
    )
    proc = daemon.ovsr("add-flows", "br0", str(rules))
    assert proc.returncode == 0, proc.stderr
    status = status_map(interface(daemon, "vxf"))
    assert status["tunnel_key"] == "flow" and status["tunnel_remote_ip"] == remote

    capture = lab.popen(
        "h2", "tcpdump", "-c", "40", "-nn", "-l", "-i", "und0", "udp", "port", "4789"
    )
    time.sleep(1.0)
    try:
        assert lab.ping("vm", "198.51.100.2"), "VM 1 reaches its tenant's address over VNI 5010"
        assert lab.ping("vm2", "198.51.100.3"), "VM 2 reaches its own over VNI 5020"
        assert not lab.ping("vm", "198.51.100.3", count=2), "VNI 5020 is not VM 1's network"
        assert not lab.ping("vm2", "198.51.100.2", count=2), "nor VNI 5010 VM 2's"
    finally:
        time.sleep(0.5)
        capture.terminate()
        out, _ = capture.communicate(timeout=10)
    # Each encapsulated frame: the VNI, then the inner packet on the next line.
    pairs = re.findall(r"vni (\d+)\n\s*(.*)", out)
    icmp = {
        (vni, m.group(1))
        for vni, inner in pairs
        if (m := re.match(r"IP (\S+) > \S+: ICMP echo", inner))
    }
    assert icmp == {
        ("5010", "198.51.100.1"),
        ("5010", "198.51.100.2"),
        ("5020", "198.51.100.4"),
        ("5020", "198.51.100.3"),
    }, out[-2000:]
