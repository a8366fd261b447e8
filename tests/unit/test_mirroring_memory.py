"""Port mirroring in the userspace datapath, with in-memory ports (no root)."""

from __future__ import annotations

import uuid

from ovs_runtime.bridge.desired_state import MirrorSpec
from tests.switching_suite import BROADCAST, frame, mac, payloads
from tests.unit.test_switching_memory import MemoryHarness


def mirror(
    name: str = "m0",
    select_all: bool = False,
    src: tuple[str, ...] = (),
    dst: tuple[str, ...] = (),
    vlans: tuple[int, ...] = (),
    output_port: str | None = "d",
    output_vlan: int | None = None,
) -> MirrorSpec:
    return MirrorSpec(
        uuid.uuid4(),
        name,
        select_all,
        frozenset(src),
        frozenset(dst),
        frozenset(vlans),
        output_port,
        output_vlan,
    )


def harness() -> MemoryHarness:
    h = MemoryHarness()
    h.configure({"a": {"tag": 10}, "b": {"tag": 10}, "c": {"tag": 20}, "d": {}})
    return h


def test_span_copies_what_a_port_sends_tagged_with_its_vlan() -> None:
    h = harness()
    spec = mirror(src=("a",))
    h.dp.configure_mirrors("br0", (spec,))
    h.send("b", frame(BROADCAST, mac(2), b"hello"))  # learn b
    payloads(h)
    h.send("a", frame(mac(2), mac(1), b"to-b"))
    h.send("c", frame(BROADCAST, mac(3), b"from-c"))
    got = payloads(h)
    assert got["b"] == [((), b"to-b")]
    assert got["d"] == [((10,), b"to-b")], "the SPAN port sees a's frame, VLAN-tagged"
    stats = h.dp.mirror_statistics()[str(spec.uuid)]
    assert stats["tx_packets"] == 1 and stats["tx_bytes"] == 60


def test_dst_and_vlan_selection() -> None:
    h = harness()
    h.dp.configure_mirrors("br0", (mirror(dst=("b",)), mirror("m1", select_all=True, vlans=(20,))))
    h.send("a", frame(BROADCAST, mac(1), b"flood-10"))  # flooded to b: selected by dst
    h.send("c", frame(BROADCAST, mac(3), b"flood-20"))  # VLAN 20: selected by m1
    got = payloads(h)
    assert sorted(got["d"]) == [((10,), b"flood-10"), ((20,), b"flood-20")]


def test_rspan_tags_copies_with_the_output_vlan() -> None:
    h = harness()
    h.configure({"a": {"tag": 10}, "b": {"tag": 10}, "c": {"tag": 20}, "d": {"trunks": [99]}})
    h.dp.configure_mirrors("br0", (mirror(src=("a",), output_port=None, output_vlan=99),))
    h.send("a", frame(BROADCAST, mac(1), b"spanned"))
    got = payloads(h)
    assert got["d"] == [((99,), b"spanned")]
    assert got["b"] == [((), b"spanned")]


def test_the_output_port_takes_no_part_in_switching() -> None:
    h = harness()
    h.dp.configure_mirrors("br0", (mirror(src=("c",)),))
    h.send("d", frame(BROADCAST, mac(4), b"from-analyzer"))
    h.send("a", frame(BROADCAST, mac(1), b"not-selected"))
    got = payloads(h)
    assert got["a"] == got["c"] == [], "nothing from the output port is forwarded"
    assert got["b"] == [((), b"not-selected")]
    assert got["d"] == [], "unselected frames are not flooded to it"
    assert h.dp.bridges["br0"].normal.drops["mirror-output-port"] == 1
    # Removing the mirror gives the port back to normal switching.
    h.dp.configure_mirrors("br0", ())
    h.send("a", frame(BROADCAST, mac(1), b"flooded"))
    assert payloads(h)["d"] == [((10,), b"flooded")]
