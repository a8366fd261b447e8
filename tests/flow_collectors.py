"""Collectors for the flow-export tests: a UDP socket on loopback, what it received,
and the IPv4/UDP frame the tests send through a bridge."""

from __future__ import annotations

import socket
from typing import Any

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.packet.synthesize import build_frame


def collector_socket(timeout: float) -> socket.socket:
    """A UDP socket on 127.0.0.1 (an ephemeral port) with room for bursts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(timeout)
    return sock


def received(sock: socket.socket) -> list[bytes]:
    """Every datagram until one timeout passes without any."""
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except TimeoutError:
            return out


def udp_frame(src: int, dst: int, dport: int, tos: int = 0) -> bytes:
    """UDP from 198.51.100.<src> (MAC 02:00:00:00:00:<src>) port 4000 to <dst>:dport."""
    return build_frame(
        {
            fk.DL_SRC: 0x020000000000 + src,
            fk.DL_DST: 0x020000000000 + dst,
            fk.DL_TYPE: fk.ETH_IP,
            fk.NW_PROTO: 17,
            fk.NW_SRC: 0xC6336400 + src,
            fk.NW_DST: 0xC6336400 + dst,
            fk.NW_TOS: tos,
            fk.TP_SRC: 4000,
            fk.TP_DST: dport,
        }
    )


def burst_then_export(h: Any, port: str, frame: bytes, count: int) -> None:
    """``count`` copies of ``frame`` into ``port`` of an in-memory harness, forwarded,
    then two seconds on and one maintenance pass (which sends what exporters hold)."""
    for _ in range(count):
        h.netdevs[port].inject(frame)
    for _ in range(count // (64 * 64) + 2):  # one pass forwards up to 64 batches of 64
        h.dp.run_once()
    h.now += 2
    h.dp.maintain_flows(h.now)
