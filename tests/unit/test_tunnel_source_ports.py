"""Outer UDP source ports follow the inner flow (RFC 7348 section 5), without root: the
flow hash, and a tunnel endpoint on loopback sending to itself."""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ovs_runtime.bridge.tunnel_config import TunnelConfigError, parse_tunnel
from ovs_runtime.datapath import vnet_header
from ovs_runtime.netdev import tunnel
from ovs_runtime.netdev.tunnel import TunnelEndpoints, source_slot
from ovs_runtime.packet.flow_hash import flow_hash
from ovs_runtime.packet.tunnel_header import decapsulate

REPO = Path(__file__).resolve().parents[2]
MACS = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"


def ipv4(
    proto: int = 17,
    sport: int = 40000,
    dport: int = 9000,
    src: str = "198.51.100.1",
    dst: str = "198.51.100.2",
    *,
    ident: int = 1,
    ttl: int = 64,
    fragment: int = 0,
    payload: bytes = b"payload",
) -> bytes:
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(l4),
        ident,
        fragment,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return MACS + b"\x08\x00" + header + l4


def ipv6(proto: int = 6, sport: int = 40000, dst: str = "2001:db8::2") -> bytes:
    l4 = struct.pack("!HH", sport, 443) + bytes(16)
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(l4),
        proto,
        64,
        socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
        socket.inet_pton(socket.AF_INET6, dst),
    )
    return MACS + b"\x86\xdd" + header + l4


def tagged(frame: bytes, vid: int = 10, tpid: int = 0x8100) -> bytes:
    return frame[:12] + struct.pack("!HH", tpid, vid) + frame[12:]


def test_packets_of_one_flow_hash_alike_whatever_else_differs() -> None:
    first = ipv4(ident=1, ttl=64, payload=b"a")
    assert flow_hash(ipv4(ident=2, ttl=3, payload=b"a much longer payload")) == flow_hash(first)
    # The Ethernet addresses of an IP frame do not matter (a routed flow keeps its path).
    assert flow_hash(b"\x02" * 12 + first[12:]) == flow_hash(first)
    # Tags are skipped: 802.1Q, 802.1ad, and both.
    assert flow_hash(tagged(first)) == flow_hash(first)
    assert flow_hash(tagged(tagged(first, 20), tpid=0x88A8)) == flow_hash(first)


def test_flows_spread() -> None:
    for make in (lambda port: ipv4(sport=port), lambda port: ipv4(proto=6, dport=port)):
        frames = [make(40000 + n) for n in range(256)]
        assert len({flow_hash(f) for f in frames}) == 256
        # 256 flows over 64 sockets, as a uniform random choice spreads them: about 63
        # sockets used, the busiest with about 10 flows (the mean is 4).
        per_slot = Counter(source_slot(f) for f in frames)
        assert len(per_slot) >= 60 and max(per_slot.values()) <= 12, per_slot
    v6 = {flow_hash(ipv6(sport=40000 + n)) for n in range(64)}
    assert len(v6) == 64
    assert flow_hash(ipv6(dst="2001:db8::3")) != flow_hash(ipv6())
    assert flow_hash(ipv4(dst="198.51.100.3")) != flow_hash(ipv4())
    assert flow_hash(ipv4(proto=6)) != flow_hash(ipv4(proto=17))


def test_protocols_without_ports_and_fragments_hash_without_ports() -> None:
    # ICMP: the bytes where ports would be are its type, code and checksum: ignored.
    assert flow_hash(ipv4(proto=1, sport=1)) == flow_hash(ipv4(proto=1, sport=2))
    # Every fragment of a datagram hashes alike: the first (MF set, ports present) and a
    # later one (an offset, payload bytes where the ports were).
    first = ipv4(sport=40000, fragment=0x2000)
    later = ipv4(sport=12345, dport=54321, fragment=185)
    assert flow_hash(first) == flow_hash(later)
    assert flow_hash(first) != flow_hash(ipv4(sport=40000))  # an unfragmented one uses ports
    # IPv6 with a fragment header (next header 44): no ports read.
    assert flow_hash(ipv6(proto=44, sport=1)) == flow_hash(ipv6(proto=44, sport=2))


def test_other_frames_hash_their_ethernet_header() -> None:
    arp = MACS + b"\x08\x06" + bytes(28)
    other_host = b"\x02\x00\x00\x00\x00\x03" + MACS[6:] + b"\x08\x06" + bytes(28)
    assert flow_hash(arp) != flow_hash(other_host)
    assert flow_hash(arp) == flow_hash(arp[:14] + b"\xff" * 28)
    assert flow_hash(MACS + b"\x88\xcc" + bytes(30)) != flow_hash(arp)  # LLDP


def test_truncated_frames_never_raise() -> None:
    for frame in (ipv4(), ipv6(), tagged(tagged(ipv4()))):
        for cut in range(len(frame) + 1):
            assert 0 <= flow_hash(frame[:cut]) < 1 << 32


def test_the_hash_is_the_same_in_another_run() -> None:
    """Python's own ``hash`` of bytes changes with every process: a restart must not
    move every flow to another path."""
    frames = [ipv4(sport=40000 + n) for n in range(8)] + [ipv6(), MACS + b"\x08\x06"]
    here = [flow_hash(f) for f in frames]
    code = (
        "import sys; from ovs_runtime.packet.flow_hash import flow_hash; "
        f"print([flow_hash(f) for f in {frames!r}])"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO))
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert there.stdout.strip() == str(here)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def loopback_tunnel() -> tunnel.TunnelNetdev:
    """A VXLAN port whose remote is its own endpoint: what it sends comes back to the
    endpoint's socket, with the source port it was sent from."""
    port = free_udp_port()
    config = parse_tunnel(
        "vx1",
        "vxlan",
        {"remote_ip": "127.0.0.1", "local_ip": "127.0.0.1", "dst_port": str(port), "key": "7"},
    )
    return TunnelEndpoints().port("vx1", config)


def received_sources(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """(source port, inner frame) of ``count`` datagrams."""
    sock.settimeout(2)
    try:
        out = []
        for _ in range(count):
            payload, address = sock.recvfrom(65535)
            out.append((address[1], decapsulate("vxlan", payload)[1]))
        return out
    finally:
        sock.setblocking(False)


def test_each_flow_leaves_from_one_source_port_and_flows_spread() -> None:
    port = loopback_tunnel()
    endpoint = port.endpoint
    try:
        frames = [ipv4(sport=40000 + n) for n in range(48)]
        for _ in range(3):
            for frame in frames:
                port.send(vnet_header.EMPTY, frame)
        by_flow: dict[bytes, set[int]] = defaultdict(set)
        for source, inner in received_sources(endpoint.sock, 3 * len(frames)):
            by_flow[inner].add(source)
        assert set(by_flow) == set(frames)
        assert all(len(sources) == 1 for sources in by_flow.values()), by_flow
        used = set().union(*by_flow.values())
        own = endpoint.sock.getsockname()[1]
        assert own not in used  # never the endpoint's own (listening) port
        # Flows with one slot share one port; otherwise every slot has its own.
        slots = {source_slot(f) for f in frames}
        assert len(used) == len(slots) >= 24
        assert endpoint.source_ports() == sorted(used)
        assert port.stats.tx_packets == 3 * len(frames) and port.stats.tx_errors == 0
    finally:
        port.close()
        senders = [s for s in endpoint.senders if s is not None]
        endpoint.close()
    assert all(s.fileno() == -1 for s in senders)  # the pool is closed with the endpoint


def test_without_a_sending_socket_the_endpoint_port_is_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = loopback_tunnel()
    endpoint = port.endpoint
    try:

        def out_of_descriptors(family: int) -> socket.socket:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

        monkeypatch.setattr(tunnel, "_udp_socket", out_of_descriptors)
        port.send(vnet_header.EMPTY, ipv4())
        [(source, inner)] = received_sources(endpoint.sock, 1)
        assert inner == ipv4() and source == endpoint.sock.getsockname()[1]
        assert "cannot open a sending socket (Too many open files)" in caplog.text
        assert port.stats.tx_packets == 1
        # Not for ever: once the retry time has come and sockets can be had again, the
        # flow gets its own port.
        monkeypatch.undo()
        port.send(vnet_header.EMPTY, ipv4())
        [(source, _)] = received_sources(endpoint.sock, 1)
        assert source == endpoint.sock.getsockname()[1], "still within the retry time"
        endpoint.sender_retry_at = 0.0
        port.send(vnet_header.EMPTY, ipv4())
        [(source, _)] = received_sources(endpoint.sock, 1)
        assert source != endpoint.sock.getsockname()[1] and endpoint.source_ports() == [source]
    finally:
        port.close()
        endpoint.close()


def test_ipv6_tunnels_get_an_ipv6_endpoint_beside_the_ipv4_one() -> None:
    """Without local_ip, an IPv6 remote gets its own wildcard socket ("::", IPv6 only)
    on the same port as the IPv4 tunnels' one; IPv6 on loopback sends from the pool."""
    port = free_udp_port()
    v4 = parse_tunnel("vx4", "vxlan", {"remote_ip": "127.0.0.1", "dst_port": str(port)})
    v6 = parse_tunnel("vx6", "vxlan", {"remote_ip": "::1", "dst_port": str(port), "key": "7"})
    assert v4.endpoint_key == ("vxlan", "", port) and v6.endpoint_key == ("vxlan", "::", port)
    endpoints = TunnelEndpoints()
    four, six = endpoints.port("vx4", v4), endpoints.port("vx6", v6)
    try:
        assert four.endpoint is not six.endpoint
        assert six.endpoint.sock.family == socket.AF_INET6
        assert six.endpoint.sock.getsockname()[:2] == ("::", port)
        frame = ipv4()
        six.send(vnet_header.EMPTY, frame)
        [(source, inner)] = received_sources(six.endpoint.sock, 1)
        assert inner == frame and source == six.endpoint.source_ports()[0] != port
        assert six.stats.tx_packets == 1 and six.stats.tx_errors == 0
    finally:
        for tunnel_port in (four, six):
            tunnel_port.close()
            tunnel_port.endpoint.close()


def test_local_and_remote_of_different_ip_versions_are_refused() -> None:
    with pytest.raises(TunnelConfigError, match="not the same IP version"):
        parse_tunnel("vx1", "vxlan", {"remote_ip": "2001:db8::2", "local_ip": "203.0.113.1"})
    with pytest.raises(TunnelConfigError, match="not the same IP version"):
        parse_tunnel("vx1", "vxlan", {"remote_ip": "203.0.113.2", "local_ip": "2001:db8::1"})
