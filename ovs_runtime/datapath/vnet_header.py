"""``struct virtio_net_hdr``: checksum and segmentation offload state of a frame.

veth and TAP hand us frames whose checksum is only partial (``NEEDS_CSUM``) and TCP
super-frames of up to 64 KiB (GSO). With ``PACKET_VNET_HDR`` on AF_PACKET sockets and
``IFF_VNET_HDR`` on TAP devices, the kernel gives us this header with each frame and
accepts it back on transmit, so the *output* device finishes the checksum and the
segmentation: TCP works with offloads left on, and at full size. When we push or pop an
802.1Q tag, the offsets in the header move by 4 bytes, which ``shifted`` applies.
"""

from __future__ import annotations

import struct

SIZE = 10
FLAG_NEEDS_CSUM = 1
GSO_NONE = 0
EMPTY = bytes(SIZE)
_FORMAT = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset


def shifted(header: bytes, delta: int) -> bytes:
    """The header for the same frame with ``delta`` bytes inserted before the L3 header."""
    if header == EMPTY:
        return header
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = _FORMAT.unpack(header)
    if flags & FLAG_NEEDS_CSUM:
        csum_start += delta
    if hdr_len:
        hdr_len += delta
    return _FORMAT.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)
