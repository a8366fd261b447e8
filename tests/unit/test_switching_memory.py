"""The NORMAL/VLAN behaviour suite against the in-memory provider (no root)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ovs_runtime.bridge.desired_state import InterfaceSpec, PortSpec
from ovs_runtime.datapath.userspace import UserspaceDatapath
from ovs_runtime.netdev.memory import MemoryNetdev
from tests import switching_suite


class MemoryHarness:
    def __init__(self) -> None:
        self.netdevs: dict[str, MemoryNetdev] = {}
        self.now = 1000.0
        self.dp = UserspaceDatapath(self._open, clock=lambda: self.now)
        self.dp.add_bridge("br0", {})

    def _open(self, kind: str, name: str, options: dict[str, str]) -> MemoryNetdev:
        self.netdevs[name] = MemoryNetdev(name)
        return self.netdevs[name]

    def configure(
        self, ports: dict[str, dict[str, Any]], bridge: dict[str, Any] | None = None
    ) -> None:
        if bridge is not None:
            self.dp.configure_bridge(
                "br0", bridge.get("other_config", {}), frozenset(bridge.get("flood_vlans", ()))
            )
        for n, (name, cfg) in enumerate(sorted(ports.items()), 1):
            spec = PortSpec(
                uuid.uuid4(),
                name,
                cfg.get("tag"),
                tuple(cfg.get("trunks", ())),
                cfg.get("vlan_mode"),
                (InterfaceSpec(uuid.uuid4(), name, "", {}, None),),
                protected=cfg.get("protected", False),
            )
            if name in self.dp.bridges["br0"].ports:
                self.dp.update_port("br0", spec, n)
            else:
                self.dp.add_port("br0", spec, n)

    def send(self, port: str, raw: bytes) -> None:
        self.netdevs[port].inject(raw)
        self.dp.run_once()

    def received(self) -> dict[str, list[bytes]]:
        out = {}
        for name, netdev in self.netdevs.items():
            out[name], netdev.sent = netdev.sent, []
        return out


@pytest.mark.parametrize("scenario", switching_suite.SCENARIOS, ids=lambda f: f.__name__)
def test_behaviour(scenario: Any) -> None:
    scenario(MemoryHarness())


def test_cache_hits_and_revalidation_on_mac_move() -> None:
    h = MemoryHarness()
    h.configure({"a": {}, "b": {}, "c": {}})
    f_ab = switching_suite.frame(switching_suite.mac(2), switching_suite.mac(1), b"x")
    f_ba = switching_suite.frame(switching_suite.mac(1), switching_suite.mac(2), b"y")
    h.send("a", f_ab)
    h.send("b", f_ba)
    h.received()
    cache = h.dp.bridges["br0"].cache
    for _ in range(10):
        h.send("a", f_ab)
    assert cache.hits >= 9
    assert [len(v) for k, v in sorted(h.received().items())] == [0, 10, 0]
    # mac(2) moves to c: the cached "to b" decision must not be used again.
    h.send("c", f_ba)
    h.received()
    h.send("a", f_ab)
    got = h.received()
    assert len(got["c"]) == 1 and got["b"] == []


def test_aging_and_size_limit() -> None:
    h = MemoryHarness()
    h.dp.configure_bridge("br0", {"mac-aging-time": "10", "mac-table-size": "3"})
    h.configure({"a": {}, "b": {}})
    for n in range(1, 6):
        h.send("a", switching_suite.frame(switching_suite.BROADCAST, switching_suite.mac(n), b""))
    table = h.dp.bridges["br0"].normal.mac_table
    assert len(table.entries) == 3 and table.evictions == 2
    assert [e["mac"][-2:] for e in h.dp.fdb("br0")] == ["03", "04", "05"]
    h.now += 11
    h.dp.maintain()
    assert h.dp.fdb("br0") == []
    # After aging, a frame to a forgotten MAC floods again.
    h.received()
    h.send("b", switching_suite.frame(switching_suite.mac(5), switching_suite.mac(9), b"z"))
    assert len(h.received()["a"]) == 1


def test_malformed_frames_are_dropped_and_counted() -> None:
    h = MemoryHarness()
    h.configure({"a": {}, "b": {}})
    for raw in (
        b"",
        b"\x01" * 13,
        b"\xff" * 12 + b"\x81\x00\x00",
        b"\xff" * 12 + b"\x05\xf0" + b"\0" * 46,
    ):
        h.send("a", raw)
    drops = h.dp.bridges["br0"].normal.drops
    assert drops["runt"] == 2 and drops["truncated-vlan"] == 1 and drops["bad-ethertype"] == 1
    assert h.received()["b"] == []
    assert h.netdevs["a"].stats.rx_dropped == 4


def test_flood_vlans_learn_nothing_even_from_cached_decisions() -> None:
    """Cache hits keep learned MACs fresh; on a flood VLAN there must be none to keep."""
    from ovs_runtime.datapath.flow_cache import REFRESH_INTERVAL

    h = MemoryHarness()
    h.configure({"a": {"tag": 10}, "b": {"tag": 10}, "c": {"tag": 20}}, {"flood_vlans": [10]})
    for _ in range(3):
        h.send("a", switching_suite.frame(switching_suite.mac(2), switching_suite.mac(1), b"x"))
        h.send("c", switching_suite.frame(switching_suite.mac(4), switching_suite.mac(3), b"y"))
        h.now += REFRESH_INTERVAL + 1
    table = h.dp.bridges["br0"].normal.mac_table
    assert {vlan for vlan, _mac in table.entries} == {20}, table.entries


def test_reserved_destinations_are_counted_and_a_bad_forward_bpdu_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = MemoryHarness()
    h.configure({"a": {}, "b": {}})
    bpdu = switching_suite.frame(switching_suite.STP_BPDU, switching_suite.mac(1), b"stp")
    for _ in range(3):  # the second and third are cache hits, counted all the same
        h.send("a", bpdu)
    assert h.received()["b"] == []
    assert h.dp.bridges["br0"].cache.hits >= 2
    assert h.dp.bridges["br0"].normal.drops["reserved-destination"] == 3
    assert h.netdevs["a"].stats.rx_dropped == 3
    with caplog.at_level("WARNING"):
        h.dp.configure_bridge("br0", {"forward-bpdu": "yes"})
    assert "other_config:forward-bpdu must be true or false, not 'yes'; using false" in caplog.text
    h.send("a", bpdu)
    assert h.received()["b"] == [], "a value that is not true forwards nothing"
    h.dp.configure_bridge("br0", {"forward-bpdu": "TRUE"})
    h.send("a", bpdu)
    assert h.received()["b"] == [bpdu], "the cached drop was revalidated"
