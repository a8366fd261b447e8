"""A host on a switch port that asks for the switch's own address gets one answer,
through the bridge, not a second one from the kernel straight off the port's device
(which sent the peer's traffic around the bridge and broke it when that link went down:
the lab's tenant network lost four seconds on a bond failover). Real veths, the daemon
in a namespace playing the switch."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, NetNS

from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import apply_bridge
from tests.netns_lab import NetnsLab, in_namespace

SWITCH_IP = "198.51.100.1"  # on the bridge's own port
CLIENT_IP = "198.51.100.2"
BRIDGE = "br-g"
ETH_P_ARP = 0x0806


@pytest.fixture
def switch_host(lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[DaemonProcess, str]]:
    client = lab.add_host("c", CLIENT_IP)
    switch_ns = lab.add_namespace("s")
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=client.switch_port)[0], net_ns_fd=switch_ns)
    with NetNS(switch_ns) as nsr:
        nsr.link("set", index=nsr.link_lookup(ifname=client.switch_port)[0], state="up")
        nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
    daemon = DaemonProcess(tmp_path / "d", extra_args=(), netns=switch_ns).start()
    try:
        yield daemon, client.switch_port
    finally:
        daemon.stop()
        print(daemon.log()[-3000:])


def arp_ignore(ns: str, device: str) -> int:
    with in_namespace(ns), open(f"/proc/sys/net/ipv4/conf/{device}/arp_ignore") as f:
        return int(f.read())


def mac_of(ns: str, device: str) -> bytes:
    with NetNS(ns) as nsr:
        text = nsr.get_links(nsr.link_lookup(ifname=device)[0])[0].get_attr("IFLA_ADDRESS")
    return bytes.fromhex(str(text).replace(":", ""))


def who_answers(lab: NetnsLab, target: str) -> list[bytes]:
    """Broadcast one ARP request from the client; the sender MACs of the replies."""
    own = mac_of(lab.hosts["c"].ns, "eth0")
    request = (
        b"\xff" * 6
        + own
        + struct.pack("!HHHBBH", ETH_P_ARP, 1, 0x0800, 6, 4, 1)
        + own
        + socket.inet_aton(CLIENT_IP)
        + b"\x00" * 6
        + socket.inet_aton(target)
    )
    port = lab.raw_socket("c")
    try:
        port.drain(0)
        port.send(request)
        frames = port.drain(0.5)
    finally:
        port.close()
    return [
        f[22:28]
        for f in frames
        if f[12:14] == b"\x08\x06"
        and f[20:22] == b"\x00\x02"
        and f[28:32] == socket.inet_aton(target)
    ]


def test_the_switch_answers_arp_only_through_its_bridge(
    switch_host: tuple[DaemonProcess, str], lab: NetnsLab, tmp_path: Path
) -> None:
    daemon, port = switch_host
    ns = lab.hosts["s"].ns
    assert arp_ignore(ns, port) == 0
    apply_bridge(daemon, tmp_path, BRIDGE, {port: {}})
    with NetNS(ns) as nsr:
        index = nsr.link_lookup(ifname=BRIDGE)[0]
        nsr.link("set", index=index, state="up")
        nsr.addr("add", index=index, address=SWITCH_IP, prefixlen=24)
    assert arp_ignore(ns, port) == 1
    answers = who_answers(lab, SWITCH_IP)
    assert answers == [mac_of(ns, BRIDGE)], (
        f"ARP for {SWITCH_IP} answered by {[a.hex(':') for a in answers]}; only the bridge "
        f"port {mac_of(ns, BRIDGE).hex(':')} should (the port's device is "
        f"{mac_of(ns, port).hex(':')})"
    )
    assert lab.ping("c", SWITCH_IP)

    # A daemon restart keeps the setting, and still knows what to put back.
    daemon.stop()
    daemon.start()
    assert arp_ignore(ns, port) == 1
    assert daemon.ovsr("del-port", BRIDGE, port).returncode == 0
    deadline = time.monotonic() + 5
    while arp_ignore(ns, port) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert arp_ignore(ns, port) == 0, "arp_ignore not put back when the port left the bridge"
