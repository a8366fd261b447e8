"""Flow matches against the real ``ovs-ofctl parse-flows``: OVS's normalised text of a
flow, read back by our parser, must be the match our parser makes of the original. So
a rule matches the same packets as the same text in Open vSwitch (field given twice,
zero masks, aliases, ICMP names, masks, number forms), without trusting our printer."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from ovs_runtime.ofproto.flow_match import FlowSyntaxError
from ovs_runtime.ofproto.flow_syntax import parse_rule

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-ofctl") is None,
    reason="ovs-ofctl missing: run `make deps` (openvswitch-switch)",
)

CASES = [
    # A field given again replaces the earlier value (the last counts).
    "dl_vlan=5,vlan_tci=0x1000/0x1000",
    "ip,nw_src=10.1.0.0/16,nw_src=10.0.0.0/8",
    "dl_vlan_pcp=3,vlan_tci=0x1005/0x1fff",
    "tcp,tp_dst=80,tp_dst=0x50/0xfff0",
    "tcp,udp",
    "ip,ipv6",
    "ip,arp",
    "dl_vlan=5,dl_vlan=6",
    "ip,nw_tos=16,ip_dscp=8",
    "arp,arp_op=1,nw_proto=2",
    "dl_vlan=10,dl_vlan_pcp=3",
    "dl_vlan_pcp=3,dl_vlan=10",
    "dl_vlan=0xffff,dl_vlan_pcp=3",
    "tcp,ip",
    # A zero mask matches anything: the field is left out.
    "ip,nw_src=0.0.0.0/0",
    "ip,nw_src=10.0.0.1/0.0.0.0",
    "tcp,tp_src=0x1000/0",
    "dl_dst=01:00:00:00:00:00/00:00:00:00:00:00",
    "vlan_tci=0/0",
    "tun_id=5/0",
    "ipv6,ipv6_src=::/0",
    # Aliases and the ICMP names.
    "icmp6,icmp_type=135,icmp_code=0",
    "icmp6,icmpv6_type=135,icmpv6_code=0",
    "icmp,tp_src=8,tp_dst=0",
    "icmp6,tp_src=135",
    "udp,tcp_src=80",
    "tcp,udp_dst=53",
    "arp,ip_src=198.51.100.1",
    "ip,arp_spa=198.51.100.1",
    "arp,ip_proto=1",
    # Values OVS normalises.
    "ip,nw_tos=5",
    "ip,nw_src=198.51.100.7/24",
    "ipv6,ipv6_src=2001:db8::1/48",
    "tcp,tp_src=017",
    "nw_proto=6/0xff,ip",
    "ip,nw_ttl=5/0xff",
    "dl_type=0x0800/0xffff",
    "dl_src=02:00:00:00:00:01/ff:ff:ff:00:00:00",
    "ip,nw_dst=198.51.100.0/255.255.255.128",
    "ip,nw_dst=198.51.100.0/255.0.255.0",
]

REFUSED = [
    "ip,nw_src=1.2.3.4/::ffff",  # a mask of the other IP version
    "ipv6,ipv6_src=2001:db8::1/255.255.255.0",
    "ip,nw_src=198.51.100.1/33",
    "tcp,tp_src=0b101",
    "tcp,tp_src=1_000",
    "icmp,icmp_type=300",
]


def random_cases(seed: int, count: int) -> list[str]:
    """Fields drawn with values, masks and repeats, under one of the shorthands."""
    rng = random.Random(seed)
    choices = {
        "ip": ["nw_src", "nw_dst", "nw_tos", "nw_ttl", "ip_dscp"],
        "tcp": ["tp_src", "tp_dst", "nw_src", "tcp_dst"],
        "udp": ["tp_src", "tp_dst", "nw_dst", "udp_src"],
        "ipv6": ["ipv6_src", "ipv6_dst", "nw_ttl"],
        "arp": ["arp_spa", "arp_tpa", "arp_op", "arp_sha"],
        "icmp": ["icmp_type", "icmp_code"],
    }

    def value(name: str) -> str:
        if name in ("nw_src", "nw_dst", "arp_spa", "arp_tpa"):
            text = f"198.51.{rng.randrange(256)}.{rng.randrange(256)}"
            return text + rng.choice(["", f"/{rng.randrange(33)}", "/255.255.0.255"])
        if name in ("ipv6_src", "ipv6_dst"):
            prefix = rng.choice(["", f"/{rng.randrange(129)}"])
            return f"2001:db8::{rng.randrange(65536):x}{prefix}"
        if name in ("tp_src", "tp_dst", "tcp_dst", "udp_src"):
            port = rng.randrange(65536)
            return rng.choice([str(port), f"{port:#x}/{rng.randrange(65536):#x}"])
        if name == "arp_sha":
            return "02:00:00:00:00:" + f"{rng.randrange(256):02x}"
        if name in ("nw_tos",):
            return str(rng.randrange(256))
        if name == "ip_dscp":
            return str(rng.randrange(64))
        return str(rng.randrange(256))

    cases = []
    for _ in range(count):
        shorthand = rng.choice(list(choices))
        fields = [rng.choice(choices[shorthand]) for _ in range(rng.randrange(1, 5))]
        cases.append(",".join([shorthand, *(f"{f}={value(f)}" for f in fields)]))
    return cases


def ovs_normalised(flows: list[str], tmp: Path) -> list[str]:
    """The text after ``ADD`` in ``ovs-ofctl parse-flows`` output, one per flow."""
    path = tmp / "flows.txt"
    path.write_text("".join(f"{flow},actions=drop\n" for flow in flows))
    out = subprocess.run(
        ["ovs-ofctl", "parse-flows", str(path)], capture_output=True, text=True, check=True
    ).stdout
    adds = [line.split(": ADD ", 1)[1] for line in out.splitlines() if ": ADD " in line]
    assert len(adds) == len(flows), out[-2000:]
    return adds


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_are_those_of_ovs(tmp_path: Path, seed: int) -> None:
    flows = CASES + random_cases(seed, 300)
    for flow, theirs in zip(flows, ovs_normalised(flows, tmp_path), strict=True):
        ours = parse_rule(f"{flow},actions=drop").match
        assert parse_rule(theirs).match == ours, f"{flow}: OVS made it {theirs}"


@pytest.mark.parametrize("flow", REFUSED)
def test_flows_ovs_refuses_are_refused(flow: str) -> None:
    theirs = subprocess.run(
        ["ovs-ofctl", "parse-flow", f"{flow},actions=drop"], capture_output=True, text=True
    )
    assert theirs.returncode != 0, theirs.stdout
    with pytest.raises(FlowSyntaxError):
        parse_rule(f"{flow},actions=drop")


@pytest.mark.parametrize(
    "flow",
    [
        "actions=set_field:10->vlan_vid,drop",
        "actions=set_field:3->vlan_pcp",
        "dl_vlan=5,actions=strip_vlan,set_field:10->vlan_vid",
        "dl_vlan=0xffff,actions=set_field:3->vlan_pcp",
    ],
)
def test_vlan_rewrites_without_a_tag_are_refused_as_ovs_refuses_them(flow: str) -> None:
    theirs = subprocess.run(["ovs-ofctl", "parse-flow", flow], capture_output=True, text=True)
    assert theirs.returncode != 0, theirs.stdout
    with pytest.raises(FlowSyntaxError):
        parse_rule(flow)


@pytest.mark.parametrize(
    "flow",
    [
        "dl_vlan=5,actions=set_field:10->vlan_vid",
        "vlan_tci=0x1000/0x1000,actions=set_field:3->vlan_pcp",
        "actions=push_vlan:0x8100,set_field:4106->vlan_vid",  # (OpenFlow 1.3: the 0x1000 bit)
        "actions=mod_vlan_vid:10,set_field:3->vlan_pcp",
        "actions=",
    ],
)
def test_vlan_rewrites_ovs_accepts_are_accepted(flow: str) -> None:
    protocol = ["-O", "OpenFlow13"] if "push_vlan" in flow else []
    theirs = subprocess.run(
        ["ovs-ofctl", *protocol, "parse-flow", flow], capture_output=True, text=True
    )
    assert theirs.returncode == 0, theirs.stderr
    parse_rule(flow)


@pytest.mark.parametrize(
    "flow",
    ["ip,actions=mod_nw_tos:5", "ip,actions=set_field:5->nw_tos", "ip,actions=mod_nw_tos:3"],
)
def test_tos_rewrites_with_ecn_bits_are_refused_as_ovs_refuses_them(flow: str) -> None:
    """A match ignores the ECN bits of nw_tos (nw_tos=5 is nw_tos=4); an action that
    would write them is refused, by ovs-ofctl and by us."""
    theirs = subprocess.run(["ovs-ofctl", "parse-flow", flow], capture_output=True, text=True)
    assert theirs.returncode != 0, theirs.stdout
    with pytest.raises(FlowSyntaxError, match="multiple of 4"):
        parse_rule(flow)
    assert parse_rule(flow.replace(":5", ":4").replace(":3", ":4").replace("5->", "4->"))
