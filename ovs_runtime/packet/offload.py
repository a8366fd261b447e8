"""Finishing what offloads left undone, for ports that cannot carry offload state.

Frames from veths and TAPs may come with a partial checksum (``VIRTIO_NET_HDR_F_NEEDS_CSUM``:
the checksum field holds only the pseudo-header sum) or as a GSO super-frame of up to
64 KiB that the NIC was to cut into segments. A tunnel sends frames inside UDP, where
nobody will finish them, so ``complete_frame`` does it in software: it fills in the
checksum, or cuts TCP super-frames into ``gso_size`` segments with their own IP and TCP
headers and checksums.
"""

from __future__ import annotations

import struct
import sys

from ovs_runtime.datapath import vnet_header

GSO_TCPV4 = 1
GSO_TCPV6 = 4
GSO_ECN = 0x80
ETH_P_IPV4 = 0x0800
ETH_P_IPV6 = 0x86DD
TCP_FIN_PSH = 0x09
TCP_CWR = 0x80
_HEADER = struct.Struct("<BBHHHH")


class OffloadError(ValueError):
    """A frame whose offload state cannot be completed; dropped and counted."""


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The 16-bit one's complement sum of ``data``, in native byte order (RFC 1071).

    Read as one little- (big-) endian integer, ``data`` is the sum of its 16-bit words
    times powers of 2**16, and 2**16 is 1 modulo 0xFFFF: so the integer modulo 0xFFFF is
    the end-around-carry sum, computed in C rather than word by word (about twice as
    fast on a 1,448-byte segment). Non-zero data sums to 0xFFFF, never 0."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    value = int.from_bytes(data, sys.byteorder)
    total = value % 0xFFFF
    if not total and value:
        total = 0xFFFF
    total += initial
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _store_checksum(buf: bytearray, offset: int, total: int, udp: bool = False) -> None:
    value = ~total & 0xFFFF
    if udp and value == 0:
        value = 0xFFFF
    struct.pack_into("=H", buf, offset, value)


def finish_checksum(frame: bytes, csum_start: int, csum_offset: int) -> bytes:
    end = csum_start + csum_offset + 2
    if csum_start < 14 or end > len(frame):
        raise OffloadError("checksum offsets outside the frame")
    buf = bytearray(frame)
    # The field holds the pseudo-header sum already: summing over it completes it.
    _store_checksum(
        buf, csum_start + csum_offset, ones_complement_sum(memoryview(buf)[csum_start:])
    )
    return bytes(buf)


def _l3_offset(frame: bytes) -> tuple[int, int]:
    offset, ethertype = 12, struct.unpack_from("!H", frame, 12)[0]
    while ethertype in (0x8100, 0x88A8) and len(frame) >= offset + 6:
        offset += 4
        ethertype = struct.unpack_from("!H", frame, offset)[0]
    return offset + 2, ethertype


def _pseudo_sum(frame: bytes, l3: int, ethertype: int, length: int) -> int:
    if ethertype == ETH_P_IPV4:
        return ones_complement_sum(frame[l3 + 12 : l3 + 20] + struct.pack("!xBH", 6, length))
    return ones_complement_sum(frame[l3 + 8 : l3 + 40] + struct.pack("!IxxxB", length, 6))


def tcp_offsets(frame: bytes) -> tuple[int, int, int, int]:
    """(L3 offset, EtherType, L4 offset, payload offset) of a TCP frame;
    ``OffloadError`` if it is not one, or too short for its headers."""
    if len(frame) < 14:
        raise OffloadError("truncated TCP super-frame")
    l3, ethertype = _l3_offset(frame)
    if ethertype == ETH_P_IPV4 and len(frame) >= l3 + 20:
        l4 = l3 + (frame[l3] & 0x0F) * 4
    elif ethertype == ETH_P_IPV6 and len(frame) >= l3 + 40:
        if frame[l3 + 6] != 6:
            raise OffloadError("IPv6 extension headers before TCP")
        l4 = l3 + 40
    elif ethertype in (ETH_P_IPV4, ETH_P_IPV6):
        raise OffloadError("truncated TCP super-frame")
    else:
        raise OffloadError("TCP segmentation of a non-IP frame")
    if len(frame) < l4 + 20:
        raise OffloadError("truncated TCP super-frame")
    payload = l4 + (frame[l4 + 12] >> 4) * 4
    if payload < l4 + 20 or payload > len(frame):
        raise OffloadError("bad TCP header length")
    return l3, ethertype, l4, payload


def tcp_payload_offset(frame: bytes) -> int:
    """Where a TCP frame's payload starts; ``OffloadError`` if it is not TCP."""
    return tcp_offsets(frame)[3]


def segment_tcp(frame: bytes, gso_size: int) -> list[bytes]:
    l3, ethertype, l4, payload_start = tcp_offsets(frame)
    if gso_size <= 0:
        raise OffloadError("truncated TCP super-frame")
    ihl = l4 - l3
    tcp_len = payload_start - l4
    payload = memoryview(frame)[payload_start:]
    seq = struct.unpack_from("!I", frame, l4 + 4)[0]
    flags = frame[l4 + 13]
    ip_id = struct.unpack_from("!H", frame, l3 + 4)[0] if ethertype == ETH_P_IPV4 else 0
    segments = []
    count = max(1, -(-len(payload) // gso_size))
    for i in range(count):
        chunk = payload[i * gso_size : (i + 1) * gso_size]
        buf = bytearray(frame[:payload_start])
        buf += chunk
        l4_len = tcp_len + len(chunk)
        if ethertype == ETH_P_IPV4:
            struct.pack_into("!HH", buf, l3 + 2, ihl + l4_len, (ip_id + i) & 0xFFFF)
            struct.pack_into("!H", buf, l3 + 10, 0)
            _store_checksum(buf, l3 + 10, ones_complement_sum(memoryview(buf)[l3 : l3 + ihl]))
        else:
            struct.pack_into("!H", buf, l3 + 4, l4_len)
        struct.pack_into("!I", buf, l4 + 4, (seq + i * gso_size) & 0xFFFFFFFF)
        segment_flags = flags
        if i < count - 1:
            segment_flags &= ~TCP_FIN_PSH
        if i > 0:
            segment_flags &= ~TCP_CWR
        buf[l4 + 13] = segment_flags
        struct.pack_into("!H", buf, l4 + 16, 0)
        total = _pseudo_sum(bytes(buf), l3, ethertype, l4_len)
        total = ones_complement_sum(memoryview(buf)[l4:], total)
        _store_checksum(buf, l4 + 16, total)
        segments.append(bytes(buf))
    return segments


def complete_frame(header: bytes, frame: bytes) -> list[bytes]:
    """The frame(s) to put on a wire that knows nothing of offloads."""
    if header == vnet_header.EMPTY or len(header) < _HEADER.size:
        return [frame]
    flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = _HEADER.unpack_from(header)
    gso = gso_type & ~GSO_ECN
    if gso in (GSO_TCPV4, GSO_TCPV6):
        return segment_tcp(frame, gso_size)
    if gso != vnet_header.GSO_NONE:
        raise OffloadError(f"GSO type {gso} cannot be segmented in software")
    if flags & vnet_header.FLAG_NEEDS_CSUM:
        return [finish_checksum(frame, csum_start, csum_offset)]
    return [frame]
