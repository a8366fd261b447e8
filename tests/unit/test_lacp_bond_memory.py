"""LACP bonds in the userspace datapath, on in-memory netdevs (no root), against a
simulated partner switch: negotiation enables the members, the bond receives on every
member of the aggregate and sends on one, LACPDUs are never switched, a silent partner
takes the bond down, and fallback to active-backup. The same against Open vSwitch on
real veths is in tests/integration/test_bonding.py."""

from __future__ import annotations

from ovs_runtime.bridge.bond_config import BondSpec
from ovs_runtime.datapath.lacp import BondLacp, LacpSettings, MemberLacp
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
            self.lacp.set_carrier(member, True)
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


def test_lacpdus_are_never_switched() -> None:
    lab = lacp_lab()
    partner = Partner(lab)
    partner.settle()
    lab.taken()
    pdu = lacpdu.encode(SWITCH, lacpdu.Lacpdu(lacpdu.LacpInfo(), lacpdu.LacpInfo()))
    out = lab.send("m1", pdu)
    assert out["a"] == [] and [f for f in out["m2"] if not lacpdu.is_lacpdu(f)] == []


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
