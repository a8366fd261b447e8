"""VXLAN (RFC 7348) and Geneve (RFC 8926) headers: building and checking them.

Both carry a whole Ethernet frame in a UDP datagram after an 8-byte header that holds a
24-bit VNI. ``decapsulate`` returns ``(vni, inner frame)`` or raises ``BadTunnelPacket``
with a reason that becomes a drop counter.
"""

from __future__ import annotations

import struct

VXLAN_FLAG_VNI = 0x08
GENEVE_PROTO_ETHERNET = 0x6558
HEADER_LEN = 8
# What a tunnel adds around the inner frame (which carries its own Ethernet header):
# outer IPv4 20 (IPv6 40) + UDP 8 + tunnel header 8. With the outer Ethernet header
# (14) this is the usual "50 bytes" of VXLAN over IPv4.
OVERHEAD_IPV4 = 20 + 8 + HEADER_LEN
OVERHEAD_IPV6 = 40 + 8 + HEADER_LEN
MIN_INNER = 14

_VXLAN = struct.Struct("!B3xI")
_GENEVE = struct.Struct("!BBHI")


class BadTunnelPacket(ValueError):
    """``args[0]`` is a short reason used as a counter name."""


def vxlan_header(vni: int) -> bytes:
    return _VXLAN.pack(VXLAN_FLAG_VNI, vni << 8)


def geneve_header(vni: int) -> bytes:
    return _GENEVE.pack(0, 0, GENEVE_PROTO_ETHERNET, vni << 8)


def header_for(kind: str, vni: int) -> bytes:
    return vxlan_header(vni) if kind == "vxlan" else geneve_header(vni)


def decapsulate(kind: str, payload: bytes) -> tuple[int, bytes]:
    if len(payload) < HEADER_LEN + MIN_INNER:
        raise BadTunnelPacket("truncated")
    if kind == "vxlan":
        flags, word = _VXLAN.unpack_from(payload)
        if not flags & VXLAN_FLAG_VNI:
            raise BadTunnelPacket("bad-vxlan-flags")
        return word >> 8, payload[HEADER_LEN:]
    first, _flags, proto, word = _GENEVE.unpack_from(payload)
    if first >> 6 != 0:
        raise BadTunnelPacket("bad-geneve-version")
    if proto != GENEVE_PROTO_ETHERNET:
        raise BadTunnelPacket("geneve-not-ethernet")
    start = HEADER_LEN + (first & 0x3F) * 4  # options are skipped: none is critical to us
    if len(payload) < start + MIN_INNER:
        raise BadTunnelPacket("truncated")
    if _flags & 0x40:  # the C bit: a critical option we cannot understand
        raise BadTunnelPacket("geneve-critical-option")
    return word >> 8, payload[start:]
