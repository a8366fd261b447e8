"""IPv6 extension headers and ARP opcodes in the flow key, as OVS reads them: the
upper-layer protocol and ports behind hop-by-hop, routing, destination options, AH and
fragment headers; an ARP opcode above 255 as 0."""

from __future__ import annotations

from scapy.compat import raw
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6MLReport2,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.classifier import FlowTable, Rule
from ovs_runtime.ofproto.flow_syntax import parse_rule

BASE = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IPv6(
    src="2001:db8::1", dst="2001:db8::2"
)


def key(packet: object) -> fk.Key:
    return fk.extract(raw(packet), in_port=1)


def test_upper_layer_behind_extension_headers() -> None:
    plain = key(BASE / TCP(sport=40000, dport=80))
    for chain in (
        IPv6ExtHdrHopByHop(),
        IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(),
        IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt(options=[]) / IPv6ExtHdrFragment(m=1),
    ):
        behind = key(BASE / chain / TCP(sport=40000, dport=80))
        assert behind[fk.NW_PROTO] == 6 and behind[fk.TP_DST] == 80, chain.summary()
        assert behind == plain
    frame = Ether() / Dot1Q(vlan=5) / BASE[IPv6] / IPv6ExtHdrHopByHop() / UDP(dport=53)
    tagged = key(frame)
    assert tagged[fk.NW_PROTO] == 17 and tagged[fk.TP_DST] == 53


def test_later_fragments_have_no_ports_and_nothing_is_cached() -> None:
    later = key(BASE / IPv6ExtHdrFragment(offset=100, nh=6) / Raw(bytes(40)))
    assert later[fk.NW_PROTO] == 6 and later[fk.TP_SRC] == later[fk.TP_DST] == 0
    for packet in (
        BASE / IPv6ExtHdrHopByHop() / TCP(dport=80),
        BASE / IPv6ExtHdrFragment(offset=100, nh=6) / Raw(bytes(40)),
    ):
        assert fk.exact_bytes(raw(packet)) is None  # extracted every time, never cached
    assert fk.exact_bytes(raw(BASE / TCP(dport=80))) is not None


def test_truncated_chains_stop_without_error() -> None:
    frame = raw(BASE / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(dport=80))
    for cut in range(54, len(frame)):
        fk.extract(frame[:cut], in_port=1)  # never raises
    assert fk.extract(frame[:60], in_port=1)[fk.NW_PROTO] == 0  # stuck at hop-by-hop


def test_rules_match_behind_extension_headers() -> None:
    table = FlowTable(0)
    rules = {}
    for text in ("priority=20,tcp6,tp_dst=80", "priority=10,icmp6,icmp_type=143"):
        rule = Rule(None, parse_rule(f"{text},actions=drop"), 0.0)
        rule.compile({})
        table.insert(rule)
        rules[text] = rule
    web = key(BASE / IPv6ExtHdrHopByHop() / TCP(dport=80))
    assert table.lookup(web, [0] * fk.KEY_SIZE) is rules["priority=20,tcp6,tp_dst=80"]
    mld = key(
        Ether()
        / IPv6(src="fe80::1", dst="ff02::16", hlim=1)
        / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / ICMPv6MLReport2()
    )
    assert table.lookup(mld, [0] * fk.KEY_SIZE) is rules["priority=10,icmp6,icmp_type=143"]


def test_arp_opcodes_above_255_read_as_zero() -> None:
    from scapy.layers.l2 import ARP

    assert key(Ether() / ARP(op=2))[fk.NW_PROTO] == 2
    assert key(Ether() / ARP(op=0x0102))[fk.NW_PROTO] == 0  # OVS: not the low byte
