"""sFlow and NetFlow export (no root): datagrams decoded by an independent sFlow decoder
and by scapy's NetFlow layers, sampling statistics and flow timeouts on the in-memory
datapath, with real UDP to a collector socket on loopback."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.netflow import NetflowHeader, NetflowHeaderV5, NetflowRecordV5

from ovs_runtime.bridge.flow_export_config import (
    FlowExportError,
    NetflowSpec,
    SflowSpec,
    parse_target,
)
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.packet import netflow, sflow
from tests.flow_collectors import burst_then_export, received, udp_frame
from tests.sflow_decoder import decode
from tests.unit.test_switching_memory import MemoryHarness

udp = udp_frame


def test_sflow_datagram_decodes_per_the_specification() -> None:
    frame = udp(1, 2, 53)
    data = sflow.datagram(
        "198.51.100.250",
        0,
        7,
        1234,
        [
            (1, sflow.FlowSample(3, 400, 8000, 0, 3, 5, len(frame), frame[:128])),
            (2, sflow.CounterSample(3, 10**10, True, 1000, 10, 1, 0, 2000, 20, 0, 0)),
        ],
    )
    got = decode(data)
    assert (got["agent"], got["sequence"], got["uptime_ms"]) == ("198.51.100.250", 7, 1234)
    (flow,) = got["flow_samples"]
    assert (flow["sampling_rate"], flow["sample_pool"], flow["input"], flow["output"]) == (
        400,
        8000,
        3,
        5,
    )
    (record,) = flow["records"]
    assert record["header"] == frame and record["frame_length"] == len(frame) + 4
    (counters,) = got["counter_samples"][0]["records"]
    assert counters["ifInOctets"] == 1000 and counters["ifOutUcastPkts"] == 20
    assert counters["ifStatus"] == 3


def test_netflow_v5_decodes_with_scapy() -> None:
    records = [
        netflow.FlowRecord(0xC6336401, 0xC6336402, 1, 2, 10 + i, 1000, 5, 900, 4000, 53, 0, 17, 0)
        for i in range(35)
    ]
    (first, n1), (second, n2) = netflow.datagrams(records, 1000, 1_800_000_000.5, 100, 1, 2)
    assert (n1, n2) == (30, 5)
    header = NetflowHeader(second)
    assert header.version == 5
    v5 = header[NetflowHeaderV5]
    assert (v5.count, v5.flowSequence, v5.engineType, v5.engineID) == (5, 130, 1, 2)
    flows = [r for r in header.iterpayloads() if isinstance(r, NetflowRecordV5)]
    assert [f.dpkts for f in flows] == [40, 41, 42, 43, 44]
    assert (flows[0].src, flows[0].dst, flows[0].dstport, flows[0].prot) == (
        "198.51.100.1",
        "198.51.100.2",
        53,
        17,
    )


def test_targets_must_be_ip_and_port() -> None:
    assert parse_target("127.0.0.1:6343", "t") == ("127.0.0.1", 6343)
    assert parse_target("[2001:db8::5]:2055", "t") == ("2001:db8::5", 2055)
    for bad in ("collector:6343", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000"):
        with pytest.raises(FlowExportError, match="is not IP:PORT"):
            parse_target(bad, "sFlow x")


def flow_harness() -> MemoryHarness:
    h = MemoryHarness()
    h.configure({"a": {}, "b": {}})
    return h


def test_sflow_samples_about_one_in_n_and_polls_counters(collector: socket.socket) -> None:
    h = flow_harness()
    port = collector.getsockname()[1]
    spec = SflowSpec((("127.0.0.1", port),), sampling=50, polling=1, header=42)
    h.dp.configure_flow_export("br0", spec, None)
    h.send("b", udp(2, 1, 9))  # learn b
    burst_then_export(h, "a", udp(1, 2, 53), 5000)
    datagrams = [decode(d) for d in received(collector)]
    flows = [s for d in datagrams for s in d["flow_samples"]]
    assert 50 <= len(flows) <= 160, len(flows)  # 5001 packets at 1 in 50: about 100
    last = flows[-1]
    assert last["sampling_rate"] == 50 and 4000 <= last["sample_pool"] <= 5001
    sample = next(s for s in flows if s["input"] == 1)
    assert sample["output"] == 2, "sent to b, the learned port"
    header = sample["records"][0]["header"]
    assert len(header) == 42 and fk.extract(header, 0)[fk.NW_DST] == 0xC6336402
    counters = {s["source_id"]: s["records"][0] for d in datagrams for s in d["counter_samples"]}
    assert counters[1]["ifInUcastPkts"] == 5000 and counters[2]["ifOutUcastPkts"] == 5000


def netflow_records(collector: socket.socket) -> list[NetflowRecordV5]:
    """The NetFlow v5 records in every datagram the collector has received."""
    return [
        r
        for d in received(collector)
        for r in NetflowHeader(d).iterpayloads()
        if isinstance(r, NetflowRecordV5)
    ]


def test_netflow_reports_flows_on_active_and_idle_timeouts(collector: socket.socket) -> None:
    h = flow_harness()
    port = collector.getsockname()[1]
    h.dp.configure_flow_export("br0", None, NetflowSpec((("127.0.0.1", port),), active_timeout=5))
    h.send("b", udp(2, 1, 9))
    for _second in range(8):
        for _ in range(10):
            h.netdevs["a"].inject(udp(1, 2, 53))
        h.dp.run_once()
        h.now += 1
        h.dp.maintain_flows(h.now)
    h.now += 20  # idle past the idle timeout
    h.dp.maintain_flows(h.now)
    records = netflow_records(collector)
    to_53 = [r for r in records if r.dstport == 53]
    assert [r.dpkts for r in to_53] == [50, 30], "active timeout at 5 s, the rest when idle"
    assert all(r.src == "198.51.100.1" and r.input == 1 and r.output == 2 for r in to_53)
    assert sum(r.dOctets for r in to_53) == 80 * 60
    assert any(r.dstport == 9 and r.dpkts == 1 for r in records)


def test_netflow_exports_a_flow_whose_output_port_changes_at_once(
    collector: socket.socket,
) -> None:
    """The destination moves to another port (as after a bond failover): the record so
    far, naming the old output port, goes out right away, and the flow starts again
    with the new one, as in OVS."""
    h = MemoryHarness()
    h.configure({"a": {}, "b": {}, "c": {}})
    port = collector.getsockname()[1]
    h.dp.configure_flow_export("br0", None, NetflowSpec((("127.0.0.1", port),), active_timeout=60))
    h.send("b", udp(2, 1, 9))  # host 2 learned behind b
    for _ in range(7):
        h.netdevs["a"].inject(udp(1, 2, 53))
    h.dp.run_once()
    assert received(collector) == []  # nothing due yet
    h.send("c", udp(2, 1, 9))  # host 2 moved behind c
    for _ in range(4):
        h.netdevs["a"].inject(udp(1, 2, 53))
    h.dp.run_once()
    moved = [(r.output, r.dpkts) for r in netflow_records(collector) if r.dstport == 53]
    assert moved == [(2, 7)], moved
    h.now += 20
    h.dp.maintain_flows(h.now)
    rest = [(r.output, r.dpkts) for r in netflow_records(collector) if r.dstport == 53]
    assert rest == [(3, 4)], rest
