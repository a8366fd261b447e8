"""ovs-ofctl flow syntax: parsing, canonical printing, and clear errors (no root)."""

from __future__ import annotations

import ipaddress
import random

import pytest

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.flow_match import FlowSyntaxError, _ip_text
from ovs_runtime.ofproto.flow_syntax import (
    DEFAULT_PRIORITY,
    format_rule,
    parse_file,
    parse_filter,
    parse_rule,
)

# Lines as people write them for ovs-ofctl add-flows: spaces, commas, shorthands, hex.
OVS_OFCTL_FILE = """
# ACLs
table=0, priority=200, tcp, nw_src=198.51.100.0/24, tp_dst=22, actions=drop
table=0,priority=100,in_port=p1,dl_vlan=10 actions=strip_vlan,output:p2
 priority=50 arp arp_tpa=198.51.100.1 actions=NORMAL
cookie=0x1234,table=0,priority=10,ip,actions=resubmit(,1)
table=1, priority=5, udp, udp_dst=53, actions=mod_nw_tos:16,NORMAL
table=1,priority=1,actions=goto_table:2
table=2,priority=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=FLOOD
table=2,priority=1,ipv6,ipv6_dst=2001:db8::/32,actions=dec_ttl,normal
priority=7,dl_type=0x0800,nw_proto=1,icmp_type=8 actions=set_field:02:00:00:00:00:09->eth_dst,p3
priority=8,in_port=p2 actions=mod_vlan_vid:20,mod_vlan_pcp:3,p1
"""


def test_an_ovs_ofctl_file_parses_unchanged() -> None:
    rules = parse_file(OVS_OFCTL_FILE)
    assert len(rules) == 10
    acl = rules[0]
    assert (acl.table, acl.priority, acl.actions) == (0, 200, (("drop",),))
    assert acl.match.fields[fk.NW_SRC] == (0xC6336400, 0xFFFFFF00)
    assert acl.match.fields[fk.TP_DST] == (22, 0xFFFF)
    assert rules[3].cookie == 0x1234 and rules[3].actions == (("resubmit", None, 1),)
    assert rules[1].match.in_port == "p1"
    assert rules[9].actions[-1] == ("output", "p1"), "a bare port name is output"


@pytest.mark.parametrize(
    "line",
    [line for line in OVS_OFCTL_FILE.splitlines() if "=" in line and not line.startswith("#")],
)
def test_canonical_form_round_trips(line: str) -> None:
    rule = parse_rule(line)
    again = parse_rule(format_rule(rule))
    assert again == rule
    assert format_rule(again) == format_rule(rule)


def test_defaults_are_ovs_defaults() -> None:
    rule = parse_rule("ip actions=drop")
    assert (rule.table, rule.priority, rule.cookie, rule.idle_timeout) == (
        0,
        DEFAULT_PRIORITY,
        0,
        0,
    )
    assert (
        format_rule(parse_rule("tcp,tp_dst=80 actions=drop"))
        == "priority=32768,tcp,tp_dst=80 actions=drop"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "ip,nw_src=198.51.100.300 actions=drop",
            "nw_src: '198.51.100.300' is not an IPv4 address",
        ),
        ("tp_dst=80 actions=drop", "tp_dst needs the EtherType"),
        ("ip,tp_dst=80 actions=drop", "tp_dst needs the IP protocol"),
        ("frob=1 actions=drop", "unknown match field 'frob'; accepted: in_port"),
        ("ip actions=frob(1)", "unknown action 'frob(1)'; accepted: output:PORT"),
        ("priority=65536 actions=drop", "priority: 65536 is out of range 0..65535"),
        ("table=255 actions=drop", "table=255 is out of range 0..254"),
        ("dl_vlan=4096 actions=drop", "out of range 0..4095"),
        ("dl_src=02:00:00:00:00 actions=drop", "is not a MAC address"),
        ("ip", "has no actions="),
        (
            "actions=set_field:10->vlan_vid,NORMAL",
            "or use mod_vlan_vid:10, which adds a tag",
        ),
        ("dl_vlan=5 actions=strip_vlan,set_field:10->vlan_vid", "may have no VLAN tag"),
        ("vlan_tci=0/0x1000 actions=set_field:10->vlan_vid", "may have no VLAN tag"),
        ("ip actions=drop,NORMAL", "drop must be the only action"),
        ("table=3 ip actions=goto_table:2", "must go to a later table than 3"),
        ("ip actions=goto_table:2,NORMAL", "goto_table must be the last action"),
        ("ip actions=resubmit(,300)", "out of range 0..254"),
        ("ip actions=controller", "no OpenFlow controller"),
        ("ip actions=push_vlan:0x88a8", "only 0x8100"),
        ("ip actions=mod_nw_src:198.51.100.0/24", "give one address"),
        ("dl_type=0x0800 actions=set_field:1->frob", "FIELD one of"),
        ("cookie=0xffffffffffffffff actions=drop", "cookies above"),
        ("ip,nw_src=198.51.100.1/33 actions=drop", "prefix /33"),
        ("ip actions=resubmit(,2", "unbalanced '('"),
    ],
)
def test_bad_flows_are_refused_naming_the_token(text: str, message: str) -> None:
    with pytest.raises(FlowSyntaxError) as info:
        parse_rule(text)
    assert message in str(info.value)


def test_a_bad_line_fails_the_whole_file_with_its_number() -> None:
    with pytest.raises(FlowSyntaxError, match="flows line 3: unknown match field 'nw_sorc'"):
        parse_file("ip actions=drop\n\nip,nw_sorc=198.51.100.1 actions=drop\n")


def test_port_numbers_resolve_through_the_bridge() -> None:
    numbers = {"1": "vm1", "2": "uplink"}

    def resolve(text: str) -> str:
        if text in numbers.values():
            return text
        if text in numbers:
            return numbers[text]
        raise FlowSyntaxError(f"no port {text!r}")

    rule = parse_rule("in_port=1 actions=output:2", resolve)
    assert rule.match.in_port == "vm1" and rule.actions == (("output", "uplink"),)
    with pytest.raises(FlowSyntaxError, match="no port '7'"):
        parse_rule("in_port=7 actions=drop", resolve)


def test_filters_select_like_ovs_ofctl() -> None:
    broad = parse_rule("priority=5,ip actions=drop")
    narrow = parse_rule("priority=9,tcp,nw_src=198.51.100.0/24,tp_dst=80 actions=drop")
    other = parse_rule("table=1,priority=9,arp actions=drop")
    flt = parse_filter("ip")
    assert flt.selects(broad, strict=False) and flt.selects(narrow, strict=False)
    assert not flt.selects(other, strict=False)
    assert parse_filter("tcp").selects(narrow, strict=False)
    assert not parse_filter("tcp").selects(broad, strict=False)
    assert parse_filter("priority=5,ip").selects(broad, strict=True)
    assert not parse_filter("priority=6,ip").selects(broad, strict=True)
    assert not parse_filter("ip").selects(narrow, strict=True)
    assert parse_filter("table=1").selects(other, strict=False)
    assert parse_filter("").selects(other, strict=False)
    cookie = parse_rule("cookie=0x10,ip actions=drop")
    assert parse_filter("cookie=0x10/0xff").selects(cookie, strict=False)
    assert not parse_filter("cookie=0x20/0xff").selects(cookie, strict=False)


def test_tunnel_metadata_fields() -> None:
    rule = parse_rule("in_port=vx,tun_id=0x1392,tun_src=203.0.113.2 actions=NORMAL")
    assert format_rule(rule) == (
        "priority=32768,in_port=vx,tun_id=0x1392,tun_src=203.0.113.2 actions=NORMAL"
    )
    out = parse_rule("ip actions=set_field:203.0.113.12->tun_dst,set_tunnel:5010,output:vx")
    assert format_rule(out).endswith(
        "actions=set_field:203.0.113.12->tun_dst,set_tunnel:0x1392,output:vx"
    )
    assert parse_rule(format_rule(out)) == out


@pytest.mark.parametrize("seed", range(4))
def test_addresses_print_as_ipaddress_prints_them(seed: int) -> None:
    """The fast IPv4 printer agrees with the standard library on random addresses,
    prefixes and arbitrary masks (and IPv6 still goes through ipaddress)."""
    rng = random.Random(seed)
    for _ in range(500):
        value = rng.getrandbits(32)
        prefix = rng.randrange(33)
        cidr = ((1 << 32) - 1) ^ ((1 << (32 - prefix)) - 1)
        arbitrary = rng.getrandbits(32)
        for mask in (cidr, arbitrary, (1 << 32) - 1):
            expected = str(ipaddress.IPv4Address(value & mask))
            full = (1 << 32) - 1
            inverted = full ^ mask
            if mask != full:
                if inverted & (inverted + 1) == 0:
                    expected += f"/{32 - inverted.bit_length()}"
                else:
                    expected += f"/{ipaddress.IPv4Address(mask)}"
            assert _ip_text(value & mask, mask, 32) == expected
    v6 = rng.getrandbits(128)
    assert _ip_text(v6, (1 << 128) - 1, 128) == str(ipaddress.IPv6Address(v6))


@pytest.mark.parametrize(
    "text,canonical",
    [
        # As ovs-ofctl: an empty action list drops; white space separates actions.
        ("ip actions=", "priority=32768,ip actions=drop"),
        ("actions=output:p1 output:p2", "priority=32768 actions=output:p1,output:p2"),
        ("actions=resubmit(,1)\tp1", "priority=32768 actions=resubmit(,1),output:p1"),
        # set_field on vlan_vid rewrites a tag the match or a push_vlan guarantees.
        (
            "dl_vlan=10 actions=set_field:20->vlan_vid,p1",
            "priority=32768,dl_vlan=10 actions=mod_vlan_vid:20,output:p1",
        ),
        (
            "actions=push_vlan:0x8100,set_field:4116->vlan_vid,p1",
            "priority=32768 actions=push_vlan:0x8100,mod_vlan_vid:20,output:p1",
        ),
        (
            "vlan_tci=0x1000/0x1000 actions=set_field:20->vlan_vid",
            "priority=32768,vlan_tci=0x1000/0x1000 actions=mod_vlan_vid:20",
        ),
    ],
)
def test_ovs_ofctl_action_forms(text: str, canonical: str) -> None:
    assert format_rule(parse_rule(text)) == canonical


def test_a_cookie_mask_of_minus_one_is_all_ones() -> None:
    assert parse_filter("cookie=0x10/-1").cookie == (0x10, (1 << 64) - 1)
    assert parse_filter("cookie=0x10/0xf0").cookie == (0x10, 0xF0)
