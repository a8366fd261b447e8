"""Bonds through the reconciler (no root): an interface moved from a bond to a new port
in one transaction keeps its OpenFlow number on the new port, and the bond keeps
working with its other members. The userspace datapath runs on in-memory ports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ovs_runtime.bridge.reconciler import Reconciler
from ovs_runtime.datapath.userspace import UserspaceDatapath
from ovs_runtime.netdev.memory import MemoryNetdev
from tests.unit.db_helpers import add_bond_ops, add_bridge_ops, errors, new_db


def uuid_of(db: Any, table: str, name: str) -> str:
    rows = db.transact([{"op": "select", "table": table, "where": [["name", "==", name]]}])
    return str(rows[0]["rows"][0]["_uuid"][1])


def test_an_interface_moved_out_of_a_bond_keeps_its_number(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = new_db(tmp_path / "db")
        netdevs: dict[str, MemoryNetdev] = {}

        def open_netdev(kind: str, name: str, options: dict[str, str]) -> MemoryNetdev:
            netdevs[name] = MemoryNetdev(name)
            return netdevs[name]

        dp = UserspaceDatapath(open_netdev)
        Reconciler(db, dp)
        assert not errors(db.transact(add_bridge_ops("br0")))
        assert not errors(db.transact(add_bond_ops("br0", "bond0", ("m1", "m2"))))
        await asyncio.sleep(0)
        bridge = dp.bridges["br0"]
        number = next(n for n, h in bridge.by_ofport.items() if h.iface == "m1")
        m1, m2 = uuid_of(db, "Interface", "m1"), uuid_of(db, "Interface", "m2")
        move = [
            {"op": "insert", "table": "Interface", "uuid-name": "m3", "row": {"name": "m3"}},
            {
                "op": "update",
                "table": "Port",
                "where": [["name", "==", "bond0"]],
                "row": {"interfaces": ["set", [["uuid", m2], ["named-uuid", "m3"]]]},
            },
            {
                "op": "insert",
                "table": "Port",
                "uuid-name": "plain",
                "row": {"name": "m1", "interfaces": ["uuid", m1]},
            },
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["name", "==", "br0"]],
                "mutations": [["ports", "insert", ["named-uuid", "plain"]]],
            },
        ]
        assert not errors(db.transact(move))
        await asyncio.sleep(0)
        owner = bridge.by_ofport[number]
        assert owner.name == "m1" and owner.member_of is None and owner.netdev is not None
        (bond,) = dp.bonds
        assert sorted(m.name for m in bond.members) == ["m2", "m3"]
        assert bridge.normal.bundle_of.get(number) is None, "m1 is no bond member now"
        dp.stop()

    asyncio.run(scenario())


def test_a_port_whose_number_is_requested_by_another_is_renumbered(tmp_path: Path) -> None:
    """``ofport_request`` takes a number another port holds: the datapath follows the
    new numbering for both ports (the one that lost its number is made anew)."""

    async def scenario() -> None:
        db = new_db(tmp_path / "db")
        dp = UserspaceDatapath(lambda kind, name, options: MemoryNetdev(name))
        Reconciler(db, dp)
        assert not errors(db.transact(add_bridge_ops("br0", ("vma", "vmb"))))
        await asyncio.sleep(0)
        bridge = dp.bridges["br0"]
        taken = bridge.ports["vmb"].ofport
        request = {
            "op": "update",
            "table": "Interface",
            "where": [["name", "==", "vma"]],
            "row": {"ofport_request": taken},
        }
        assert not errors(db.transact([request]))
        await asyncio.sleep(0)
        vma, vmb = bridge.ports["vma"], bridge.ports["vmb"]
        assert vma.ofport == taken and vmb.ofport != taken
        assert bridge.by_ofport[vma.ofport] is vma and bridge.by_ofport[vmb.ofport] is vmb
        states = dp.interface_states()
        assert (states["vma"].ofport, states["vmb"].ofport) == (vma.ofport, vmb.ofport)
        dp.stop()

    asyncio.run(scenario())
