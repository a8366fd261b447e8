"""MTU and MAC settings on real devices: ``Interface.mtu_request`` on a veth and on an
internal port, ``Interface.mac`` and the bridge's ``other_config:hwaddr``, 8,000-byte
pings across the switch once both ends allow them, and everything the daemon set on a
device (MTU and QoS) set again after the device was deleted and created anew."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute, NetNS

from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import apply_bridge, wait_attached
from tests.integration.test_qos import root_qdisc, wait_for_htb
from tests.netns_lab import Host, NetnsLab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")
NET = "198.51.100."
QOS_10_MBIT = ["--id=@q", "create", "QoS", "type=linux-htb", "other_config:max-rate=10000000"]


def link_attr(device: str, attr: str, ns: str | None = None) -> object:
    with NetNS(ns) if ns else IPRoute() as ipr:
        (link,) = ipr.get_links(ipr.link_lookup(ifname=device)[0])
        return link.get_attr(attr)


def set_peer_mtu(lab: NetnsLab, host: str, mtu: int) -> None:
    with NetNS(lab.hosts[host].ns) as nsr:
        nsr.link("set", index=nsr.link_lookup(ifname="eth0")[0], mtu=mtu)


def wait_for(check: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def interface_row(switch: DaemonProcess, name: str) -> dict[str, object]:
    out = switch.ovsr("--format", "json", "list", "Interface", name).stdout
    row: dict[str, object] = json.loads(out)[0]
    return row


def two_hosts(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path, *settings: Callable[[str, str], list[str]]
) -> tuple[Host, Host]:
    """h1 and h2 on br0, then one ovsr command line from ``settings`` (each given the two
    switch ports' names)."""
    h1, h2 = lab.add_host("h1", f"{NET}1"), lab.add_host("h2", f"{NET}2")
    apply_bridge(switch, tmp_path, "br0", {h1.switch_port: {}, h2.switch_port: {}})
    args = [a for make in settings for a in ("--", *make(h1.switch_port, h2.switch_port))]
    ok = switch.ovsr(*args)
    assert ok.returncode == 0, ok.stderr
    return h1, h2


def test_mtu_and_mac_reach_the_devices_and_jumbo_frames_cross(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    h1, h2 = two_hosts(
        switch,
        lab,
        tmp_path,
        lambda p1, _p2: ["set", "Interface", p1, "mtu_request=9000"],
        lambda _p1, p2: ["set", "Interface", p2, "mtu_request=9000"],
        lambda _p1, _p2: ["set", "Interface", "br0", "mtu_request=9000"],
        lambda _p1, _p2: ["set", "Bridge", "br0", "other_config:hwaddr=02:00:5e:10:00:01"],
    )
    wait_for(lambda: link_attr(h1.switch_port, "IFLA_MTU") == 9000, "the veth's MTU")
    wait_for(lambda: link_attr("br0", "IFLA_ADDRESS") == "02:00:5e:10:00:01", "the bridge MAC")
    assert link_attr(h2.switch_port, "IFLA_MTU") == 9000 and link_attr("br0", "IFLA_MTU") == 9000
    wait_for(lambda: interface_row(switch, h1.switch_port)["mtu"] == [9000], "Interface.mtu")
    assert interface_row(switch, "br0")["mac_in_use"] == ["02:00:5e:10:00:01"]

    for host in ("h1", "h2"):
        set_peer_mtu(lab, host, 9000)
    ping = lab.run("h1", "ping", "-c", "3", "-i", "0.2", "-M", "do", "-s", "8000", f"{NET}2")
    assert ping.returncode == 0 and "3 received" in ping.stdout, ping.stdout + ping.stderr

    # As in OVS, the bridge's own port takes its address from the bridge only.
    own = switch.ovsr("set", "Interface", "br0", "mac=02:00:5e:10:00:02")
    assert own.returncode == 1 and "other_config:hwaddr" in own.stderr, own.stderr

    # A value the device refuses (a TAP device's limit is 65521) is reported in
    # Interface.error; the device keeps its MTU and the switch keeps working.
    assert switch.ovsr("set", "Interface", "br0", "mtu_request=65535").returncode == 0
    wait_for(
        lambda: "mtu_request 65535" in str(interface_row(switch, "br0")["error"]),
        "the refusal in Interface.error",
    )
    assert link_attr("br0", "IFLA_MTU") == 9000
    assert lab.ping("h1", f"{NET}2")
    # Without mtu_request, an internal port follows the smallest MTU of the others.
    assert switch.ovsr("clear", "Interface", "br0", "mtu_request").returncode == 0
    wait_for(lambda: interface_row(switch, "br0")["error"] == [], "the error to clear")
    assert switch.ovsr("set", "Interface", h2.switch_port, "mtu_request=4000").returncode == 0
    wait_for(lambda: link_attr("br0", "IFLA_MTU") == 4000, "the local port to follow")
    bad = switch.ovsr("set", "Interface", h1.switch_port, "mac=02:00:00:00:00:01")
    assert bad.returncode == 1 and "only on internal and tap ports" in bad.stderr, bad.stderr


def test_a_recreated_device_gets_its_mtu_and_qos_again(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    _h1, h2 = two_hosts(
        switch,
        lab,
        tmp_path,
        lambda _p1, p2: ["set", "Interface", p2, "mtu_request=4000"],
        lambda _p1, p2: ["set", "Port", p2, "qos=@q"],
        lambda _p1, _p2: QOS_10_MBIT,
    )
    wait_for_htb(h2.switch_port, present=True)
    wait_for(lambda: link_attr(h2.switch_port, "IFLA_MTU") == 4000, "the MTU")

    # The VM's device goes away and comes back (a reboot re-creates its tap): a new
    # device with the default MTU and no qdisc of ours.
    lab.hosts.pop("h2")
    from pyroute2 import netns

    netns.remove(f"{lab.prefix}h2")
    wait_for(lambda: not os.path.exists(f"/sys/class/net/{h2.switch_port}"), "the deletion")
    lab.add_host("h2", f"{NET}2")
    wait_attached(switch, [h2.switch_port], timeout=15)
    wait_for(lambda: link_attr(h2.switch_port, "IFLA_MTU") == 4000, "the MTU set again")
    wait_for_htb(h2.switch_port, present=True)
    assert root_qdisc(h2.switch_port) == ("htb", 0x10000)
    lab.forget_neighbours("h1")
    assert lab.ping("h1", f"{NET}2")
