"""LACP bonds in the userspace datapath, on in-memory netdevs (no root), against a
simulated partner switch: negotiation enables the members, the bond receives on every
member of the aggregate and sends on one, LACPDUs are never switched, a silent partner
takes the bond down, and fallback to active-backup; and the state changes a bond must
follow (fallback turning into an aggregate, a cable flap, settings changed in place,
learning packets after every member was down, the ring fast path). The same against
Open vSwitch on real veths is in tests/integration/test_lacp.py."""

from __future__ import annotations

import dataclasses

from ovs_runtime.bridge.bond_config import BondSpec
from ovs_runtime.datapath.lacp import EXPIRED_STATUS, BondLacp, LacpSettings, MemberLacp
from ovs_runtime.packet import lacpdu
from tests.unit.test_bonding_memory import BROADCAST, FAR, HOST, BondLab, frame

SWITCH = bytes.fromhex("02000000aaaa")
MEMBERS = ("m1", "m2")


class Partner:
    """The switch at the other end of m1 and m2: an LACP speaker that answers."""

    def __init__(self, lab: BondLab, active: bool = True) -> None:
        self.lab = lab
        ports = [MemberLacp(f"sw{n}", port=100 + n) for n in (1, 2)]
        self.lacp = BondLacp(LacpSettings(active, True, SWITCH, 32768, False), ports)
        for member in ports:
            self.lacp.set_carrier(member, True, lab.now)
        self.silent = False
        self.heard: list[bytes] = []

    def step(self, seconds: float = 0.25) -> dict[str, list[bytes]]:
        """Time passes; PDUs cross both ways; the other frames the bond sent are returned."""
        out = self.lab.advance(seconds)
        for index, name in enumerate(MEMBERS):
            for raw in out[name]:
                if lacpdu.is_lacpdu(raw):
                    self.heard.append(raw)
                    self.lacp.receive(self.lacp.members[index], raw, self.lab.now)
            out[name] = [raw for raw in out[name] if not lacpdu.is_lacpdu(raw)]
        self.lacp.expire(self.lab.now)
        if not self.silent:
            for member, pdu in self.lacp.transmissions(self.lab.now):
                index = self.lacp.members.index(member)
                self.lab.netdevs[MEMBERS[index]].inject(lacpdu.encode(SWITCH, pdu))
        return out

    def settle(self, seconds: float = 3.0) -> None:
        for _ in range(int(seconds / 0.25)):
            self.step()


def lacp_lab(**settings: object) -> BondLab:
    return BondLab(BondSpec(lacp="active", lacp_fast=True, **settings))  # type: ignore[arg-type]


def bond(lab: BondLab) -> dict[str, object]:
    described: dict[str, object] = lab.dp.bond_show("bond0")["bond0"]
    return described


def test_negotiation_enables_every_member_and_the_bond_receives_on_all_of_them() -> None:
    lab = lacp_lab()
    partner = Partner(lab)
    partner.settle()
    state = bond(lab)
    assert state["lacp_status"] == "negotiated"
    members = state["members"]
    assert isinstance(members, dict)
    assert all(m["enabled"] and m["lacp_current"] for m in members.values()), members
    assert partner.lacp.negotiated and all(partner.lacp.may_enable(m) for m in partner.lacp.members)
    # What the partner heard: our actor in sync, collecting and distributing.
    actor = lacpdu.decode(partner.heard[-1]).actor
    assert actor.state & lacpdu.SYNC and actor.state & lacpdu.DISTRIBUTING
    lab.taken()
    out = lab.send("a", frame(BROADCAST, HOST))
    assert [len(out["m1"]), len(out["m2"])].count(1) == 1, "one active member transmits"
    for member in MEMBERS:  # the switch spreads its traffic over the whole aggregate
        out = lab.send(member, frame(HOST, FAR, member.encode() * 23))
        assert len(out["a"]) == 1, f"a frame arriving on {member} is taken"


def member_state(lab: BondLab, name: str) -> MemberLacp:
    (state,) = [m.lacp for m in lab.dp.bonds[0].members if m.name == name and m.lacp]
    return state


def test_slow_protocol_frames_go_to_lacp_never_to_the_bridge() -> None:
    """Even with forward-bpdu=true (NORMAL would flood them), LACPDUs and the other
    slow protocols (a Marker here) arriving on an LACP member are the bond's."""
    lab = lacp_lab()
    lab.dp.configure_bridge("br0", {"forward-bpdu": "true"})
    partner = Partner(lab)
    partner.settle()
    lab.taken()
    before = member_state(lab, "m1").rx_pdus
    actor = partner.lacp.actor_info(partner.lacp.members[0])
    pdu = lacpdu.encode(SWITCH, lacpdu.Lacpdu(actor, lacpdu.LacpInfo()))
    marker = pdu[:14] + b"\x02" + pdu[15:]
    for raw in (marker, pdu, marker, pdu):
        out = lab.send("m1", raw)
        assert out["a"] == [], "never switched"
    assert member_state(lab, "m1").rx_pdus == before + 2
    drops = lab.dp.bridges["br0"].normal.drops
    assert drops["reserved-destination"] == 0 and drops["slow-protocol"] == 2


def test_a_partner_that_speaks_no_lacp_leaves_the_bond_down_unless_it_falls_back() -> None:
    lab = lacp_lab()
    partner = Partner(lab)
    partner.silent = True
    out = {}
    for _ in range(8):
        out = partner.step()
    assert bond(lab)["lacp_status"] == "configured" and partner.heard, "we keep asking"
    out = lab.send("a", frame(BROADCAST, HOST))
    assert out["m1"] == out["m2"] == [], "no member is enabled"
    fallback = lacp_lab(lacp_fallback_ab=True)
    out = fallback.send("a", frame(BROADCAST, HOST))
    assert len([f for f in out["m1"] + out["m2"] if not lacpdu.is_lacpdu(f)]) == 1
    out = fallback.send("m2" if out["m1"] else "m1", frame(BROADCAST, FAR))
    assert out["a"] == [], "active-backup again: the backup member's frames are dropped"


def test_a_partner_that_falls_silent_takes_its_members_out() -> None:
    lab = lacp_lab()
    partner = Partner(lab)
    partner.settle()
    partner.silent = True
    for _ in range(16):  # 4 s: more than the 3 s a fast partner may stay silent
        partner.step()
    members = bond(lab)["members"]
    assert isinstance(members, dict)
    assert not any(m["enabled"] for m in members.values()), members
    lab.taken()
    out = lab.send("a", frame(BROADCAST, HOST))
    assert out["m1"] == out["m2"] == []
    partner.silent = False
    partner.settle()
    out = lab.send("a", frame(BROADCAST, HOST))
    assert len(out["m1"] + out["m2"]) == 1, "back when the partner speaks again"


def test_a_passive_bond_waits_for_the_partner() -> None:
    lab = BondLab(BondSpec(lacp="passive", lacp_fast=True))
    partner = Partner(lab, active=False)
    partner.settle()
    assert partner.heard == [] and bond(lab)["lacp_status"] == "configured"
    lab2 = BondLab(BondSpec(lacp="passive", lacp_fast=True))
    partner2 = Partner(lab2, active=True)
    partner2.settle()
    assert partner2.heard and bond(lab2)["lacp_status"] == "negotiated"


def test_fallback_turning_into_an_aggregate_admits_every_member() -> None:
    lab = lacp_lab(lacp_fallback_ab=True)
    lab.taken()
    out = lab.send("m2", frame(BROADCAST, FAR))
    assert out["a"] == [], "active-backup while nothing is negotiated: m2 stands by"
    partner = Partner(lab)
    partner.settle()
    assert bond(lab)["lacp_status"] == "negotiated"
    out = lab.send("m2", frame(BROADCAST, FAR, b"y" * 46))
    assert len(out["a"]) == 1, "now in the aggregate: the switch may use m2"


def test_a_cable_flap_expires_then_forgets_the_partner_and_fallback_takes_over() -> None:
    lab = lacp_lab(lacp_fallback_ab=True)
    partner = Partner(lab)
    partner.settle()
    partner.silent = True  # the switch stops speaking LACP while the cables flap
    for name in MEMBERS:
        lab.netdevs[name].link_state = "down"
    partner.step()
    assert member_state(lab, "m1").status == EXPIRED_STATUS
    for name in MEMBERS:
        lab.netdevs[name].link_state = "up"
    for _ in range(16):  # 4 s: the 3 s of the expired phase
        partner.step()
    assert bond(lab)["lacp_status"] == "configured", "forgotten, not expired for ever"
    lab.taken()
    out = lab.send("a", frame(BROADCAST, HOST))
    assert len(out["m1"] + out["m2"]) == 1, "the fallback to active-backup carries traffic"


def test_lacp_settings_change_in_place_without_losing_the_aggregate() -> None:
    lab = lacp_lab()
    partner = Partner(lab)
    partner.settle()
    handles = [m.handle for m in lab.dp.bonds[0].members]
    spec = BondSpec(lacp="active", lacp_fast=False, lacp_fallback_ab=True)
    bond_port = lab.dp.bridges["br0"].ports["bond0"]
    new = dataclasses.replace(bond_port.spec, bond=spec)
    assert lab.dp.update_port("br0", new, 2, {"m1": 2, "m2": 3}) is None
    assert [m.handle for m in lab.dp.bonds[0].members] == handles, "devices kept"
    assert bond(lab)["lacp_status"] == "negotiated", "what was heard is kept"
    shown = lab.dp.lacp_show("bond0")["bond0"]
    assert shown["lacp_time"] == "slow" and shown["fallback_ab"] is True
    out = partner.step()
    assert partner.heard and not lacpdu.decode(partner.heard[-1]).actor.state & lacpdu.TIMEOUT
    lab.taken()
    out = lab.send("a", frame(BROADCAST, HOST))
    assert len(out["m1"] + out["m2"]) == 1


def test_learning_packets_follow_a_member_back_after_every_member_was_down() -> None:
    lab = BondLab(BondSpec())
    lab.send("a", frame(BROADCAST, HOST))  # learned on port a: announced after failovers
    for name in ("m1", "m2"):
        lab.netdevs[name].link_state = "down"
    lab.advance(0.2)
    assert lab.active() is None
    lab.netdevs["m1"].link_state = "up"
    out = lab.advance(0.2)
    assert lab.active() == "m1"
    rarps = [f for f in out["m1"] if f[12:14] == b"\x80\x35"]
    assert any(f[6:12] == HOST for f in rarps), "the bridge's MACs announced on the way back"


def test_lacp_timers_do_not_wait_for_a_slow_miimon_poll() -> None:
    lab = BondLab(BondSpec(lacp="active", lacp_fast=True, poll_ms=5000, notified=False))
    partner = Partner(lab)
    for _ in range(40):  # 10 s
        partner.step()
    assert bond(lab)["lacp_status"] == "negotiated"
    assert partner.lacp.negotiated and all(partner.lacp.may_enable(m) for m in partner.lacp.members)
    assert all(m.status == "current" for m in partner.lacp.members), "never expired at the switch"


def test_through_the_ring_fast_path_lacpdus_still_reach_lacp() -> None:
    """The cached decision for frames from the switch's MAC must never catch a LACPDU:
    slow-protocol frames on an LACP member are never decided, so never cached."""
    lab = lacp_lab()
    partner = Partner(lab)
    partner.settle()
    entries = lab.dp.bridges["br0"].cache.entries
    assert not [k for k in entries if k[1][12:14] == b"\x88\x09"], "no decision for 0x8809"
