"""LACP against Open vSwitch itself, on real veths: an ovs-runtime bond and an Open
vSwitch 3.1 bond (netdev datapath, balance-slb) joined by two links, a host behind
each switch. Both ends negotiate and name each other as partner; pings cross; pulling
one cable keeps traffic on the other; when Open vSwitch stops speaking LACP the
ovs-runtime bond goes down, and comes back as active-backup with lacp-fallback-ab (over
the one cable left)."""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import pytest
from pyroute2 import IPRoute

from bench.ovs_netdev import OvsNetdev
from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import wait_attached
from tests.netns_lab import NetnsLab

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
    pytest.mark.skipif(
        shutil.which("ovs-vswitchd") is None,
        reason="ovs-vswitchd missing: run `make deps` (openvswitch-switch)",
    ),
]
NET = "198.51.100."


def cables(lab: NetnsLab) -> list[tuple[str, str]]:
    """Two veth pairs between the switches: (ovs-runtime's end, Open vSwitch's end)."""
    pairs = [(f"{lab.prefix}l{n}", f"{lab.prefix}r{n}") for n in (1, 2)]
    with IPRoute() as ipr:
        for ours, theirs in pairs:
            ipr.link("add", ifname=ours, kind="veth", peer=theirs)
            lab.links.append(ours)
            for name in (ours, theirs):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
    return pairs


def set_link(name: str, state: str) -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state=state)


def lacp_show(switch: DaemonProcess) -> dict[str, Any]:
    out = switch.ovsr("--format", "json", "lacp-show", "bond0")
    assert out.returncode == 0, out.stderr
    shown: dict[str, Any] = json.loads(out.stdout)["bond0"]
    return shown


def lacp_current(switch: DaemonProcess, interface: str) -> bool | None:
    out = switch.ovsr("--format", "json", "list", "Interface", interface)
    assert out.returncode == 0, out.stderr
    value = json.loads(out.stdout)[0]["lacp_current"]  # an optional column: [] or [bool]
    return value[0] if value else None


def wait_for(what: str, check: Any, timeout: float = 15.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"never {what}")


def test_lacp_negotiates_with_open_vswitch_and_survives_a_pulled_cable(
    switch: DaemonProcess, ovs: OvsNetdev, lab: NetnsLab
) -> None:
    h1 = lab.add_host("h1", f"{NET}1")
    h2 = lab.add_host("h2", f"{NET}2")
    (l1, r1), (l2, r2) = cables(lab)
    made = switch.ovsr(
        "add-br", "br0", "--", "add-port", "br0", h1.switch_port,
        "--", "add-bond", "br0", "bond0", l1, l2, "lacp=active",
        "--", "set", "Port", "bond0", "other_config:lacp-time=fast",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    wait_attached(switch, [h1.switch_port, l1, l2])
    ovs.add_bridge(f"{lab.prefix}ob", [h2.switch_port])
    ovs.vsctl(
        "add-bond", f"{lab.prefix}ob", "obond", r1, r2,
        "bond_mode=balance-slb", "lacp=active", "other_config:lacp-time=fast",
    )  # fmt: skip

    def negotiated() -> bool:
        shown = lacp_show(switch)
        return shown["status"] == "negotiated" and all(
            m["may_enable"] for m in shown["members"].values()
        )

    took = wait_for("negotiated with Open vSwitch", negotiated)
    print(f"LACP negotiated {took:.1f} s after both bonds existed")
    ours = lacp_show(switch)
    theirs = ovs.appctl("lacp/show", "obond")
    assert "negotiated" in theirs, theirs
    assert f"partner sys_id: {ours['system_id']}" in theirs, theirs
    assert theirs.count("current attached") == 2, theirs
    ovs_system = {m["partner_system_id"] for m in ours["members"].values()}
    assert len(ovs_system) == 1 and f"sys_id: {ovs_system.pop()}" in theirs
    assert lab.ping("h1", f"{NET}2", count=3), "across the negotiated aggregate"
    wait_for("Interface.lacp_current written", lambda: lacp_current(switch, l2) is True)
    text = switch.ovsr("lacp-show").stdout
    assert "status: active negotiated" in text and f"member: {l1}: current attached" in text

    # Pull one cable: the other carries the traffic.
    set_link(r1, "down")
    wait_for(f"{l1} out", lambda: not lacp_show(switch)["members"][l1]["may_enable"])
    wait_for(f"{l1}'s lacp_current false", lambda: lacp_current(switch, l1) is False)
    assert lacp_show(switch)["members"][l2]["may_enable"]
    assert lab.ping("h1", f"{NET}2", count=3), "over the remaining link"
    set_link(r1, "up")
    wait_for("both links back", negotiated)

    # Open vSwitch stops speaking LACP: the bond goes down (three missed PDUs, then three more).
    ovs.vsctl("set", "Port", "obond", "lacp=off")
    wait_for("LACP given up", lambda: lacp_show(switch)["status"] == "configured")
    assert not any(m["may_enable"] for m in lacp_show(switch)["members"].values())
    assert not lab.ping("h1", f"{NET}2", count=2, timeout=0.5), "no member may carry traffic"
    shown = switch.ovsr("bond-show", "bond0").stdout
    assert "lacp_status: configured" in shown, shown

    # Falling back to active-backup brings it back. (With both cables up, the two
    # bonds, ours active-backup and Open vSwitch's balance-slb hashing by source MAC,
    # would not agree on a link; with one, as when a server boots before its switch
    # speaks LACP, they must.)
    set_link(r2, "down")
    ok = switch.ovsr("set", "Port", "bond0", "other_config:lacp-fallback-ab=true")
    assert ok.returncode == 0, ok.stderr
    wait_for(f"{l1} enabled", lambda: lacp_show(switch)["members"][l1]["may_enable"])
    assert lab.ping("h1", f"{NET}2", count=3), "active-backup over the remaining link"
