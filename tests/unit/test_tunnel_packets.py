"""Tunnel headers, tunnel options and software offload completion, without root."""

from __future__ import annotations

import errno
import os
import socket
import struct

import pytest

from ovs_runtime.bridge.tunnel_config import TunnelConfigError, parse_tunnel
from ovs_runtime.datapath import vnet_header
from ovs_runtime.netdev.tunnel import TunnelEndpoints
from ovs_runtime.ofproto.normal import NormalBridge
from ovs_runtime.ofproto.vlan import PortVlan
from ovs_runtime.packet.ethernet import parse_l2
from ovs_runtime.packet.offload import complete_frame, ones_complement_sum, segment_tcp
from ovs_runtime.packet.tunnel_header import BadTunnelPacket, decapsulate, header_for

INNER = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + b"\x45" + b"\x00" * 45


@pytest.mark.parametrize("kind", ["vxlan", "geneve"])
def test_encapsulation_round_trips(kind: str) -> None:
    assert decapsulate(kind, header_for(kind, 5010) + INNER) == (5010, INNER)


def test_geneve_options_are_skipped_and_critical_ones_refused() -> None:
    options = b"\x01\x02\x03\x04" * 2
    header = bytes([2, 0]) + struct.pack("!HI", 0x6558, 7 << 8)
    assert decapsulate("geneve", header + options + INNER) == (7, INNER)
    critical = bytes([2, 0x40]) + struct.pack("!HI", 0x6558, 7 << 8)
    with pytest.raises(BadTunnelPacket, match="critical"):
        decapsulate("geneve", critical + options + INNER)


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        ("vxlan", b"", "truncated"),
        ("vxlan", header_for("vxlan", 1) + b"\x00" * 5, "truncated"),
        ("vxlan", b"\x00" * 8 + INNER, "bad-vxlan-flags"),
        ("geneve", b"\x40\x00\x65\x58" + b"\x00" * 4 + INNER, "bad-geneve-version"),
        ("geneve", b"\x00\x00\x08\x00" + b"\x00" * 4 + INNER, "geneve-not-ethernet"),
        ("geneve", b"\x3f\x00\x65\x58" + b"\x00" * 4 + INNER, "truncated"),
    ],
)
def test_malformed_tunnel_packets_name_their_fault(kind: str, payload: bytes, reason: str) -> None:
    with pytest.raises(BadTunnelPacket) as info:
        decapsulate(kind, payload)
    assert info.value.args[0] == reason


def test_tunnel_options_parse_like_ovs() -> None:
    config = parse_tunnel("vx1", "vxlan", {"remote_ip": "203.0.113.2", "key": "5010"})
    assert (config.vni, config.dst_port, config.ttl, config.tos) == (5010, 4789, 64, 0)
    assert parse_tunnel("g", "geneve", {"remote_ip": "2001:db8::1"}).dst_port == 6081
    assert parse_tunnel("v", "vxlan", {"remote_ip": "203.0.113.2", "tos": "inherit"}).tos is None
    flow = parse_tunnel("vf", "vxlan", {"remote_ip": "203.0.113.2", "key": "flow"})
    assert flow.vni is None, "key=flow: the VNI comes from set_tunnel"
    anywhere = parse_tunnel("vr", "vxlan", {"remote_ip": "flow", "key": "7"})
    assert anywhere.remote_ip is None, "remote_ip=flow: the remote comes from tun_dst"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "remote_ip is required"),
        ({"remote_ip": "example"}, "not an IPv4 or IPv6 address"),
        ({"remote_ip": "203.0.113.2", "key": "x"}, "expected 0 to 16777215"),
        ({"remote_ip": "203.0.113.2", "dst_port": "0"}, "expected 1 to 65535"),
        ({"remote_ip": "203.0.113.2", "ttl": "300"}, "expected 1 to 255"),
        ({"remote_ip": "203.0.113.2", "in_key": "1", "out_key": "2"}, "different in_key"),
        ({"remote_ip": "203.0.113.2", "peer": "x"}, "unknown option"),
    ],
)
def test_bad_tunnel_options_name_the_option(options: dict[str, str], message: str) -> None:
    with pytest.raises(TunnelConfigError, match=message):
        parse_tunnel("vx1", "vxlan", options)


def tcp_super_frame(payload_len: int) -> bytes:
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    tcp = struct.pack("!HHIIBBHHH", 1234, 5201, 1000, 0, 5 << 4, 0x19, 500, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40 + payload_len,
        77,
        0x4000,
        64,
        6,
        0,
        bytes([198, 51, 100, 1]),
        bytes([198, 51, 100, 2]),
    )
    return eth + ip + tcp + bytes(i % 251 for i in range(payload_len))


def tcp_checksum_ok(segment: bytes) -> bool:
    length = len(segment) - 34
    pseudo = segment[26:34] + struct.pack("!xBH", 6, length)
    return ones_complement_sum(segment[34:], ones_complement_sum(pseudo)) == 0xFFFF


def test_tcp_super_frames_become_valid_segments() -> None:
    frame = tcp_super_frame(5000)
    segments = segment_tcp(frame, 1400)
    assert [len(s) for s in segments] == [1454, 1454, 1454, 854]
    assert b"".join(s[54:] for s in segments) == frame[54:]
    for i, seg in enumerate(segments):
        assert ones_complement_sum(seg[14:34]) == 0xFFFF  # IPv4 header checksum
        assert tcp_checksum_ok(seg)
        assert struct.unpack_from("!I", seg, 38)[0] == 1000 + i * 1400
        fin_psh = seg[47] & 0x09
        assert fin_psh == (0x09 if i == len(segments) - 1 else 0)


def test_a_partial_checksum_is_completed() -> None:
    frame = bytearray(tcp_super_frame(100))
    length = len(frame) - 34
    pseudo = ones_complement_sum(frame[26:34] + struct.pack("!xBH", 6, length))
    struct.pack_into("=H", frame, 50, pseudo)  # what the kernel leaves: the pseudo sum
    header = struct.pack("<BBHHHH", vnet_header.FLAG_NEEDS_CSUM, 0, 0, 0, 34, 16)
    (done,) = complete_frame(header, bytes(frame))
    assert tcp_checksum_ok(done)
    assert complete_frame(vnet_header.EMPTY, bytes(frame)) == [bytes(frame)]


def test_split_horizon_keeps_mesh_frames_out_of_the_mesh() -> None:
    bridge = NormalBridge("br0")
    access = PortVlan.from_config(None, 10, ())
    bridge.set_port(1, access)
    for tunnel in (2, 3):
        bridge.set_port(tunnel, access, mesh=True)
    broadcast = parse_l2(b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x09" + b"\x08\x06" + bytes(46))
    _, from_tunnel = bridge.decide(2, broadcast, 0.0)
    assert [port for port, _ in from_tunnel] == [1]
    _, from_vm = bridge.decide(1, broadcast, 0.0)
    assert [port for port, _ in from_vm] == [2, 3]


class RecordingStore:
    """Stands in for systemd's fd store: what was kept, and what a restart hands back."""

    def __init__(self) -> None:
        self.kept: dict[str, int] = {}
        self.available: dict[str, int] = {}
        self.forgotten: list[str] = []

    def keep(self, name: str, fd: int) -> None:
        self.kept[name] = os.dup(fd)  # systemd holds its own copy

    def take(self, name: str) -> int | None:
        return self.available.pop(name, None)

    def forget(self, name: str) -> None:
        self.forgotten.append(name)


def test_tunnel_sockets_survive_a_restart_through_the_fd_store() -> None:
    config = parse_tunnel(
        "vx1", "vxlan", {"remote_ip": "127.0.0.2", "local_ip": "127.0.0.1", "dst_port": "47891"}
    )
    store = RecordingStore()
    first = TunnelEndpoints(store).port("vx1", config)
    name = "udp.vxlan.127.0.0.1.47891"
    assert list(store.kept) == [name]
    # A datagram that arrives while the daemon restarts waits in the kept socket.
    first.close()
    first.endpoint.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind(("127.0.0.2", 0))
        sender.sendto(header_for("vxlan", 0) + INNER, ("127.0.0.1", 47891))
    store.available = dict(store.kept)
    endpoints = TunnelEndpoints(store)
    again = endpoints.port("vx1", config)
    assert again.endpoint.inherited and again.endpoint.sock.getsockname() == ("127.0.0.1", 47891)
    assert again.endpoint.pump() == 1 and again.receive(8)[0][1] == INNER
    endpoints.forget(again.endpoint)
    assert store.forgotten == [name]
    again.close()
    again.endpoint.close()


def test_the_ingress_policer_admits_rate_plus_burst() -> None:
    from ovs_runtime.datapath.policing import Policer, policer_for

    policer = Policer(rate_kbit=1000, burst_kbit=100)  # 1 Mbit/s, 100 kbit burst
    frame = (vnet_header.EMPTY, bytes(1250))  # 10 kbit each
    assert len(policer.admit([frame] * 20, now=10.0)) == 10  # the burst
    assert len(policer.admit([frame] * 20, now=10.05)) == 5  # 50 ms at 1 Mbit/s
    assert policer.dropped == 25
    assert policer_for(0, 0, policer) is None
    assert policer_for(1000, 100, policer) is policer
    assert policer_for(2000, 0, policer).burst_kbit == 8000  # type: ignore[union-attr]


def gso_super_frame(payload_len: int, gso_size: int) -> tuple[bytes, bytes]:
    """A TCP super-frame as a veth hands it over: virtio-net header (GSO, partial
    checksum) and the frame, its checksum field holding the pseudo-header sum."""
    frame = bytearray(tcp_super_frame(payload_len))
    length = len(frame) - 34
    struct.pack_into(
        "=H", frame, 50, ones_complement_sum(frame[26:34] + struct.pack("!xBH", 6, length))
    )
    header = struct.pack("<BBHHHH", vnet_header.FLAG_NEEDS_CSUM, 1, 54, gso_size, 34, 16)
    return header, bytes(frame)


class CountingSocket:
    """A sending socket, counting the system calls the tunnel port makes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls: list[str] = []
        self.refuse: int | None = None  # an errno sendmsg fails with

    def sendmsg(self, *args: object) -> int:
        self.calls.append("sendmsg")
        if self.refuse is not None:
            raise OSError(self.refuse, os.strerror(self.refuse))
        return self.sock.sendmsg(*args)  # type: ignore[arg-type]

    def sendto(self, *args: object) -> int:
        self.calls.append("sendto")
        return self.sock.sendto(*args)  # type: ignore[call-overload]

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


@pytest.mark.parametrize(
    ("payload", "gso_size", "refuse", "calls"),
    [
        (5000, 1400, None, ["sendmsg"]),
        # 62 segments of 1,062 bytes: 61 fit one call under 65,507 bytes; the last
        # goes alone.
        (62000, 1000, None, ["sendmsg", "sendto"]),
        # The kernel refuses UDP GSO (a segment too big for the path gives EINVAL):
        # one by one, counted once.
        (5000, 1400, errno.EINVAL, ["sendmsg"] + ["sendto"] * 4),
    ],
    ids=["one-call", "two-calls", "refused"],
)
def test_segments_of_a_super_frame_leave_with_udp_gso(
    monkeypatch: pytest.MonkeyPatch,
    payload: int,
    gso_size: int,
    refuse: int | None,
    calls: list[str],
) -> None:
    # Python segmentation here (the kernel's is tested as root, with the same bytes);
    # what is under test is the UDP GSO send: as few system calls as it allows,
    # datagrams and counters as if sent one by one.
    config = parse_tunnel(
        "vx1", "vxlan", {"remote_ip": "127.0.0.2", "local_ip": "127.0.0.1", "dst_port": "47893"}
    )
    port = TunnelEndpoints().port("vx1", config)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        receiver.bind(("127.0.0.2", 47893))
        receiver.settimeout(2)
        if not port.endpoint.gso:
            pytest.skip("this kernel has no UDP GSO")
        header, frame = gso_super_frame(payload, gso_size)
        # Count the calls on the socket this flow is sent from.
        counting = CountingSocket(port.endpoint.sender(frame))
        counting.refuse = refuse
        port.endpoint.senders = [counting] * len(port.endpoint.senders)  # type: ignore[list-item]
        port.send(header, frame)
        expected = segment_tcp(frame, gso_size)
        received = [receiver.recv(65535) for _ in expected]
        assert received == [header_for("vxlan", 0) + segment for segment in expected]
        assert all(tcp_checksum_ok(d[8:]) for d in received)
        assert counting.calls == calls
        assert port.stats.tx_packets == len(expected)
        assert port.stats.tx_bytes == sum(map(len, expected))
        assert port.stats.tx_errors == 0 and port.stats.tx_dropped == 0
    finally:
        receiver.close()
        port.close()
        port.endpoint.senders = [  # the real sockets back, to be closed with the endpoint
            s.sock if isinstance(s, CountingSocket) else s  # type: ignore[misc]
            for s in port.endpoint.senders
        ]
        port.endpoint.close()


def test_without_a_kernel_segmenter_python_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    from ovs_runtime.netdev import kernel_gso

    def refused() -> kernel_gso.KernelSegmenter:
        raise NetlinkError(1, "Operation not permitted")

    monkeypatch.setattr(kernel_gso, "_shared", None)
    monkeypatch.setattr(kernel_gso, "_unavailable", False)
    monkeypatch.setattr(kernel_gso, "KernelSegmenter", refused)
    header, frame = gso_super_frame(5000, 1400)
    assert kernel_gso.complete(header, frame) == segment_tcp(frame, 1400)
    assert kernel_gso.shared_segmenter() is None and kernel_gso._unavailable
