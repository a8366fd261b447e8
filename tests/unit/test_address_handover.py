"""The uplink address handover, without root: which ports ask for it and its record."""

from __future__ import annotations

import uuid
from pathlib import Path

from ovs_runtime.bridge.address_handover import (
    Address,
    AddressHandover,
    Handover,
    Route,
    wants_move,
)
from ovs_runtime.bridge.desired_state import BridgeSpec, InterfaceSpec, PortSpec
from ovs_runtime.bridge.reconciler import _wanted_moves, _wanted_silenced


def port(name: str, kind: str = "", move: bool = True) -> PortSpec:
    iface = InterfaceSpec(uuid.uuid4(), name, kind, {}, None)
    config = {"move-addresses": "true"} if move else {}
    return PortSpec(uuid.uuid4(), name, None, (), None, (iface,), config)


def test_only_system_ports_that_ask_move_their_addresses() -> None:
    bridge = BridgeSpec(
        uuid.uuid4(),
        "br0",
        "standalone",
        (port("eth0"), port("eth1", move=False), port("vm1", "tap"), port("br0", "internal")),
    )
    assert _wanted_moves({"br0": bridge}) == {"eth0": "br0"}


def test_a_bond_moves_its_first_interface_and_silences_the_others() -> None:
    members = tuple(InterfaceSpec(uuid.uuid4(), n, "", {}, None) for n in ("eth2", "eth1", "eth3"))
    bond = PortSpec(uuid.uuid4(), "bond0", None, (), None, members, {"move-addresses": "true"})
    quiet = PortSpec(uuid.uuid4(), "bond1", None, (), None, members[:2], {})
    desired = {"br0": BridgeSpec(uuid.uuid4(), "br0", "standalone", (bond,))}
    assert _wanted_moves(desired) == {"eth1": "br0"}, "one uplink's MAC and addresses"
    assert _wanted_silenced(desired) == {"eth2": "br0", "eth3": "br0"}
    desired = {"br0": BridgeSpec(uuid.uuid4(), "br0", "standalone", (quiet,))}
    assert _wanted_moves(desired) == {} and _wanted_silenced(desired) == {}
    moved_already = {"eth2"}  # (another member sorting first was added later)
    desired = {"br0": BridgeSpec(uuid.uuid4(), "br0", "standalone", (bond,))}
    assert _wanted_moves(desired, moved_already) == {"eth2": "br0"}
    assert _wanted_silenced(desired, moved_already) == {"eth1": "br0", "eth3": "br0"}
    record = Handover("eth2", "br0", silent=True)
    assert Handover.from_json(record.to_json()) == record


def test_the_flag_is_a_boolean_string() -> None:
    assert wants_move({"move-addresses": "True"})
    assert not wants_move({"move-addresses": "no"})
    assert not wants_move({})


def test_records_survive_a_round_trip_and_bad_ones_are_skipped(tmp_path: Path) -> None:
    record = Handover(
        "eth0",
        "br0",
        [Address(2, "198.51.100.1", 24)],
        [Route(2, "203.0.113.0", 24, "198.51.100.254", None)],
        "02:00:00:00:00:01",
        "02:00:00:00:00:02",
    )
    assert Handover.from_json(record.to_json()) == record
    (tmp_path / "eth0.json").write_text(record.to_json())
    (tmp_path / "eth9.json").write_text("{not json")
    assert AddressHandover(tmp_path).active() == {"eth0": record}
    assert AddressHandover(tmp_path / "missing").active() == {}
