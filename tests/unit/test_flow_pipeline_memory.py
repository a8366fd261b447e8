"""Flow rules in the userspace datapath with in-memory ports (no root): the pipeline,
rewrites, timeouts, counters, caches, port security and the tracer."""

from __future__ import annotations

import random
import struct
import time
import uuid
from typing import Any

import pytest

from ovs_runtime.bridge.desired_state import InterfaceSpec, PortSpec
from ovs_runtime.bridge.flow_rules import FlowRuleSpec
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.flow_match import FlowSyntaxError
from ovs_runtime.ofproto.flow_syntax import format_rule, parse_rule
from ovs_runtime.ofproto.port_security import nd_violation, parse_port_security
from ovs_runtime.packet.offload import ones_complement_sum
from ovs_runtime.packet.synthesize import build_frame
from tests.unit.test_switching_memory import MemoryHarness

NET = 0xC6336400  # 198.51.100.0
MACS = {name: 0x020000000000 + n for n, name in enumerate("abcd", 1)}


def ip(n: int) -> int:
    return NET + n


class FlowHarness(MemoryHarness):
    def __init__(self, ports: str = "abcd") -> None:
        super().__init__()
        self.configure({name: {} for name in ports})
        self.specs: list[FlowRuleSpec] = []
        self.mode = "standalone"

    def resolve(self, text: str) -> str:
        if text in self.dp.bridges["br0"].ports:
            return text
        raise FlowSyntaxError(f"no port {text!r}")

    def flows(self, *lines: str, mode: str = "standalone") -> list[FlowRuleSpec]:
        self.specs = [
            FlowRuleSpec(uuid.uuid4(), line, parse_rule(line, self.resolve), time.time())
            for line in lines
        ]
        self.mode = mode
        self.dp.configure_flows("br0", mode, self.specs)
        return self.specs

    def udp(
        self,
        src: str,
        dst_ip: int,
        dport: int = 7,
        dst_mac: int | None = None,
        extra: dict[int, int] | None = None,
    ) -> bytes:
        values = {
            fk.DL_SRC: MACS[src],
            fk.DL_DST: dst_mac if dst_mac is not None else 0xFFFFFFFFFFFF,
            fk.DL_TYPE: fk.ETH_IP,
            fk.NW_PROTO: 17,
            fk.NW_SRC: ip(ord(src) - 96),
            fk.NW_DST: dst_ip,
            fk.TP_DST: dport,
            **(extra or {}),
        }
        return build_frame(values)

    def got(self) -> dict[str, list[bytes]]:
        return {name: frames for name, frames in self.received().items() if frames}

    def stats(self) -> dict[str, int]:
        by_uuid = {s["uuid"]: s["n_packets"] for s in self.dp.flow_statistics("br0")}
        return {spec.version: by_uuid[str(spec.uuid)] for spec in self.specs}


def test_standalone_bridge_has_an_implicit_normal_rule_and_secure_has_none() -> None:
    h = FlowHarness()
    h.send("a", h.udp("a", ip(2)))
    assert set(h.got()) == {"b", "c", "d"}, "NORMAL floods"
    h.flows(mode="secure")
    h.send("a", h.udp("a", ip(2)))
    assert h.got() == {}, "secure: nothing forwarded that no rule allows"
    h.flows("priority=1,in_port=a actions=output:c", mode="secure")
    h.send("a", h.udp("a", ip(2)))
    assert set(h.got()) == {"c"}


def test_acl_drops_one_pair_and_the_rest_still_flows() -> None:
    h = FlowHarness()
    h.flows("priority=100,ip,nw_src=198.51.100.1,nw_dst=198.51.100.2 actions=drop")
    h.send("a", h.udp("a", ip(2)))
    assert h.got() == {}
    h.send("a", h.udp("a", ip(3)))
    assert set(h.got()) == {"b", "c", "d"}
    h.send("c", h.udp("c", ip(2)))
    assert set(h.got()) == {"a", "b", "d"}
    assert h.stats()["priority=100,ip,nw_src=198.51.100.1,nw_dst=198.51.100.2 actions=drop"] == 1


def test_redirect_resubmit_and_goto_table() -> None:
    h = FlowHarness()
    h.flows(
        "priority=10,udp,tp_dst=53 actions=resubmit(,1),output:d",
        "table=1,priority=5,ip,nw_dst=198.51.100.2 actions=goto_table:3",
        "table=3,priority=1 actions=output:b",
    )
    h.send("a", h.udp("a", ip(2), dport=53))
    assert set(h.got()) == {"b", "d"}
    h.send("a", h.udp("a", ip(3), dport=53))
    assert set(h.got()) == {"d"}, "table 1 misses: only the redirect"


def test_vlan_rewrite_push_retag_and_strip() -> None:
    h = FlowHarness()
    h.flows(
        "priority=10,in_port=a actions=mod_vlan_vid:20,output:b",
        "priority=10,in_port=b,dl_vlan=20 actions=mod_vlan_vid:30,mod_vlan_pcp:5,output:c",
        "priority=10,in_port=c,dl_vlan=30 actions=strip_vlan,output:d",
    )
    h.send("a", h.udp("a", ip(2)))
    (frame,) = h.got()["b"]
    assert frame[12:16] == struct.pack("!HH", 0x8100, 20)
    h.send("b", frame)
    (frame,) = h.got()["c"]
    assert frame[12:16] == struct.pack("!HH", 0x8100, (5 << 13) | 30)
    h.send("c", frame)
    (frame,) = h.got()["d"]
    assert frame[12:14] == b"\x08\x00" and fk.extract(frame, 0)[fk.NW_DST] == ip(2)


def _valid_ipv4_udp(frame: bytes) -> bool:
    ihl = (frame[14] & 15) * 4
    header = frame[14 : 14 + ihl]
    if ones_complement_sum(header) != 0xFFFF:
        return False
    length = struct.unpack("!H", frame[16:18])[0] - ihl
    udp = frame[14 + ihl : 14 + ihl + length]
    pseudo = frame[26:34] + struct.pack("!BBH", 0, 17, length)
    return ones_complement_sum(pseudo + udp) == 0xFFFF


def test_address_rewrites_fix_checksums_and_dec_ttl() -> None:
    h = FlowHarness()
    h.flows(
        "priority=10,udp,nw_dst=198.51.100.2 actions=mod_nw_dst:198.51.100.9,"
        "mod_nw_src:198.51.100.8,mod_dl_dst:02:00:00:00:00:09,dec_ttl,output:b",
        "priority=10,udp,nw_dst=198.51.100.3 actions=dec_ttl,output:c",
    )
    original = h.udp("a", ip(2))
    assert _valid_ipv4_udp(original)
    h.send("a", original)
    (frame,) = h.got()["b"]
    key = fk.extract(frame, 0)
    assert (key[fk.NW_SRC], key[fk.NW_DST], key[fk.DL_DST]) == (ip(8), ip(9), 0x020000000009)
    assert key[fk.NW_TTL] == 63
    assert _valid_ipv4_udp(frame), "IP and UDP checksums were fixed"
    h.send("a", h.udp("a", ip(3), extra={fk.NW_TTL: 1}))
    assert h.got() == {}, "TTL 1 expires at dec_ttl"


def test_a_rule_change_is_in_force_for_the_next_packet() -> None:
    h = FlowHarness()
    h.flows("priority=10,udp actions=output:b")
    for _ in range(3):
        h.send("a", h.udp("a", ip(2)))
        assert set(h.got()) == {"b"}
    assert h.dp.bridges["br0"].cache.hits >= 2
    h.flows("priority=10,udp actions=output:c")
    h.send("a", h.udp("a", ip(2)))
    assert set(h.got()) == {"c"}, "no stale cached decision after a rule change"
    h.flows()
    h.send("a", h.udp("a", ip(2)))
    assert set(h.got()) == {"b", "c", "d"}


def test_megaflows_cover_many_exact_flows_whatever_the_rule_count() -> None:
    h = FlowHarness()
    noise = [
        f"priority=100,ip,nw_dst=203.0.113.{n % 250},nw_src=198.51.100.{n // 250} actions=drop"
        for n in range(5000)
    ]
    h.flows(*noise, "priority=50,ip,nw_dst=198.51.100.2 actions=output:b")
    bridge = h.dp.bridges["br0"]
    for sport in range(200):  # 200 different flows the rules do not tell apart
        h.send("a", h.udp("a", ip(2), extra={fk.TP_SRC: 1000 + sport}))
    assert len(h.got()["b"]) == 200
    cache = bridge.cache.describe()
    assert cache["megaflows"] == 1, cache
    assert cache["megaflow_hits"] == 199, "one classifier run, then the megaflow answers"
    key = fk.extract(h.udp("a", ip(2)), 1)
    wildcards = [0] * fk.KEY_SIZE
    bridge.flows.pipeline.table(0).lookup(key, wildcards)
    assert wildcards[fk.TP_SRC] == 0 and wildcards[fk.NW_DST] == fk.FULL[fk.NW_DST]


def test_priorities_and_ties_resolve_like_ovs() -> None:
    h = FlowHarness()
    h.flows(
        "priority=10,ip actions=output:b",
        "priority=20,ip,nw_dst=198.51.100.2 actions=output:c",
        "priority=20,udp actions=output:d",  # overlaps the rule above at equal priority
    )
    h.send("a", h.udp("a", ip(2)))
    assert set(h.got()) == {"c"}, "equal priority: the rule installed first wins"
    h.send("a", h.udp("a", ip(3)))
    assert set(h.got()) == {"d"}


def test_timeouts_expire_rules_by_the_clock() -> None:
    h = FlowHarness()
    idle, hard, keep = h.flows(
        "priority=10,udp,tp_dst=1,idle_timeout=5 actions=output:b",
        "priority=10,udp,tp_dst=2,hard_timeout=8 actions=output:c",
        "priority=10,udp,tp_dst=3 actions=output:d",
    )
    for step in range(12):
        h.now += 1
        h.send("a", h.udp("a", ip(2), dport=2))  # keeps the hard-timeout rule busy
        h.dp.maintain_flows(h.now)
        if step == 2:
            h.send("a", h.udp("a", ip(2), dport=1))  # one hit resets the idle timer
    expired = {u: why for _b, u, why in h.dp.expired_flows()}
    assert expired == {str(idle.uuid): "idle", str(hard.uuid): "hard"}
    h.send("a", h.udp("a", ip(2), dport=2))
    assert set(h.got()) == {"b", "c", "d"}, "expired: back to NORMAL"
    assert str(keep.uuid) in {s["uuid"] for s in h.dp.flow_statistics("br0")}


def test_unchanged_rules_keep_counters_when_the_set_is_replaced() -> None:
    h = FlowHarness()
    first, second = h.flows(
        "priority=10,udp,tp_dst=1 actions=output:b", "priority=10,udp,tp_dst=2 actions=output:c"
    )
    for _ in range(3):
        h.send("a", h.udp("a", ip(2), dport=1))
    h.specs = [
        first,
        FlowRuleSpec(
            uuid.uuid4(),
            "new",
            parse_rule("priority=10,udp,tp_dst=2 actions=output:d"),
            time.time(),
        ),
    ]
    h.dp.configure_flows("br0", "standalone", h.specs)
    h.send("a", h.udp("a", ip(2), dport=1))
    stats = {s["uuid"]: s["n_packets"] for s in h.dp.flow_statistics("br0")}
    assert stats[str(first.uuid)] == 4
    assert str(second.uuid) not in stats


def with_security(h: FlowHarness, port: str, entries: list[str]) -> None:
    bridge = h.dp.bridges["br0"]
    handle = bridge.ports[port]
    spec = handle.spec
    new = PortSpec(
        spec.uuid,
        spec.name,
        None,
        (),
        None,
        spec.interfaces,
        port_security=parse_port_security(entries, port),
    )
    h.dp.update_port("br0", new, handle.ofport)


def test_port_security_drops_spoofed_mac_ip_and_arp() -> None:
    h = FlowHarness()
    with_security(h, "a", ["02:00:00:00:00:01 198.51.100.1"])
    h.send("a", h.udp("a", ip(2)))
    assert set(h.got()) == {"b", "c", "d"}, "legitimate traffic flows"
    h.send("a", h.udp("a", ip(2), extra={fk.DL_SRC: 0x020000000077}))
    h.send("a", h.udp("a", ip(2), extra={fk.NW_SRC: ip(77)}))
    arp = {fk.DL_SRC: MACS["a"], fk.DL_DST: 0xFFFFFFFFFFFF, fk.DL_TYPE: fk.ETH_ARP, fk.NW_PROTO: 1}
    h.send("a", build_frame({**arp, fk.NW_SRC: ip(77), fk.NW_DST: ip(2)}))
    h.send(
        "a", build_frame({**arp, fk.NW_SRC: ip(1), fk.NW_DST: ip(2), fk.ARP_SHA: 0x020000000077})
    )
    assert h.got() == {}
    h.send("a", build_frame({**arp, fk.NW_SRC: ip(1), fk.NW_DST: ip(2)}))
    h.send("a", h.udp("a", 0xFFFFFFFF, dport=67, extra={fk.NW_SRC: 0}))  # DHCP discover
    assert {k: len(v) for k, v in h.got().items()} == {"b": 2, "c": 2, "d": 2}
    drops = h.dp.bridges["br0"].normal.drops
    assert drops["port-security-mac"] == 1 and drops["port-security-ip"] == 1
    assert drops["port-security-arp"] == 2
    h.send("a", h.udp("a", ip(2), extra={fk.NW_SRC: ip(77)}))  # cached: still counted
    assert drops["port-security-ip"] == 2
    assert h.netdevs["a"].stats.rx_dropped == 5


PORTS = "abcd"


def _random_rule(rng: random.Random, table: int) -> str:
    match = [rng.choice(["ip", "udp", "arp", ""])]
    if match[0] in ("ip", "udp") and rng.random() < 0.6:
        match.append(f"nw_dst=198.51.100.{rng.randint(1, 4)}")
    if match[0] == "udp" and rng.random() < 0.5:
        match.append(f"tp_dst={rng.choice([7, 53])}")
    if rng.random() < 0.4:
        match.append(f"in_port={rng.choice(PORTS)}")
    actions = rng.choice(
        [
            f"output:{rng.choice(PORTS)}",
            "drop",
            "NORMAL",
            f"mod_vlan_vid:{rng.randint(1, 30)},output:{rng.choice(PORTS)}",
            f"output:{rng.choice(PORTS)},output:{rng.choice(PORTS)}",
            "FLOOD",
        ]
        + ([f"resubmit(,{table + 1})"] if table < 2 else [])
    )
    head = f"table={table},priority={rng.randint(1, 50)}"
    return ",".join([head, *[m for m in match if m]]) + f" actions={actions}"


@pytest.mark.parametrize("seed", range(10))
def test_trace_agrees_with_forwarding(seed: int) -> None:
    rng = random.Random(seed)
    h = FlowHarness()
    rules = {}
    for _ in range(8):
        line = _random_rule(rng, rng.choice([0, 0, 1, 2]))
        rules[parse_rule(line, h.resolve).identity] = line
    h.flows(*rules.values())
    for _ in range(25):
        src = rng.choice(PORTS)
        frame = h.udp(
            src,
            ip(rng.randint(1, 4)),
            dport=rng.choice([7, 53]),
            dst_mac=rng.choice([0xFFFFFFFFFFFF, MACS[rng.choice(PORTS)]]),
        )
        verdict = h.dp.trace("br0", frame, src)
        h.send(src, frame)
        observed = sorted(p for p, frames in h.got().items() for _f in frames)
        assert sorted(o["port"] for o in verdict["outputs"]) == observed, (rules, verdict)


def test_cached_decisions_depend_on_the_tag_and_values_they_rewrite() -> None:
    """Regressions: a decision built for one packet must not be reused for another its
    actions treat differently (found in review)."""
    h = FlowHarness()
    h.flows(
        "priority=10,in_port=a actions=strip_vlan,output:b",
        "priority=10,in_port=c,ip actions=mod_nw_dst:198.51.100.2,output:d",
    )
    tagged = h.udp("a", ip(2), extra={fk.VLAN_TCI: 0x1000 | 10})
    untagged = h.udp("a", ip(2))
    h.send("a", tagged)
    h.send("a", untagged)
    first, second = h.got()["b"]
    assert first == untagged, "the tag was stripped"
    assert second == untagged, "an untagged frame is not 'popped' too"
    h.send("c", h.udp("c", ip(2)))  # already .2: nothing to rewrite
    h.send("c", h.udp("c", ip(3)))
    outs = [fk.extract(f, 0)[fk.NW_DST] for f in h.got()["d"]]
    assert outs == [ip(2), ip(2)], "the second packet is rewritten too"
    h.send("c", h.udp("c", ip(3), extra={fk.VLAN_TCI: 0x1000 | 7}))
    (frame,) = h.got()["d"]
    key = fk.extract(frame, 0)
    assert (key[fk.VLAN_TCI], key[fk.NW_DST]) == (0x1000 | 7, ip(2))
    assert _valid_ipv4_udp(frame[:12] + frame[16:])


def test_a_resubmit_explosion_is_cut_off() -> None:
    h = FlowHarness()
    h.flows(
        *[f"table={t},priority=1 actions=resubmit(,{t + 1}),resubmit(,{t + 1})" for t in range(30)],
        "table=30,priority=1 actions=output:b",
    )
    started = time.monotonic()
    h.send("a", h.udp("a", ip(2)))
    assert time.monotonic() - started < 5
    assert h.got() == {}, "dropped, as OVS does past its resubmit limit"


def test_every_vlan_match_prints_back_to_the_same_match() -> None:
    for text in (
        "vlan_tci=0x1000/0x1000",
        "vlan_tci=0/0x1000",
        "dl_vlan=5,dl_vlan_pcp=2",
        "dl_vlan=0xffff",
    ):
        rule = parse_rule(f"{text} actions=drop")
        assert parse_rule(format_rule(rule)).match == rule.match, text


def test_tun_id_matches_the_vni_of_the_tunnel_port() -> None:
    h = FlowHarness()
    tunnel = PortSpec(
        uuid.uuid4(),
        "vx1",
        None,
        (),
        None,
        (
            InterfaceSpec(
                uuid.uuid4(), "vx1", "vxlan", {"remote_ip": "203.0.113.2", "key": "5010"}, None
            ),
        ),
    )
    h.dp.add_port("br0", tunnel, 9)
    h.flows("priority=10,tun_id=5010 actions=output:c", "priority=10,tun_id=0 actions=output:d")
    h.send("vx1", h.udp("a", ip(2)))
    assert set(h.got()) == {"c"}, "frames from the VNI 5010 tunnel"
    h.send("a", h.udp("a", ip(2)))
    assert set(h.got()) == {"d"}, "frames from a port without a tunnel have tun_id 0"


def nd_frame(
    kind: str, target: str, option_mac: str | None, src_mac: int = 0x020000000001
) -> bytes:
    """A Neighbour Solicitation ("ns") or Advertisement ("na") from ``src_mac``, built by
    scapy, with a source/target link-layer address option carrying ``option_mac``."""
    from scapy.layers.inet6 import (
        ICMPv6ND_NA,
        ICMPv6ND_NS,
        ICMPv6NDOptDstLLAddr,
        ICMPv6NDOptSrcLLAddr,
        IPv6,
    )
    from scapy.layers.l2 import Ether

    mac = ":".join(f"{b:02x}" for b in src_mac.to_bytes(6, "big"))
    packet = Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src="2001:db8::1", dst="ff02::1")
    if kind == "ns":
        packet /= ICMPv6ND_NS(tgt=target)
        if option_mac:
            packet /= ICMPv6NDOptSrcLLAddr(lladdr=option_mac)
    else:
        packet /= ICMPv6ND_NA(tgt=target, R=0, S=0, O=1)
        if option_mac:
            packet /= ICMPv6NDOptDstLLAddr(lladdr=option_mac)
    return bytes(packet)


OWN = "02:00:00:00:00:01"


@pytest.mark.parametrize(
    ("frame", "verdict"),
    [
        (lambda: nd_frame("na", "2001:db8::1", OWN), None),
        (lambda: nd_frame("na", "2001:db8::1", None), None),
        (lambda: nd_frame("na", "fe80::1", OWN), None),  # link-local, as for sources
        (lambda: nd_frame("na", "2001:db8::2", OWN), "port-security-nd"),  # another's address
        (lambda: nd_frame("na", "2001:db8::1", "02:00:00:00:00:77"), "port-security-nd"),
        (lambda: nd_frame("ns", "2001:db8::2", OWN), None),  # asking is fine
        (lambda: nd_frame("ns", "2001:db8::2", "02:00:00:00:00:77"), "port-security-nd"),
        (lambda: nd_frame("na", "2001:db8::1", OWN)[:-7] + b"\x00" * 7, "port-security-nd"),
        (lambda: nd_frame("na", "2001:db8::1", OWN)[:70], "port-security-nd"),  # cut short
    ],
    ids=[
        "own",
        "no-option",
        "link-local",
        "other-target",
        "other-tll",
        "ns",
        "other-sll",
        "zero-length-option",
        "truncated",
    ],
)
def test_neighbour_discovery_must_not_claim_another_address(frame: Any, verdict: str) -> None:
    security = parse_port_security([f"{OWN} 2001:db8::1"], "a")
    assert nd_violation(security, frame()) == verdict
    assert nd_violation(parse_port_security([OWN], "a"), frame()) is None  # MAC only


def test_fragmented_or_tagged_neighbour_discovery_is_still_checked() -> None:
    from scapy.layers.inet6 import ICMPv6ND_NA, IPv6, IPv6ExtHdrFragment
    from scapy.layers.l2 import Dot1Q, Ether

    security = parse_port_security([f"{OWN} 2001:db8::1"], "a")
    tagged = nd_frame("na", "2001:db8::2", OWN)
    tagged = tagged[:12] + b"\x81\x00\x00\x0a" + tagged[12:]
    assert nd_violation(security, tagged) == "port-security-nd"
    head = Ether(src=OWN) / Dot1Q(vlan=10) / IPv6(src="fe80::1", dst="ff02::1")
    first = head / IPv6ExtHdrFragment(offset=0, m=1) / ICMPv6ND_NA(tgt="fe80::1")
    assert nd_violation(security, bytes(first)) == "port-security-nd"  # RFC 6980
    later = head / IPv6ExtHdrFragment(offset=8, nh=58) / (b"\x88" * 16)
    assert nd_violation(security, bytes(later)) is None  # no ICMPv6 header to check


def test_spoofed_advertisements_are_dropped_even_after_a_cached_honest_one() -> None:
    h = FlowHarness()
    with_security(h, "a", [f"{OWN} 2001:db8::1"])
    honest, spoofed = nd_frame("na", "2001:db8::1", OWN), nd_frame("na", "2001:db8::2", OWN)
    for _ in range(2):
        h.send("a", honest)
        h.send("a", spoofed)  # same addresses and ICMPv6 type: the same cache key
    assert {k: len(v) for k, v in h.got().items()} == {"b": 2, "c": 2, "d": 2}
    assert h.dp.bridges["br0"].normal.drops["port-security-nd"] == 2
    assert h.dp.trace("br0", spoofed, "a")["drop_reason"] == "port-security-nd"


def test_statistics_of_chosen_rules_only() -> None:
    """dump-flows of a few rules asks for their counters (and the implicit rule's)."""
    h = FlowHarness()
    first, second = h.flows(
        "priority=10,udp,tp_dst=1 actions=output:b", "priority=10,udp,tp_dst=2 actions=output:c"
    )
    for _ in range(2):
        h.send("a", h.udp("a", ip(2), dport=1))
    chosen = h.dp.flow_statistics("br0", {first.uuid, uuid.uuid4()})
    assert {s["uuid"] for s in chosen} == {str(first.uuid), None}, "a gone UUID is skipped"
    assert next(s for s in chosen if s["uuid"] == str(first.uuid))["n_packets"] == 2
    every = h.dp.flow_statistics("br0")
    assert {s["uuid"] for s in every} == {str(first.uuid), str(second.uuid), None}
