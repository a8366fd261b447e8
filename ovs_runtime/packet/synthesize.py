"""Building a frame from a flow description, for ``ovsr trace`` and tests.

``build_frame`` takes field values by flow-key position (see ``ofproto.flow_key``) and
returns an Ethernet frame (802.1Q-tagged if ``vlan_tci`` says so) carrying IPv4, IPv6
or ARP, with TCP, UDP or ICMP headers, correct checksums and a minimum-size payload.
Fields not given get harmless defaults (TTL 64, zero ports). Parsing the result with
``flow_key.extract`` gives back every field that was given.
"""

from __future__ import annotations

import struct

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.packet.offload import ones_complement_sum


def _checksum(data: bytes, initial: int = 0) -> int:
    total = ones_complement_sum(data, initial)  # native byte order
    return ~total & 0xFFFF


def _store(buf: bytearray, offset: int, value: int) -> None:
    struct.pack_into("=H", buf, offset, value)


def _l4(proto: int, values: dict[int, int], payload: bytes) -> bytes:
    sport, dport = values.get(fk.TP_SRC, 0), values.get(fk.TP_DST, 0)
    if proto == 6:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + payload
    if proto == 17:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if proto in (1, 58):
        return struct.pack("!BBHHH", sport, dport, 0, 0, 1) + payload
    return payload


def _l4_checksum_offset(proto: int) -> int | None:
    return {6: 16, 17: 6, 1: 2, 58: 2}.get(proto)


def build_frame(values: dict[int, int], payload: bytes = b"ovs-runtime trace") -> bytes:
    dst = values.get(fk.DL_DST, 0x020000000002).to_bytes(6, "big")
    src = values.get(fk.DL_SRC, 0x020000000001).to_bytes(6, "big")
    dl_type = values.get(fk.DL_TYPE, 0x88B5)
    tci = values.get(fk.VLAN_TCI, 0)
    header = dst + src
    if tci:
        header += struct.pack("!HH", 0x8100, tci & 0xEFFF)
    header += struct.pack("!H", dl_type)
    proto = values.get(fk.NW_PROTO, 0)
    if dl_type == fk.ETH_IP:
        body = bytearray(_l4(proto, values, payload))
        ip = bytearray(
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                values.get(fk.NW_TOS, 0),
                20 + len(body),
                1,
                0,
                values.get(fk.NW_TTL, 64),
                proto,
                0,
                values.get(fk.NW_SRC, 0).to_bytes(4, "big"),
                values.get(fk.NW_DST, 0).to_bytes(4, "big"),
            )
        )
        _store(ip, 10, _checksum(bytes(ip)))
        where = _l4_checksum_offset(proto)
        if where is not None:
            pseudo = 0
            if proto != 1:
                pseudo = ones_complement_sum(
                    bytes(ip[12:20]) + struct.pack("!BBH", 0, proto, len(body))
                )
            _store(body, where, _checksum(bytes(body), pseudo))
        l3 = bytes(ip) + bytes(body)
    elif dl_type == fk.ETH_IPV6:
        body = bytearray(_l4(proto, values, payload))
        tc = values.get(fk.NW_TOS, 0)
        src6 = values.get(fk.IPV6_SRC, 0).to_bytes(16, "big")
        dst6 = values.get(fk.IPV6_DST, 0).to_bytes(16, "big")
        ip6 = struct.pack(
            "!IHBB", (6 << 28) | (tc << 20), len(body), proto, values.get(fk.NW_TTL, 64)
        )
        where = _l4_checksum_offset(proto)
        if where is not None:
            pseudo = ones_complement_sum(src6 + dst6 + struct.pack("!IxxxB", len(body), proto))
            _store(body, where, _checksum(bytes(body), pseudo))
        l3 = ip6 + src6 + dst6 + bytes(body)
    elif dl_type in (fk.ETH_ARP, fk.ETH_RARP):
        sha = values.get(fk.ARP_SHA, int.from_bytes(src, "big")).to_bytes(6, "big")
        l3 = struct.pack("!HHBBH", 1, 0x0800, 6, 4, values.get(fk.NW_PROTO, 1) or 1)
        l3 += sha + values.get(fk.NW_SRC, 0).to_bytes(4, "big")
        l3 += bytes(6) + values.get(fk.NW_DST, 0).to_bytes(4, "big")
        l3 += payload  # as Ethernet padding, so captures can tell frames apart
    else:
        l3 = payload
    frame = header + l3
    return frame.ljust(60 if not tci else 64, b"\0")
