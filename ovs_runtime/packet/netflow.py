"""NetFlow version 5 export datagrams (the Cisco format OVS's NetFlow table sends).

A datagram is a 24-byte header and up to 30 48-byte flow records: IPv4 source and
destination, input and output port, packets, octets, first and last seen (ms of
uptime), ports, TCP flags, protocol and TOS.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VERSION = 5
MAX_RECORDS = 30
_HEADER = struct.Struct("!HHIIIIBBH")
_RECORD = struct.Struct("!IIIHHIIIIHHBBBBHHBBH")


@dataclass(frozen=True)
class FlowRecord:
    src: int
    dst: int
    input_port: int
    output_port: int
    packets: int
    octets: int
    first_ms: int
    last_ms: int
    src_port: int
    dst_port: int
    tcp_flags: int
    protocol: int
    tos: int


def datagrams(
    records: list[FlowRecord],
    uptime_ms: int,
    unix_seconds: float,
    sequence: int,
    engine_type: int,
    engine_id: int,
) -> list[tuple[bytes, int]]:
    """(datagram, records in it) for all ``records``, 30 at most per datagram;
    ``sequence`` counts the flows exported before (NetFlow's flow_sequence)."""
    out = []
    secs = int(unix_seconds)
    nsecs = int((unix_seconds - secs) * 1e9)
    for start in range(0, len(records), MAX_RECORDS):
        chunk = records[start : start + MAX_RECORDS]
        parts = [
            _HEADER.pack(
                VERSION,
                len(chunk),
                uptime_ms & 0xFFFFFFFF,
                secs,
                nsecs,
                sequence & 0xFFFFFFFF,
                engine_type & 0xFF,
                engine_id & 0xFF,
                0,
            )
        ]
        for r in chunk:
            parts.append(
                _RECORD.pack(
                    r.src,
                    r.dst,
                    0,  # next hop
                    r.input_port & 0xFFFF,
                    r.output_port & 0xFFFF,
                    min(r.packets, 0xFFFFFFFF),
                    min(r.octets, 0xFFFFFFFF),
                    r.first_ms & 0xFFFFFFFF,
                    r.last_ms & 0xFFFFFFFF,
                    r.src_port,
                    r.dst_port,
                    0,
                    r.tcp_flags,
                    r.protocol,
                    r.tos,
                    0,  # source AS
                    0,  # destination AS
                    0,  # source mask
                    0,  # destination mask
                    0,
                )
            )
        sequence += len(chunk)
        out.append((b"".join(parts), len(chunk)))
    return out
