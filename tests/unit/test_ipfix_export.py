"""IPFIX bridge sampling (no root): messages decoded by scapy's IPFIX layers (an
independent decoder that learns our templates from the wire), records for IPv4, IPv6
and non-IP frames, the cache's active timeout, eviction and forced end, and bad
settings refused. Real UDP to a collector socket on loopback."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.netflow import NetflowDataflowsetV9, NetflowHeader, ipfix_defragment

from ovs_runtime.bridge.flow_export_config import (
    FlowExportError,
    IpfixSpec,
    NetflowSpec,
    SflowSpec,
    ipfix_from_row,
)
from ovs_runtime.cli.inspect_commands import _dpif_lines
from ovs_runtime.db.datum import datum_from_json, default_row
from ovs_runtime.db.schema import load_schema
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.packet import ipfix
from ovs_runtime.packet.synthesize import build_frame
from tests.flow_collectors import burst_then_export, received, udp_frame
from tests.unit.test_switching_memory import MemoryHarness


def decode(messages: list[bytes]) -> list[Any]:
    """Every data record, decoded by scapy from the templates it saw on the wire."""
    packets = [Ether() / IP() / UDP(sport=40000, dport=4739) / NetflowHeader(m) for m in messages]
    with contextlib.redirect_stdout(io.StringIO()):  # scapy prints the fields it learns
        decoded = ipfix_defragment(packets)
    records = []
    for packet in decoded:
        for layer in packet.iterpayloads():
            if isinstance(layer, NetflowDataflowsetV9):
                records.extend(layer.records)
    return records


def number(value: Any) -> int:
    return int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)


def udp(src: int, dst: int, dport: int) -> bytes:
    return udp_frame(src, dst, dport, tos=0xB9)  # DSCP 46 (EF) and ECN 1


def harness(spec: IpfixSpec) -> MemoryHarness:
    h = MemoryHarness()
    h.configure({"a": {}, "b": {}})
    h.send("b", udp(2, 1, 9))  # learn b
    h.dp.configure_flow_export("br0", None, None, spec)
    return h


def test_messages_split_under_the_mtu_and_count_records_in_the_sequence() -> None:
    template, fields = ipfix.IPV4, (7, 1, 2, 0, b"\x02" * 6, b"\x04" * 6, 0x0800, 10)
    l3 = (0xC6336401, 0xC6336402, 17, 0, 4000, 53, 0)
    record = ipfix.encode_record(template, (*fields, *l3, 1000, 2000, 3, 180, 400, 1 / 400, 3))
    messages = ipfix.messages([(template, record)] * 50, 1_800_000_000, 10, 99, True)
    assert all(len(m) <= ipfix.MAX_MESSAGE for m, _count in messages)
    assert sum(count for _m, count in messages) == 50
    headers = [NetflowHeader(m) for m, _count in messages]
    assert [h.flowSequence for h in headers][1] == 10 + messages[0][1]
    assert {(h.version, h.ObservationDomainID, h.ExportTime) for h in headers} == {
        (10, 99, 1_800_000_000)
    }
    records = decode([m for m, _count in messages])
    assert len(records) == 50
    first = records[0]
    assert (first.IPV4_SRC_ADDR, first.IPV4_DST_ADDR, first.L4_DST_PORT) == (
        "198.51.100.1",
        "198.51.100.2",
        53,
    )
    assert number(first.IN_PKTS) == 3 and number(first.layer2OctetDeltaCount) == 180
    assert number(first.observationPointId) == 7 and number(first.flowEndReason) == 3


def test_each_sample_is_a_record_without_a_cache(collector: socket.socket) -> None:
    port = collector.getsockname()[1]
    spec = IpfixSpec((("127.0.0.1", port),), sampling=50, obs_domain_id=5, obs_point_id=9)
    h = harness(spec)
    burst_then_export(h, "a", udp(1, 2, 53), 5000)
    messages = received(collector)
    assert {NetflowHeader(m).ObservationDomainID for m in messages} == {5}
    records = decode(messages)
    to_53 = [r for r in records if r.L4_DST_PORT == 53]
    assert 50 <= len(to_53) <= 160, len(to_53)  # 5,000 packets at 1 in 50: about 100
    r = to_53[0]
    assert (r.IPV4_SRC_ADDR, r.IPV4_DST_ADDR, r.L4_SRC_PORT, number(r.PROTOCOL)) == (
        "198.51.100.1",
        "198.51.100.2",
        4000,
        17,
    )
    assert number(r.TOS) == 0xB9, "the whole TOS byte, ECN bits included"
    assert number(r.observationPointId) == 9
    assert (number(r.INPUT_SNMP), number(r.OUTPUT_SNMP)) == (1, 2), "in a, out the learned b"
    assert r.SRC_MAC == "02:00:00:00:00:01"
    assert all(number(x.IN_PKTS) == 1 for x in to_53)
    assert all(number(x.layer2OctetDeltaCount) == len(udp(1, 2, 53)) for x in to_53)
    assert {number(x.SAMPLING_INTERVAL) for x in to_53} == {50}
    assert {struct.unpack("!d", x.samplingProbability)[0] for x in to_53} == {1 / 50}
    assert {number(x.flowEndReason) for x in to_53} == {ipfix.END_OF_FLOW}
    shown = h.dp.describe()["bridges"]["br0"]["ipfix"]
    assert shown["records_exported"] == len(records) and shown["samples"] == len(records)


def test_ipv6_icmp_and_non_ip_frames_have_their_own_templates(collector: socket.socket) -> None:
    h = harness(IpfixSpec((("127.0.0.1", collector.getsockname()[1]),), sampling=1))
    echo = build_frame(
        {
            fk.DL_SRC: 0x020000000001,
            fk.DL_DST: 0x020000000002,
            fk.DL_TYPE: fk.ETH_IPV6,
            fk.NW_PROTO: 58,
            fk.IPV6_SRC: 0x20010DB8 << 96 | 1,
            fk.IPV6_DST: 0x20010DB8 << 96 | 2,
            fk.TP_SRC: 128,
        }
    )
    other = build_frame({fk.DL_SRC: 0x020000000001, fk.DL_DST: 0x020000000002})  # 0x88b5
    h.send("a", echo)
    h.send("a", other)
    h.now += 2
    h.dp.maintain_flows(h.now)
    records = decode(received(collector))
    v6 = [r for r in records if hasattr(r, "IPV6_SRC_ADDR")]
    assert [(r.IPV6_SRC_ADDR, r.IPV6_DST_ADDR) for r in v6] == [("2001:db8::1", "2001:db8::2")]
    assert number(v6[0].icmpTypeCodeIPv6) == 128 << 8, "echo request, code 0"
    plain = [r for r in records if not hasattr(r, "PROTOCOL")]
    assert [number(r.ethernetType) for r in plain] == [0x88B5]


def test_the_cache_adds_up_a_flow_and_exports_on_timeout_eviction_and_change(
    collector: socket.socket,
) -> None:
    port = collector.getsockname()[1]
    spec = IpfixSpec((("127.0.0.1", port),), sampling=1, cache_active_timeout=5, cache_max_flows=2)
    h = harness(spec)
    agent = h.dp.bridges["br0"].ipfix
    assert agent is not None
    wall = [1_800_000_000.0]
    agent.clock = lambda: wall[0]
    for _ in range(30):
        h.netdevs["a"].inject(udp(1, 2, 53))
    h.dp.run_once()
    wall[0] += 1
    for _ in range(20):
        h.netdevs["a"].inject(udp(1, 2, 54))
    h.dp.run_once()
    h.dp.maintain_flows(h.now)  # nothing old enough yet: the templates alone
    templates_only = received(collector)
    assert templates_only and decode(templates_only) == []
    h.netdevs["a"].inject(udp(1, 2, 55))  # a third flow: the oldest goes out early
    h.dp.run_once()
    wall[0] += 5
    h.now += 2
    h.dp.maintain_flows(h.now)  # 6 s after port 54's first packet: active timeout
    h.dp.configure_flow_export("br0", None, None, None)  # what is left: forced end
    records = {r.L4_DST_PORT: r for r in decode(templates_only + received(collector))}
    got = {p: (number(r.IN_PKTS), number(r.flowEndReason)) for p, r in records.items()}
    assert got == {
        53: (30, ipfix.LACK_OF_RESOURCES),
        54: (20, ipfix.ACTIVE_TIMEOUT),
        55: (1, ipfix.ACTIVE_TIMEOUT),
    }
    first, last = records[53].flowStartMilliseconds, records[53].flowEndMilliseconds
    assert (first, last) == (1_800_000_000_000, 1_800_000_000_000)


def test_input_sampling_off_samples_nothing(collector: socket.socket) -> None:
    spec = IpfixSpec((("127.0.0.1", collector.getsockname()[1]),), 1, input_sampling=False)
    h = harness(spec)
    for _ in range(100):
        h.netdevs["a"].inject(udp(1, 2, 53))
    h.dp.run_once()
    h.now += 2
    h.dp.maintain_flows(h.now)
    assert decode(received(collector)) == []
    assert h.dp.describe()["bridges"]["br0"]["ipfix"]["samples"] == 0


def ipfix_row(**values: Any) -> Any:
    table = load_schema().tables["IPFIX"]
    row = default_row(table)
    for column, value in values.items():
        row[column] = datum_from_json(table.columns[column].type, value)
    return row


def test_settings_are_read_with_ovs_defaults_and_bad_ones_refused() -> None:
    spec = ipfix_from_row(ipfix_row(targets="127.0.0.1:4739"), "IPFIX x")
    assert (spec.sampling, spec.obs_domain_id, spec.cache_active_timeout, spec.caching) == (
        400,
        0,
        0,
        False,
    )
    with pytest.raises(FlowExportError, match="is not IP:PORT"):
        ipfix_from_row(ipfix_row(targets="collector.example:4739"), "IPFIX x")
    bad = ["map", [["enable-input-sampling", "maybe"]]]
    with pytest.raises(FlowExportError, match="enable-input-sampling='maybe' is not true or false"):
        ipfix_from_row(ipfix_row(targets="127.0.0.1:4739", other_config=bad), "IPFIX x")


def test_dpif_show_prints_the_exporters(collector: socket.socket) -> None:
    target = (("127.0.0.1", collector.getsockname()[1]),)
    spec = IpfixSpec(target, sampling=1, cache_active_timeout=30, cache_max_flows=8)
    h = harness(spec)
    h.dp.configure_flow_export("br0", SflowSpec(target), NetflowSpec(target), spec)
    h.send("a", udp(1, 2, 53))
    lines = [line.strip() for line in _dpif_lines(h.dp.describe())]
    ipfix_line = next(line for line in lines if line.startswith("IPFIX:"))
    assert "1 in 1, domain 0 point 0, cache 30 s/8 flows, samples:1 records:0 cached:1" in (
        ipfix_line
    )
    assert any(line.startswith("sFlow: to 127.0.0.1:") for line in lines)
    assert any(line.startswith("NetFlow: to 127.0.0.1:") for line in lines)


def test_stopping_the_datapath_sends_what_the_cache_holds(collector: socket.socket) -> None:
    port = collector.getsockname()[1]
    spec = IpfixSpec(
        (("127.0.0.1", port),), sampling=1, cache_active_timeout=600, cache_max_flows=8
    )
    h = harness(spec)
    for _ in range(25):
        h.netdevs["a"].inject(udp(1, 2, 53))
    h.dp.run_once()
    h.dp.stop()  # a daemon shutting down: the 25 packets are reported, not dropped
    records = [r for r in decode(received(collector)) if r.L4_DST_PORT == 53]
    assert [(number(r.IN_PKTS), number(r.flowEndReason)) for r in records] == [
        (25, ipfix.FORCED_END)
    ]
