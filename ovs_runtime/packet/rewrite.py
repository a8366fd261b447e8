"""Rewriting a frame's headers to the values a flow pipeline left them at.

``rewrite(frame, old, new)`` takes the frame, the flow key it was parsed into and the
key as the actions changed it (MACs, VLAN tag, IPv4 addresses, TOS and TTL, IPv6 traffic
class and hop limit) and returns the frame as it must leave. IPv4 header checksums are
recomputed and TCP/UDP checksums are updated incrementally (RFC 1624) when an address
changes, so the receiver accepts the packet. The frame must carry complete checksums
(finish offloads first: ``offload.complete_frame``).
"""

from __future__ import annotations

import struct

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.packet.offload import ones_complement_sum


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def adjust_checksum(checksum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') over each changed 16-bit word."""
    total = ~checksum & 0xFFFF
    for i in range(0, len(old), 2):
        total += (~((old[i] << 8) | old[i + 1]) & 0xFFFF) + ((new[i] << 8) | new[i + 1])
    return ~_fold(total) & 0xFFFF


def rewrite(frame: bytes, old: fk.Key, new: fk.Key) -> bytes:
    buf = bytearray(frame)
    if new[fk.DL_DST] != old[fk.DL_DST]:
        buf[0:6] = new[fk.DL_DST].to_bytes(6, "big")
    if new[fk.DL_SRC] != old[fk.DL_SRC]:
        buf[6:12] = new[fk.DL_SRC].to_bytes(6, "big")
    # The tag is taken from the frame itself, not from ``old``: a decision is reused
    # for every packet its megaflow covers.
    tagged = buf[12:14] == b"\x81\x00"
    new_tci = new[fk.VLAN_TCI]
    if tagged and not new_tci:
        del buf[12:16]
    elif new_tci and not tagged:
        buf[12:12] = struct.pack("!HH", 0x8100, new_tci & 0xEFFF)
    elif new_tci and (buf[14] << 8 | buf[15]) != new_tci & 0xEFFF:
        struct.pack_into("!H", buf, 14, new_tci & 0xEFFF)
    off = 18 if new_tci else 14
    if new[fk.DL_TYPE] == fk.ETH_IP and len(buf) >= off + 20:
        _rewrite_ipv4(buf, off, old, new)
    elif new[fk.DL_TYPE] == fk.ETH_IPV6 and len(buf) >= off + 40:
        if new[fk.NW_TTL] != old[fk.NW_TTL]:
            buf[off + 7] = new[fk.NW_TTL]
        if new[fk.NW_TOS] != old[fk.NW_TOS]:
            tc = new[fk.NW_TOS] | (((buf[off] & 0x0F) << 4 | buf[off + 1] >> 4) & 0x03)
            buf[off] = (buf[off] & 0xF0) | tc >> 4
            buf[off + 1] = (buf[off + 1] & 0x0F) | (tc & 0x0F) << 4
    return bytes(buf)


def _rewrite_ipv4(buf: bytearray, off: int, old: fk.Key, new: fk.Key) -> None:
    changed = False
    if new[fk.NW_TOS] != old[fk.NW_TOS]:
        buf[off + 1] = new[fk.NW_TOS] | (buf[off + 1] & 0x03)
        changed = True
    if new[fk.NW_TTL] != old[fk.NW_TTL]:
        buf[off + 8] = new[fk.NW_TTL]
        changed = True
    old_addresses = bytes(buf[off + 12 : off + 20])
    if new[fk.NW_SRC] != old[fk.NW_SRC]:
        buf[off + 12 : off + 16] = new[fk.NW_SRC].to_bytes(4, "big")
    if new[fk.NW_DST] != old[fk.NW_DST]:
        buf[off + 16 : off + 20] = new[fk.NW_DST].to_bytes(4, "big")
    new_addresses = bytes(buf[off + 12 : off + 20])
    if new_addresses != old_addresses:
        changed = True
        _fix_l4_checksum(buf, off, old_addresses, new_addresses)
    if changed:
        ihl = (buf[off] & 0x0F) * 4
        struct.pack_into("!H", buf, off + 10, 0)
        total = ones_complement_sum(memoryview(buf)[off : off + ihl])  # native order
        struct.pack_into("=H", buf, off + 10, ~total & 0xFFFF)


def _fix_l4_checksum(buf: bytearray, off: int, old: bytes, new: bytes) -> None:
    if (buf[off + 6] & 0x1F) or buf[off + 7]:
        return  # a later fragment: no L4 header here
    l4 = off + (buf[off] & 0x0F) * 4
    proto = buf[off + 9]
    where = {6: 16, 17: 6}.get(proto)
    if where is None or len(buf) < l4 + where + 2:
        return
    (checksum,) = struct.unpack_from("!H", buf, l4 + where)
    if proto == 17 and checksum == 0:
        return  # UDP without a checksum stays without one
    updated = adjust_checksum(checksum, old, new)
    if proto == 17 and updated == 0:
        updated = 0xFFFF
    struct.pack_into("!H", buf, l4 + where, updated)
