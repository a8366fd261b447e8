"""sFlow, NetFlow and IPFIX with real traffic: a switch samples and accounts pings
between two namespaces; collectors on loopback decode what it exports (sFlow with a
decoder written from the specification, NetFlow v5 and IPFIX with scapy) and find the
flows really sent."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from scapy.layers.netflow import NetflowHeader, NetflowRecordV5

from ovs_runtime.ofproto import flow_key as fk
from tests.daemon_process import DaemonProcess
from tests.flow_collectors import collector_socket
from tests.integration.switch_fixtures import apply_bridge
from tests.netns_lab import NetnsLab
from tests.sflow_decoder import decode
from tests.unit.test_ipfix_export import decode as decode_ipfix
from tests.unit.test_ipfix_export import number

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")
PINGS = 1000


def collector() -> socket.socket:
    return collector_socket(0.5)


def drain(sock: socket.socket, seconds: float) -> list[bytes]:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(sock.recv(65535))
        except TimeoutError:
            continue
    return out


def test_sflow_and_netflow_report_the_traffic_really_sent(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    h1 = lab.add_host("h1", "198.51.100.1")
    h2 = lab.add_host("h2", "198.51.100.2")
    apply_bridge(switch, tmp_path, "br0", {h1.switch_port: {}, h2.switch_port: {}})
    sflow_sock, netflow_sock = collector(), collector()
    try:
        made = switch.ovsr(
            *("--", "--id=@s", "create", "sFlow"),
            f'targets="127.0.0.1:{sflow_sock.getsockname()[1]}"',
            *("sampling=10", "polling=1", "header=128", "agent=127.0.0.1"),
            *("--", "set", "Bridge", "br0", "sflow=@s"),
            *("--", "--id=@n", "create", "NetFlow"),
            f'targets="127.0.0.1:{netflow_sock.getsockname()[1]}"',
            "active_timeout=2",
            *("--", "set", "Bridge", "br0", "netflow=@n"),
        )
        assert made.returncode == 0, made.stderr
        ping = lab.run(
            "h1", "ping", "-q", "-c", str(PINGS), "-i", "0.002", "198.51.100.2", timeout=60
        )
        assert f"{PINGS} received" in ping.stdout, ping.stdout
        sflow_data = drain(sflow_sock, 3.0)
        netflow_data = drain(netflow_sock, 3.0)
    finally:
        sflow_sock.close()
        netflow_sock.close()

    # sFlow: about one in ten of the 2,000 frames, with their real headers.
    datagrams = [decode(d) for d in sflow_data]
    assert all(d["agent"] == "127.0.0.1" for d in datagrams)
    samples = [s for d in datagrams for s in d["flow_samples"]]
    icmp = []
    for sample in samples:
        key = fk.extract(sample["records"][0]["header"], 0)
        if key[fk.DL_TYPE] == fk.ETH_IP and key[fk.NW_PROTO] == 1:
            icmp.append((key[fk.NW_SRC], key[fk.NW_DST]))
            assert sample["sampling_rate"] == 10
    requests = icmp.count((0xC6336401, 0xC6336402))
    replies = icmp.count((0xC6336402, 0xC6336401))
    print(f"sFlow: {len(samples)} flow samples, {requests} requests and {replies} replies")
    assert 100 <= requests + replies <= 320, (requests, replies)  # expected about 200
    assert requests > 30 and replies > 30
    counters = [r for d in datagrams for s in d["counter_samples"] for r in s["records"]]
    assert any(c["ifInUcastPkts"] >= PINGS for c in counters), "port counters were polled"

    # NetFlow: the echo requests as one flow from h1 to h2, every packet counted.
    records = [
        r
        for d in netflow_data
        for r in NetflowHeader(d).iterpayloads()
        if isinstance(r, NetflowRecordV5)
    ]
    sent = sum(
        r.dpkts for r in records if (r.src, r.dst, r.prot) == ("198.51.100.1", "198.51.100.2", 1)
    )
    back = sum(
        r.dpkts for r in records if (r.src, r.dst, r.prot) == ("198.51.100.2", "198.51.100.1", 1)
    )
    octets = sum(
        r.dOctets for r in records if (r.src, r.dst, r.prot) == ("198.51.100.1", "198.51.100.2", 1)
    )
    print(f"NetFlow: {len(records)} records; h1->h2 {sent} packets {octets} bytes, h2->h1 {back}")
    assert sent == PINGS and back == PINGS, (sent, back)
    assert octets == PINGS * 98  # 14 + 20 + 8 + 56 bytes per echo request
    shown = json.loads(switch.ovsr("--format", "json", "dpif-show").stdout)["bridges"]["br0"]
    assert (
        shown["sflow"]["flow_samples"] >= len(samples) and shown["netflow"]["records_exported"] >= 2
    )


def ipfix_pings(switch: DaemonProcess, lab: NetnsLab, *command: str) -> None:
    """Configure br0's IPFIX with ``command``, and ping h2 from h1."""
    made = switch.ovsr(*command)
    assert made.returncode == 0, made.stderr
    ping = lab.run("h1", "ping", "-q", "-c", str(PINGS), "-i", "0.002", "198.51.100.2", timeout=60)
    assert f"{PINGS} received" in ping.stdout, ping.stdout


def test_ipfix_reports_the_traffic_really_sent(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    h1 = lab.add_host("h1", "198.51.100.1")
    h2 = lab.add_host("h2", "198.51.100.2")
    apply_bridge(switch, tmp_path, "br0", {h1.switch_port: {}, h2.switch_port: {}})
    sampled, cached = collector(), collector()
    try:
        # 1 in 10, no cache (OVS's default): a record per sampled packet.
        target = f'targets="127.0.0.1:{sampled.getsockname()[1]}"'
        create = ("--", "--id=@i", "create", "IPFIX", target, "sampling=10")
        ids = ("obs_domain_id=7", "obs_point_id=3")
        ipfix_pings(switch, lab, *create, *ids, "--", "set", "Bridge", "br0", "ipfix=@i")
        # The same row changed to every packet, cached 2 s, to the other collector: the
        # flows' records add up to exactly what was sent.
        target = f'targets="127.0.0.1:{cached.getsockname()[1]}"'
        cache = ("cache_active_timeout=2", "cache_max_flows=64")
        # (--no-wait: no next_cfg bump, so only the IPFIX change itself can wake the daemon)
        ipfix_pings(switch, lab, "--no-wait", "set", "IPFIX", "br0", target, "sampling=1", *cache)
        time.sleep(1)
        shown = json.loads(switch.ovsr("--format", "json", "dpif-show").stdout)
        switch.ovsr("clear", "Bridge", "br0", "ipfix")  # sends what the cache still holds
        sampled_data = drain(sampled, 1.0)
        cached_data = drain(cached, 3.0)
    finally:
        sampled.close()
        cached.close()

    icmp = ("198.51.100.1", "198.51.100.2", 1)
    records = [r for r in decode_ipfix(sampled_data) if hasattr(r, "IPV4_SRC_ADDR")]
    requests = [
        r for r in records if (r.IPV4_SRC_ADDR, r.IPV4_DST_ADDR, number(r.PROTOCOL)) == icmp
    ]
    print(f"IPFIX 1 in 10: {len(records)} IPv4 records, {len(requests)} of them echo requests")
    assert 100 <= len(records) <= 320, len(records)  # 2,000 frames at 1 in 10: about 200
    assert len(requests) > 30
    r = requests[0]
    assert number(r.ICMP_TYPE) == 8 << 8, "icmpTypeCodeIPv4: echo request, code 0"
    assert (number(r.IN_PKTS), number(r.layer2OctetDeltaCount)) == (1, 98)
    assert number(r.observationPointId) == 3 and number(r.SAMPLING_INTERVAL) == 10
    numbers = json.loads(
        switch.ovsr("--format", "json", "--columns=name,ofport", "list", "Interface").stdout
    )
    ports = {row["name"]: row["ofport"][0] for row in numbers}
    assert (number(r.INPUT_SNMP), number(r.OUTPUT_SNMP)) == (
        ports[h1.switch_port],
        ports[h2.switch_port],
    )
    assert {NetflowHeader(d).ObservationDomainID for d in sampled_data} == {7}

    totals: dict[tuple[str, str, int], int] = {}
    for rec in decode_ipfix(cached_data):
        if hasattr(rec, "IPV4_SRC_ADDR"):
            flow = (rec.IPV4_SRC_ADDR, rec.IPV4_DST_ADDR, number(rec.PROTOCOL))
            totals[flow] = totals.get(flow, 0) + number(rec.IN_PKTS)
    print(f"IPFIX cached: {totals}")
    assert totals[icmp] == PINGS and totals[("198.51.100.2", "198.51.100.1", 1)] == PINGS
    ipfix_shown = shown["bridges"]["br0"]["ipfix"]
    assert ipfix_shown["cache_max_flows"] == 64 and ipfix_shown["samples"] >= 2 * PINGS


def test_bad_collectors_are_refused(switch: DaemonProcess, lab: NetnsLab, tmp_path: Path) -> None:
    h1 = lab.add_host("h1", "198.51.100.1")
    apply_bridge(switch, tmp_path, "br0", {h1.switch_port: {}})
    for table, extra in (("sFlow", ()), ("NetFlow", ()), ("IPFIX", ())):
        proc = switch.ovsr(
            *("--", "--id=@x", "create", table, 'targets="collector.example:6343"', *extra),
            *("--", "set", "Bridge", "br0", f"{table.lower()}=@x"),
        )
        assert proc.returncode == 1 and "is not IP:PORT" in proc.stderr, proc.stderr
    proc = switch.ovsr("--", "--id=@x", "create", "sFlow", 'targets="127.0.0.1:6343"', "sampling=0")
    assert proc.returncode == 1 and "sampling" in proc.stderr, proc.stderr
    listed = json.loads(switch.ovsr("--format", "json", "list", "Bridge", "br0").stdout)[0]
    assert listed["sflow"] == [] and listed["netflow"] == [] and listed["ipfix"] == []
