"""LACP between two simulated ends (no root): negotiation, passive ends, fallback to
active-backup, a miscabled member, timeouts and carrier loss, malformed PDUs; and the
PDU codec against scapy's independent LACP decoder."""

from __future__ import annotations

import pytest
from scapy.contrib.lacp import LACP
from scapy.layers.l2 import Ether

from ovs_runtime.datapath.lacp import (
    DEFAULTED_STATUS,
    EXPIRED_STATUS,
    BondLacp,
    LacpSettings,
    MemberLacp,
)
from ovs_runtime.packet import lacpdu
from ovs_runtime.packet.lacpdu import Lacpdu, LacpInfo, MalformedLacpdu

A_SYSTEM = bytes.fromhex("020000000a0a")
B_SYSTEM = bytes.fromhex("020000000b0b")
C_SYSTEM = bytes.fromhex("020000000c0c")


def end(system: bytes, active: bool = True, fast: bool = True, fallback: bool = False) -> BondLacp:
    members = [MemberLacp(f"{system.hex()[-2:]}-{n}", port=n) for n in (1, 2)]
    bond = BondLacp(LacpSettings(active, fast, system, 65534, fallback), members)
    for member in members:
        bond.set_carrier(member, True, 0.0)
    return bond


def exchange(left: BondLacp, right: BondLacp, now: float, wires: dict[int, int]) -> None:
    """Everything due on either end, delivered over the wires (left member index to
    right member index), until nothing more is due at ``now``."""
    for _ in range(10):
        sent = False
        for src, dst, mapping in (
            (left, right, wires),
            (right, left, {v: k for k, v in wires.items()}),
        ):
            for member, pdu in src.transmissions(now):
                sent = True
                index = src.members.index(member)
                if index in mapping:
                    peer = dst.members[mapping[index]]
                    dst.receive(peer, lacpdu.encode(bytes(6), pdu), now)
        if not sent:
            return


def run(
    left: BondLacp, right: BondLacp, start: float, seconds: float, wires: dict[int, int]
) -> None:
    t = start
    while t <= start + seconds:
        left.expire(t)
        right.expire(t)
        exchange(left, right, t, wires)
        t += 0.25


BOTH = {0: 0, 1: 1}


def test_two_active_ends_negotiate_and_enable_every_member() -> None:
    a, b = end(A_SYSTEM), end(B_SYSTEM)
    run(a, b, 0.0, 2.0, BOTH)
    for bond, other in ((a, B_SYSTEM), (b, A_SYSTEM)):
        assert bond.negotiated
        assert all(bond.may_enable(m) for m in bond.members)
        assert {m.partner.system for m in bond.members} == {other}
        assert all(m.status == "current" for m in bond.members)


def test_a_passive_end_answers_an_active_one_but_two_passive_ends_stay_silent() -> None:
    a, b = end(A_SYSTEM, active=False), end(B_SYSTEM)
    run(a, b, 0.0, 2.0, BOTH)
    assert a.negotiated and b.negotiated and all(a.may_enable(m) for m in a.members)
    c, d = end(A_SYSTEM, active=False), end(B_SYSTEM, active=False)
    run(c, d, 0.0, 5.0, BOTH)
    assert not c.negotiated and not d.negotiated
    assert sum(m.tx_pdus for m in c.members + d.members) == 0
    assert not any(c.may_enable(m) for m in c.members), "nothing negotiated, no fallback"


def test_fallback_to_active_backup_when_the_partner_speaks_no_lacp() -> None:
    a = end(A_SYSTEM, fallback=True)
    a.update_attached()
    assert not a.negotiated and all(a.may_enable(m) for m in a.members)
    strict = end(A_SYSTEM)
    strict.update_attached()
    assert not any(strict.may_enable(m) for m in strict.members)


def test_a_member_cabled_to_another_system_stays_out() -> None:
    a, b, c = end(A_SYSTEM), end(B_SYSTEM), end(C_SYSTEM)
    # a's member 0 goes to b, its member 1 to c: only one can be a's aggregate.
    for t in [x * 0.25 for x in range(12)]:
        exchange(a, b, t, {0: 0})
        exchange(a, c, t, {1: 1})
    assert a.negotiated
    assert [a.may_enable(m) for m in a.members].count(True) == 1
    chosen = next(m for m in a.members if a.may_enable(m))
    assert chosen.partner.system == B_SYSTEM, "the lead is the better-priority port: member 0"
    assert not a.members[1].attached


def test_silence_expires_then_defaults_the_partner() -> None:
    a, b = end(A_SYSTEM), end(B_SYSTEM)
    run(a, b, 0.0, 2.0, BOTH)
    a.expire(2.0 + 3.1)  # fast: 3 s without a PDU
    assert all(m.status == EXPIRED_STATUS for m in a.members)
    assert not any(a.may_enable(m) for m in a.members), "an expired partner is not in sync"
    a.expire(2.0 + 3.1 + 3.1)
    assert all(m.status == DEFAULTED_STATUS for m in a.members) and not a.negotiated
    assert all(m.partner == LacpInfo() for m in a.members)


def test_losing_carrier_expires_at_once_and_the_other_member_carries_on() -> None:
    a, b = end(A_SYSTEM), end(B_SYSTEM)
    run(a, b, 0.0, 2.0, BOTH)
    a.set_carrier(a.members[0], False, 2.0)
    assert a.members[0].status == EXPIRED_STATUS and not a.may_enable(a.members[0])
    assert a.may_enable(a.members[1])
    assert all(m is not a.members[0] for m, _ in a.transmissions(100.0)), "no carrier, no PDU"


def test_the_partner_is_told_at_once_when_it_has_us_wrong() -> None:
    a = end(A_SYSTEM)
    member = a.members[0]
    a.transmissions(0.0)
    assert member.next_tx == pytest.approx(30.0), "partner unknown: slow until asked"
    wrong = Lacpdu(LacpInfo(1, B_SYSTEM, 5, 1, 1, lacpdu.ACTIVITY | lacpdu.AGGREGATION), LacpInfo())
    a.receive(member, lacpdu.encode(bytes(6), wrong), 1.0)
    assert member.next_tx == 1.0
    [pdu] = [p for m, p in a.transmissions(1.0) if m is member]
    assert pdu.partner.system == B_SYSTEM and pdu.actor.state & lacpdu.SYNC


@pytest.mark.parametrize(
    ("frame", "error"),
    (
        (lacpdu.encode(bytes(6), Lacpdu(LacpInfo(), LacpInfo()))[:60], "too short"),
        (
            lacpdu.encode(bytes(6), Lacpdu(LacpInfo(), LacpInfo()))[:16] + b"\x02\x14" + bytes(200),
            "where the actor information",
        ),
        (bytes.fromhex("0180c2000002") + bytes(6) + b"\x88\x09\x01\x00" + bytes(120), "version 0"),
    ),
)
def test_malformed_pdus_are_counted_with_the_reason(frame: bytes, error: str) -> None:
    a = end(A_SYSTEM)
    with pytest.raises(MalformedLacpdu, match=error):
        lacpdu.decode(frame)
    assert not a.receive(a.members[0], frame, 0.0)
    assert a.members[0].rx_errors == 1 and error in (a.members[0].last_error or "")
    assert a.members[0].rx_pdus == 0


def test_the_codec_agrees_with_scapy() -> None:
    pdu = Lacpdu(
        LacpInfo(65534, A_SYSTEM, 7, 65535, 3, 0x3D),
        LacpInfo(32768, B_SYSTEM, 9, 128, 4, 0x3F),
        collector_max_delay=5,
    )
    raw = lacpdu.encode(bytes.fromhex("020000000011"), pdu)
    assert len(raw) == 124
    layer = Ether(raw)[LACP]
    assert (layer.actor_system_priority, layer.actor_key, layer.actor_port_number) == (65534, 7, 3)
    assert layer.actor_system == "02:00:00:00:0a:0a" and layer.actor_state == 0x3D
    assert (layer.partner_key, layer.partner_port_priority, layer.partner_state) == (9, 128, 0x3F)
    assert layer.collector_max_delay == 5
    assert lacpdu.decode(bytes(Ether(raw))) == pdu


def test_a_silent_passive_end_asks_for_no_polling() -> None:
    """A passive bond that has heard nothing has nothing due: the datapath must not
    poll it on every loop iteration."""
    c = end(A_SYSTEM, active=False)
    assert c.transmissions(0.0) == []
    assert c.next_event() == float("inf")
    a = end(A_SYSTEM)
    a.transmissions(0.0)
    assert a.next_event() == 30.0, "an active end: its next PDU"
