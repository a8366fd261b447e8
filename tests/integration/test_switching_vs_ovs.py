"""The behaviour suite run against Open vSwitch itself (Debian's ovs-vswitchd, userspace
``netdev`` datapath, NORMAL), over the same real veths and raw sockets as ovs-runtime's
run. The suite's expectations are then Open vSwitch's, not only ours: learning,
flooding, access and trunk ports, native VLAN modes and tagged frames on access ports.
The one scenario where ovs-runtime is stricter on purpose is run too, to show that
Open vSwitch really behaves otherwise there."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from bench.ovs_netdev import OvsNetdev
from tests import switching_suite
from tests.integration.switch_fixtures import VethHarness
from tests.netns_lab import NetnsLab

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
    pytest.mark.skipif(
        shutil.which("ovs-vswitchd") is None,
        reason="ovs-vswitchd missing: run `make deps` (openvswitch-switch)",
    ),
]


class OvsHarness(VethHarness):
    """The suite's four ports a..d on an Open vSwitch netdev bridge."""

    def __init__(self, ovs: OvsNetdev, lab: NetnsLab) -> None:
        super().__init__(lab)
        self.ovs = ovs
        self.ports = {name: lab.hosts[name].switch_port for name in "abcd"}
        self.bridge = f"{lab.prefix}br"
        ovs.add_bridge(self.bridge, list(self.ports.values()))

    def configure(
        self, ports: dict[str, dict[str, Any]], bridge: dict[str, Any] | None = None
    ) -> None:
        flood_vlans = ",".join(str(v) for v in (bridge or {}).get("flood_vlans", ()))
        args = ["--", "set", "Bridge", self.bridge, f"flood_vlans=[{flood_vlans}]"]
        forward_bpdu = (bridge or {}).get("other_config", {}).get("forward-bpdu", "false")
        args += ["--", "set", "Bridge", self.bridge, f"other_config:forward-bpdu={forward_bpdu}"]
        for name, config in ports.items():
            port = self.ports[name]
            args += ["--", "clear", "Port", port, "tag", "trunks", "vlan_mode"]
            protected = "true" if config.get("protected") else "false"
            args += ["--", "set", "Port", port, f"protected={protected}"]
            if "tag" in config:
                args += ["--", "set", "Port", port, f"tag={config['tag']}"]
            if "trunks" in config:
                trunks = ",".join(str(t) for t in config["trunks"])
                args += ["--", "set", "Port", port, f"trunks={trunks}"]
            if "vlan_mode" in config:
                args += ["--", "set", "Port", port, f"vlan_mode={config['vlan_mode']}"]
        self.ovs.vsctl(*args)  # (waits until ovs-vswitchd has applied it)
        self.ovs.appctl("fdb/flush", self.bridge)


SHARED = [s for s in switching_suite.SCENARIOS if s not in switching_suite.STRICTER_THAN_OVS]


@pytest.mark.parametrize("scenario", SHARED, ids=lambda f: f.__name__)
def test_behaviour_suite_against_open_vswitch(scenario: Any, ovs: OvsNetdev, lab: NetnsLab) -> None:
    harness = OvsHarness(ovs, lab)
    try:
        scenario(harness)
    finally:
        harness.close()


def test_where_we_are_stricter_open_vswitch_really_differs(ovs: OvsNetdev, lab: NetnsLab) -> None:
    """The one difference the suite keeps, shown on OVS itself: the priority-tagged
    frame with VLAN 20 under it goes out of VLAN 10's access port still tagged 20."""
    harness = OvsHarness(ovs, lab)
    try:
        harness.configure(switching_suite.BAD_TAGS_PORTS)
        harness.received()
        harness.send(
            "a",
            switching_suite.frame(
                switching_suite.BROADCAST, switching_suite.mac(1), b"sneaky", vlans=(0, 20)
            ),
        )
        got = switching_suite.payloads(harness)
        assert got["d"] == [((20,), b"sneaky")] and got["b"] == [], got
    finally:
        harness.close()
