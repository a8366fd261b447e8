"""The safety net of issue 7: an uplink that carries the host's address goes into a
bridge, its addresses and routes move to the bridge port in the same apply, and an
unconfirmed apply rolls itself back, all in a namespace playing the host."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyroute2 import IPRoute, NetNS

from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import wait_attached
from tests.netns_lab import NetnsLab

HOST_IP = "198.51.100.1"
GATEWAY_IP = "198.51.100.254"
REMOTE_IP = "203.0.113.1"  # behind the gateway, reached by a static route
UPLINK = "uplink0"
BRIDGE = "br-up"


@pytest.fixture
def host(lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[NetnsLab, DaemonProcess]]:
    gateway = lab.add_host("gw", ip=f"{GATEWAY_IP}/24")
    hostns = lab.add_namespace("h")
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=gateway.switch_port)[0], net_ns_fd=hostns)
    with NetNS(hostns) as nsr:
        idx = nsr.link_lookup(ifname=gateway.switch_port)[0]
        nsr.link("set", index=idx, ifname=UPLINK, state="up")
        nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
        nsr.addr("add", index=idx, address=HOST_IP, prefixlen=24)
        nsr.route("add", dst="203.0.113.0", dst_len=24, gateway=GATEWAY_IP, oif=idx)
    with NetNS(gateway.ns) as nsr:
        nsr.addr("add", index=nsr.link_lookup(ifname="lo")[0], address=REMOTE_IP, prefixlen=32)
    daemon = DaemonProcess(tmp_path / "d", extra_args=(), netns=hostns).start()
    try:
        yield lab, daemon
    finally:
        daemon.stop()
        print(daemon.log()[-3000:])


def addresses(lab: NetnsLab, device: str) -> list[str]:
    with NetNS(lab.hosts["h"].ns) as nsr:
        found = nsr.link_lookup(ifname=device)
        if not found:
            return []
        return sorted(
            f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}"
            for m in nsr.get_addr(index=found[0], family=socket.AF_INET)
        )


def mac_and_flags(lab: NetnsLab, device: str) -> tuple[str, int]:
    with NetNS(lab.hosts["h"].ns) as nsr:
        link = nsr.get_links(nsr.link_lookup(ifname=device)[0])[0]
        return str(link.get_attr("IFLA_ADDRESS")), int(link["flags"])


IFF_NOARP = 0x80


def route_device(lab: NetnsLab) -> str:
    with NetNS(lab.hosts["h"].ns) as nsr:
        for msg in nsr.get_routes(family=socket.AF_INET, table=254):
            if msg.get_attr("RTA_DST") == "203.0.113.0":
                index = msg.get_attr("RTA_OIF")
                return str(nsr.get_links(index)[0].get_attr("IFLA_IFNAME"))
    return "none"


def reachable(lab: NetnsLab) -> bool:
    proc = lab.run("h", "ping", "-c", "3", "-i", "0.2", "-W", "1", REMOTE_IP, timeout=30)
    assert "DUP" not in proc.stdout, proc.stdout  # one copy per reply, not one per path
    return proc.returncode == 0


def apply(daemon: DaemonProcess, tmp: Path, ports: Mapping[str, Any], *extra: str) -> str:
    path = tmp / "uplink.yaml"
    path.write_text(yaml.safe_dump({"bridges": {BRIDGE: {"ports": ports}}}))
    proc = daemon.ovsr("--format", "json", "apply", "--state=replaced", *extra, str(path))
    assert proc.returncode in (0, 2), proc.stderr
    return str(json.loads(proc.stdout).get("confirm_token", ""))


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


MOVED = {UPLINK: {"other_config": {"move-addresses": "true"}}}


def test_uplink_addresses_move_with_a_confirmed_apply(
    host: tuple[NetnsLab, DaemonProcess], tmp_path: Path
) -> None:
    lab, daemon = host
    assert reachable(lab)
    uplink_mac, _ = mac_and_flags(lab, UPLINK)
    token = apply(daemon, tmp_path, MOVED, "--confirm-timeout=3")
    wait_attached(daemon, [UPLINK, BRIDGE])
    assert wait_for(lambda: addresses(lab, BRIDGE) == [f"{HOST_IP}/24"])
    assert addresses(lab, UPLINK) == []
    # The bridge port took the uplink's MAC; the uplink no longer answers ARP.
    assert mac_and_flags(lab, BRIDGE)[0] == uplink_mac
    assert mac_and_flags(lab, UPLINK)[1] & IFF_NOARP
    assert route_device(lab) == BRIDGE
    assert reachable(lab), "the host reaches the remote through the bridge port"
    assert daemon.ovsr("confirm", token).returncode == 0
    time.sleep(3.5)
    assert addresses(lab, BRIDGE) == [f"{HOST_IP}/24"] and reachable(lab)
    assert "not confirmed" not in daemon.log()

    # Taking the uplink out of the bridge gives it its addresses and routes back.
    apply(daemon, tmp_path, {})
    assert wait_for(lambda: addresses(lab, UPLINK) == [f"{HOST_IP}/24"])
    assert addresses(lab, BRIDGE) == []
    assert route_device(lab) == UPLINK
    assert mac_and_flags(lab, UPLINK) == (uplink_mac, mac_and_flags(lab, UPLINK)[1])
    assert not mac_and_flags(lab, UPLINK)[1] & IFF_NOARP
    assert reachable(lab)


def test_an_apply_that_cuts_the_host_off_rolls_itself_back(
    host: tuple[NetnsLab, DaemonProcess], tmp_path: Path
) -> None:
    lab, daemon = host
    apply(daemon, tmp_path, MOVED)
    wait_attached(daemon, [UPLINK, BRIDGE])
    assert wait_for(lambda: addresses(lab, BRIDGE) == [f"{HOST_IP}/24"]) and reachable(lab)

    # The uplink as an access port of VLAN 99: the host's untagged traffic is cut off.
    broken = {UPLINK: {"tag": 99, "other_config": {"move-addresses": "true"}}}
    apply(daemon, tmp_path, broken, "--confirm-timeout=4")
    assert not reachable(lab), "the broken change really cut the host off"
    assert wait_for(lambda: "was not confirmed in time: rolled back" in daemon.log(), 10)
    assert wait_for(lambda: reachable(lab), 10), "connectivity came back by itself"
    shown = json.loads(
        daemon.ovsr("--format", "json", "--columns=tag", "list", "Port", UPLINK).stdout
    )
    assert shown[0]["tag"] == []


def test_a_rollback_that_removes_the_bridge_returns_the_addresses(
    host: tuple[NetnsLab, DaemonProcess], tmp_path: Path
) -> None:
    lab, daemon = host
    apply(daemon, tmp_path, MOVED, "--confirm-timeout=3")
    wait_attached(daemon, [UPLINK, BRIDGE])
    assert wait_for(lambda: addresses(lab, BRIDGE) == [f"{HOST_IP}/24"])
    assert wait_for(lambda: "was not confirmed in time: rolled back" in daemon.log(), 10)
    assert wait_for(lambda: addresses(lab, UPLINK) == [f"{HOST_IP}/24"])
    assert route_device(lab) == UPLINK and reachable(lab)
