"""Active-backup bonds in the userspace datapath, on in-memory netdevs (no root): which
member carries traffic, what is dropped on the backup, failover with the delays and the
primary, the learning packets after a failover, and the bond settings' commit check.
The same behaviour on real veths is in tests/integration/test_bonding.py."""

from __future__ import annotations

import dataclasses
import os
import select
import uuid
from pathlib import Path
from typing import Any

import pytest

from ovs_runtime.bridge.bond_config import BondSpec, check_bonds
from ovs_runtime.bridge.desired_state import InterfaceSpec, PortSpec, read_bridges
from ovs_runtime.datapath.userspace import UserspaceDatapath
from ovs_runtime.netdev.memory import MemoryNetdev
from ovs_runtime.packet.ethernet import mac_text
from tests.unit.db_helpers import add_bond_ops, add_bridge_ops, errors, new_db

HOST = bytes.fromhex("020000000001")
FAR = bytes.fromhex("020000000099")
BROADCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, payload: bytes = b"x" * 46) -> bytes:
    return dst + src + b"\x08\x00" + payload


def tagged(raw: bytes, vid: int) -> bytes:
    return raw[:12] + b"\x81\x00" + vid.to_bytes(2, "big") + raw[12:]


class FakeLinkEvents:
    """Link notifications the test makes up: a pipe's read end as the fd, and the names
    (or None: some were lost; an exception: a broken read) ``changed`` will return."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.pending: list[set[str] | None | Exception] = []
        self.closed = False

    def fileno(self) -> int:
        return self.read_fd

    def announce(self, names: set[str] | None | Exception) -> None:
        self.pending.append(names)
        os.write(self.write_fd, b"x")

    def changed(self) -> set[str] | None:
        if not self.pending:
            return set()  # a stale event: nothing waiting, and no waiting for it
        os.read(self.read_fd, 1)
        names = self.pending.pop(0)
        if isinstance(names, Exception):
            raise names
        return names

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)
        self.closed = True


class BondLab:
    """Port ``a`` (a host) and bond ``bond0`` over ``m1`` and ``m2`` on br0."""

    def __init__(self, bond: BondSpec, tag: int | None = None, stored: str | None = None) -> None:
        self.netdevs: dict[str, MemoryNetdev] = {}
        self.now = 1000.0
        self.links = FakeLinkEvents()  # the one the datapath has open, when it has one
        self.dp = UserspaceDatapath(self._open, clock=lambda: self.now, link_events=self._links)
        self.dp.add_bridge("br0", {})
        self.dp.add_port("br0", port("a", ["a"], tag=tag), 1)
        spec = dataclasses.replace(port("bond0", ["m1", "m2"], bond), bond_active_mac=stored)
        assert self.dp.add_port("br0", spec, 2, {"m1": 2, "m2": 3}) is None

    def _links(self) -> FakeLinkEvents:
        self.links = FakeLinkEvents()
        return self.links

    def _open(self, kind: str, name: str, options: dict[str, str]) -> MemoryNetdev:
        self.netdevs[name] = MemoryNetdev(name)
        self.netdevs[name].mac = f"02:00:5e:00:00:{len(self.netdevs):02x}"
        return self.netdevs[name]

    def send(self, port: str, raw: bytes) -> dict[str, list[bytes]]:
        self.netdevs[port].inject(raw)
        self.dp.run_once()
        return self.taken()

    def taken(self) -> dict[str, list[bytes]]:
        out = {}
        for name, netdev in self.netdevs.items():
            out[name], netdev.sent = netdev.sent, []
        return out

    def advance(self, seconds: float) -> dict[str, list[bytes]]:
        self.now += seconds
        self.dp.run_once()
        return self.taken()

    def active(self) -> str | None:
        active: str | None = self.dp.bond_show("bond0")["bond0"]["active_member"]
        return active


def port(name: str, ifaces: list[str], bond: BondSpec | None = None, **kw: Any) -> PortSpec:
    interfaces = tuple(InterfaceSpec(uuid.uuid4(), i, "", {}, None) for i in ifaces)
    return PortSpec(uuid.uuid4(), name, kw.get("tag"), (), None, interfaces, bond=bond)


def test_only_the_active_member_carries_traffic_and_backup_frames_are_dropped() -> None:
    lab = BondLab(BondSpec())
    assert lab.active() == "m1"
    lab.taken()  # learning packets of the start (none: nothing learned yet)
    out = lab.send("a", frame(BROADCAST, HOST))
    assert len(out["m1"]) == 1 and out["m2"] == [], "a flood leaves by the active member only"
    out = lab.send("m2", frame(BROADCAST, FAR))
    assert out["a"] == [], "the upstream switch's copy on the backup link is dropped"
    assert lab.dp.bridges["br0"].normal.drops["bond-backup-member"] == 1
    out = lab.send("m1", frame(HOST, FAR))
    assert len(out["a"]) == 1
    out = lab.send("a", frame(FAR, HOST))
    assert len(out["m1"]) == 1 and out["m2"] == [], "learned on the bond: out the active member"
    fdb = lab.dp.fdb("br0")
    assert {"port": 2, "port_name": "bond0", "vlan": 0, "mac": mac_text(FAR)} == {
        k: v for k, v in next(e for e in fdb if e["mac"] == mac_text(FAR)).items() if k != "age"
    }, "MACs learned on a bond show the bond and its first member's number, as OVS"


def test_failover_moves_traffic_and_sends_learning_packets() -> None:
    lab = BondLab(BondSpec(), tag=10)
    lab.send("a", frame(BROADCAST, HOST))  # the bridge learns HOST on port a, VLAN 10
    lab.send("m1", tagged(frame(BROADCAST, FAR), 10))  # and FAR on the bond
    lab.netdevs["m1"].link_state = "down"
    out = lab.advance(0.2)
    assert lab.active() == "m2"
    rarps = [f for f in out["m2"] if f[12:18] == b"\x81\x00\x00\x0a\x80\x35"]
    assert [f[6:12] for f in rarps] == [HOST], "one RARP per MAC learned elsewhere, not FAR"
    assert len(out["m2"]) == 1, "in VLAN 10, tagged as the trunk carries it"
    assert out["m1"] == []
    out = lab.send("a", frame(FAR, HOST))
    assert out["m2"] == [tagged(frame(FAR, HOST), 10)] and out["m1"] == []
    to_host = tagged(frame(HOST, FAR), 10)
    assert lab.send("m2", to_host)["a"] == [frame(HOST, FAR)], "the new active member receives"
    assert lab.send("m1", to_host)["a"] == [], "the old one no longer does"
    status = lab.dp.bond_show(None)["bond0"]
    assert status["failovers"] == 1 and status["learning_packets"] == 1


def test_downdelay_and_updelay_and_the_primary() -> None:
    lab = BondLab(BondSpec(updelay_ms=300, downdelay_ms=500, primary="m1"))
    assert lab.active() == "m1", "no member enabled yet: the first up is taken at once"
    lab.netdevs["m1"].link_state = "down"
    lab.advance(0.2)  # the carrier is seen down now
    lab.advance(0.2)
    lab.advance(0.2)
    assert lab.active() == "m1", "down for 400 ms of a 500 ms downdelay"
    lab.advance(0.2)
    assert lab.active() == "m2", "down for 600 ms"
    lab.netdevs["m1"].link_state = "up"
    lab.advance(0.2)  # the carrier is seen up now
    lab.advance(0.2)
    assert lab.active() == "m2", "up for 200 ms of a 300 ms updelay"
    lab.advance(0.2)
    assert lab.active() == "m1", "the primary takes over once enabled"


def test_the_active_member_set_by_hand_takes_over_with_learning_packets() -> None:
    lab = BondLab(BondSpec())
    lab.send("a", frame(BROADCAST, HOST))
    lab.dp.bond_set_active("bond0", "m2")
    out = lab.taken()
    assert lab.active() == "m2" and [f[6:12] for f in out["m2"]] == [HOST]
    with pytest.raises(KeyError, match="no member m9 \\(members: m1, m2\\)"):
        lab.dp.bond_set_active("bond0", "m9")
    with pytest.raises(KeyError, match="no bond named a"):
        lab.dp.bond_set_active("a", "m1")
    lab.netdevs["m1"].link_state = "down"
    lab.advance(0.2)
    with pytest.raises(ValueError, match="member m1 is disabled"):
        lab.dp.bond_set_active("bond0", "m1")
    assert lab.active() == "m2"


def test_a_new_primary_takes_over_at_once_and_is_not_overruled_by_hand() -> None:
    lab = BondLab(BondSpec())
    (bond,) = lab.dp.bonds
    spec = dataclasses.replace(bond.port.spec, bond=BondSpec(primary="m2"))
    lab.dp.update_port("br0", spec, 2, {"m1": 2, "m2": 3})
    assert lab.dp.bonds == [bond], "changed in place: the same members, not re-created"
    assert lab.active() == "m2", "the new primary, enabled: at once"
    with pytest.raises(ValueError, match="primary m2 is enabled and takes traffic back"):
        lab.dp.bond_set_active("bond0", "m1")
    lab.dp.update_port("br0", dataclasses.replace(spec, bond=BondSpec()), 2, {"m1": 2, "m2": 3})
    lab.dp.bond_set_active("bond0", "m1")
    lab.advance(0.2)
    assert lab.active() == "m1", "without a primary, the choice by hand stands"


def test_a_restart_keeps_the_stored_active_member() -> None:
    lab = BondLab(BondSpec(), stored="02:00:5e:00:00:03")  # m2's (a is 01, m1 02)
    assert lab.active() == "m2"
    lab = BondLab(BondSpec(updelay_ms=60_000), stored="02:00:5e:00:00:03")
    assert lab.active() == "m2", "also when it is enabled without waiting for updelay"


def test_members_coming_and_going_are_logged_at_once_not_hoarded() -> None:
    lab = BondLab(BondSpec())
    (bond,) = lab.dp.bonds
    for _ in range(5):
        lab.netdevs["m2"].link_state = "down"
        lab.advance(0.2)
        lab.netdevs["m2"].link_state = "up"
        lab.advance(0.2)
    assert bond.events == [] and lab.active() == "m1"


def test_a_device_set_down_waits_for_downdelay_a_vanished_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ovs_runtime.netdev import link

    lab = BondLab(BondSpec(downdelay_ms=1000))
    (bond,) = lab.dp.bonds
    monkeypatch.setattr(link, "exists", lambda name: True)
    lab.dp._port_failed(bond.members[0].handle, "Network is down")
    lab.advance(0.2)
    assert lab.active() == "m1", "set down: a carrier loss, within its downdelay"
    monkeypatch.setattr(link, "exists", lambda name: False)
    lab.dp._port_failed(bond.members[0].handle, "No such device")
    assert lab.active() == "m2", "the device is gone: at once"


@pytest.mark.parametrize("new_port_first", [False, True])
def test_an_interface_moved_from_a_bond_to_a_new_port_keeps_its_number(
    new_port_first: bool,
) -> None:
    lab = BondLab(BondSpec())
    (bond,) = lab.dp.bonds
    m1 = bond.members[0].handle.spec.interfaces[0]
    smaller = port("bond0", ["m2", "m3"], BondSpec())
    plain = PortSpec(uuid.uuid4(), "m1", None, (), None, (m1,))
    if new_port_first:
        lab.dp.add_port("br0", plain, 2)
    lab.dp.update_port("br0", smaller, 3, {"m2": 3, "m3": 4})
    if not new_port_first:
        lab.dp.add_port("br0", plain, 2)
    bridge = lab.dp.bridges["br0"]
    assert bridge.by_ofport[2].name == "m1" and bridge.by_ofport[2].member_of is None
    lab.send("m1", frame(BROADCAST, FAR))
    assert len(lab.send("a", frame(FAR, HOST))["m1"]) == 1, "unicast reaches the moved port"


def test_without_a_primary_the_active_member_stays() -> None:
    lab = BondLab(BondSpec())
    lab.netdevs["m1"].link_state = "down"
    lab.advance(0.2)
    lab.netdevs["m1"].link_state = "up"
    lab.advance(0.2)
    assert lab.active() == "m2", "a recovered member does not take traffic back"


def test_with_every_member_down_nothing_is_sent_and_the_first_back_is_used_at_once() -> None:
    lab = BondLab(BondSpec(updelay_ms=60_000))
    for name in ("m1", "m2"):
        lab.netdevs[name].link_state = "down"
    lab.advance(0.2)
    assert lab.active() is None and lab.dp.bond_states() == {"bond0": None}
    out = lab.send("a", frame(BROADCAST, HOST))
    assert out["m1"] == out["m2"] == []
    lab.netdevs["m2"].link_state = "up"
    lab.advance(0.2)
    assert lab.active() == "m2", "nothing else carries traffic: no 60 s updelay"
    assert len(lab.send("a", frame(BROADCAST, HOST))["m2"]) == 1


def test_flow_rules_name_the_members_and_each_has_its_own_number() -> None:
    lab = BondLab(BondSpec())
    bridge = lab.dp.bridges["br0"]
    assert bridge.port_numbers() == {"a": 1, "m1": 2, "m2": 3}
    states = lab.dp.interface_states()
    assert (states["m1"].ofport, states["m2"].ofport) == (2, 3)
    ports = lab.dp.describe()["bridges"]["br0"]["ports"]
    assert ports["m2"]["bond"] == "bond0"


def test_a_removed_bridge_or_a_stop_closes_every_member() -> None:
    lab = BondLab(BondSpec())
    closed: list[str] = []
    for name in ("m1", "m2"):
        netdev = lab.netdevs[name]
        netdev.close = lambda n=name: closed.append(n)  # type: ignore[method-assign]
    lab.dp.remove_bridge("br0")
    assert sorted(closed) == ["m1", "m2"] and not lab.dp.bonds
    lab2 = BondLab(BondSpec())
    (bond,) = lab2.dp.bonds
    lab2.dp.stop()
    assert not lab2.dp.bonds and all(m.handle.netdev is None for m in bond.members)


def test_a_frame_traced_from_a_member_shows_the_bond_at_work() -> None:
    lab = BondLab(BondSpec())
    trace = lab.dp.trace("br0", frame(BROADCAST, FAR), "m2")
    assert trace["drop_reason"] == "bond-backup-member" and trace["outputs"] == []
    trace = lab.dp.trace("br0", frame(BROADCAST, FAR), "m1")
    assert [o["port"] for o in trace["outputs"]] == ["a"]


def test_a_removed_bond_leaves_nothing_behind() -> None:
    lab = BondLab(BondSpec())
    lab.dp.remove_port("br0", "bond0")
    bridge = lab.dp.bridges["br0"]
    assert set(bridge.by_ofport) == {1} and not bridge.bundles and not lab.dp.bonds
    assert not bridge.normal.bundle_of and not bridge.normal.bond_backups
    out = lab.send("a", frame(BROADCAST, HOST))
    assert out["m1"] == out["m2"] == []


# -- the bond settings' commit check -------------------------------------------------


def db_with_bond(tmp_path: Path) -> Any:
    """br0 with bond0 over m1 and m2, as ``add-bond br0 bond0 m1 m2`` makes it."""
    db = new_db(tmp_path / "db")
    db.commit_checks.append(check_bonds)
    assert not errors(db.transact(add_bridge_ops("br0")))
    assert not errors(db.transact(add_bond_ops("br0", "bond0", ("m1", "m2"))))
    return db


def bond_update(db: Any, row: dict[str, Any]) -> list[dict[str, Any]]:
    op = {"op": "update", "table": "Port", "where": [["name", "==", "bond0"]], "row": row}
    return errors(db.transact([op]))


def test_a_bond_is_read_from_the_database(tmp_path: Path) -> None:
    db = db_with_bond(tmp_path)
    assert not bond_update(
        db,
        {
            "bond_mode": "active-backup",
            "bond_updelay": 200,
            "bond_downdelay": 100,
            "other_config": ["map", [["bond-primary", "m2"]]],
        },
    )
    (bond,) = [p for p in read_bridges(db.tables)["br0"].ports if p.name == "bond0"]
    assert sorted(i.name for i in bond.interfaces) == ["m1", "m2"]
    assert bond.bond == BondSpec("active-backup", 200, 100, "m2")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"bond_mode": "balance-slb"}, "bond_mode=balance-slb: only active-backup"),
        ({"bond_mode": "balance-tcp"}, "bond_mode=balance-tcp: only active-backup"),
        (
            {"lacp": "active", "other_config": ["map", [["lacp-time", "medium"]]]},
            "other_config:lacp-time=medium: must be fast or slow",
        ),
        (
            {"lacp": "passive", "other_config": ["map", [["lacp-fallback-ab", "yes"]]]},
            "other_config:lacp-fallback-ab=yes: must be true or false",
        ),
        (
            {"lacp": "passive", "other_config": ["map", [["lacp-system-id", "00:00:00:00:00:00"]]]},
            "lacp-system-id=00:00:00:00:00:00: must be a non-zero Ethernet address",
        ),
        (
            {"lacp": "passive", "other_config": ["map", [["lacp-system-priority", "0"]]]},
            "other_config:lacp-system-priority=0: must be 1 to 65535",
        ),
        ({"bond_fake_iface": True}, "bond_fake_iface=true"),
        ({"bond_updelay": -1}, "bond_updelay=-1: must be 0 to 3600000 milliseconds"),
        (
            {"other_config": ["map", [["bond-detect-mode", "arp"]]]},
            "bond-detect-mode=arp: must be carrier or miimon",
        ),
        (
            {
                "other_config": [
                    "map",
                    [["bond-detect-mode", "miimon"], ["bond-miimon-interval", "fast"]],
                ]
            },
            "bond-miimon-interval=fast: must be 1 to 60000 milliseconds",
        ),
    ],
)
def test_bad_bond_settings_are_refused_whole(
    tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    db = db_with_bond(tmp_path)
    before = db.transact([{"op": "select", "table": "Port", "where": []}])[0]["rows"]
    (failure,) = bond_update(db, {**row, "bond_downdelay": 50})
    assert failure["error"] == "constraint violation"
    assert "Port bond0" in failure["details"] and message in failure["details"]
    after = db.transact([{"op": "select", "table": "Port", "where": []}])[0]["rows"]
    assert after == before, "nothing changed, not even the valid bond_downdelay"


def test_a_device_deleted_after_it_went_down_leaves_without_downdelay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ovs_runtime.netdev import link

    lab = BondLab(BondSpec(downdelay_ms=60_000))
    (bond,) = lab.dp.bonds
    monkeypatch.setattr(link, "exists", lambda name: True)  # the kernel takes it down first
    lab.dp._port_failed(bond.members[0].handle, "Network is down")
    lab.advance(0.2)
    assert lab.active() == "m1"
    monkeypatch.setattr(link, "exists", lambda name: False)  # then it is gone
    lab.advance(0.2)
    assert lab.active() == "m2"


def test_a_new_bond_taking_an_old_bonds_number_keeps_it() -> None:
    """up1 {m1, m2} gives m1 to up0, which is made anew first: up0's NORMAL number is
    m1's, the one up1 had; removing up1 afterwards must not take it from up0."""
    lab = BondLab(BondSpec())
    bridge = lab.dp.bridges["br0"]
    (old,) = lab.dp.bonds
    m1 = old.members[0].handle.spec.interfaces[0]
    m3 = InterfaceSpec(uuid.uuid4(), "m3", "", {}, None)
    new = PortSpec(uuid.uuid4(), "bnew", None, (), None, (m1, m3), bond=BondSpec())
    lab.dp.add_port("br0", new, 2, {"m1": 2, "m3": 4})
    lab.dp.remove_port("br0", "bond0")
    (bond,) = lab.dp.bonds
    assert bridge.bundles == {bond.port.ofport: bond.port}
    assert bridge.normal.bundle_of == {2: bond.port.ofport, 4: bond.port.ofport}
    lab.send("m1", frame(BROADCAST, FAR))
    assert len(lab.send("a", frame(FAR, HOST))["m1"]) == 1


def test_policing_is_not_part_of_an_interfaces_identity() -> None:
    """A new rate changes the port (so it is updated) but not its interface (so the
    device is not made anew)."""
    a = InterfaceSpec(uuid.uuid4(), "m1", "", {}, None)
    b = dataclasses.replace(a, policing=(1000, 100))
    assert a == b
    p = port("bond0", ["m1", "m2"], BondSpec())
    assert dataclasses.replace(p, member_policing=((1000, 100), (0, 0))) != p


def notify(lab: BondLab, names: set[str] | None | Exception) -> None:
    """A link notification arrives: the datapath loop's next iteration reads it."""
    lab.links.announce(names)
    lab.dp.run_once([(lab.links.fileno(), select.EPOLLIN)])
    lab.taken()


def test_a_link_notification_for_a_member_fails_over_without_waiting_for_the_poll() -> None:
    """Carrier mode: a notification naming a member makes the bond read its members at
    once, not at its next 100 ms poll; miimon mode polls only."""
    lab = BondLab(BondSpec())
    assert lab.dp.link_fd == lab.links.fileno()
    lab.advance(0.001)
    lab.netdevs["m1"].link_state = "down"
    lab.advance(0.001)
    assert lab.active() == "m1"  # 1 ms later: not polled yet
    notify(lab, {"unrelated0"})
    assert lab.active() == "m1"
    lab.dp.run_once([(lab.links.fileno(), select.EPOLLIN)])  # a stale event: no wait
    assert lab.active() == "m1"
    notify(lab, {"m1"})
    assert lab.active() == "m2"
    lab.netdevs["m1"].link_state = "up"
    lab.netdevs["m2"].link_state = "down"
    notify(lab, None)  # notifications were lost: every bond looks
    assert lab.active() == "m1"
    lab.netdevs["m2"].link_state = "up"
    lab.netdevs["m1"].link_state = "down"
    notify(lab, ValueError("a message pyroute2 did not expect"))  # the loop goes on
    assert lab.active() == "m2"

    miimon = BondLab(BondSpec(poll_ms=200, notified=False))
    miimon.advance(0.001)
    miimon.netdevs["m1"].link_state = "down"
    notify(miimon, {"m1"})
    assert miimon.active() == "m1"  # until its next MII poll
    miimon.advance(0.2)
    assert miimon.active() == "m2"
    miimon.dp.remove_bridge("br0")
    assert miimon.links.closed and miimon.dp.link_fd == -1  # no bonds: no socket


def test_a_datapath_that_cannot_open_link_notifications_still_runs_its_bonds() -> None:
    def refuse() -> FakeLinkEvents:
        raise KeyError("no free address available")  # what pyroute2's bind() can raise

    netdevs: dict[str, MemoryNetdev] = {}

    def open_netdev(kind: str, name: str, options: dict[str, str]) -> MemoryNetdev:
        netdevs[name] = MemoryNetdev(name)
        return netdevs[name]

    now = [1000.0]
    dp = UserspaceDatapath(open_netdev, clock=lambda: now[0], link_events=refuse)
    dp.add_bridge("br0", {})
    assert (
        dp.add_port("br0", port("bond0", ["m1", "m2"], BondSpec()), 2, {"m1": 2, "m2": 3}) is None
    )
    assert dp.link_events is None
    netdevs["m1"].link_state = "down"
    now[0] += 0.2
    dp.run_once()
    assert dp.bond_show("bond0")["bond0"]["active_member"] == "m2"  # the poll still works


def test_lacp_keys_are_ignored_on_a_bond_without_lacp(tmp_path: Path) -> None:
    """As OVS: a stray LACP key on a port that does not run LACP blocks nothing."""
    db = db_with_bond(tmp_path)
    assert not bond_update(db, {"other_config": ["map", [["lacp-time", "medium"]]]})
