"""Ethernet II and IEEE 802.1Q headers.

A frame here is the bytes from the destination MAC onwards (no FCS). ``parse_l2``
returns the fields switching needs and rejects frames that are too short to hold them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

ETH_HLEN = 14
VLAN_HLEN = 4
ETH_MIN_FRAME = 14  # a header with no payload; shorter is a runt
ETH_MAX_FRAME = 65535 + ETH_HLEN + VLAN_HLEN  # GSO super-frames from veth/TAP can be this big
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8
VLAN_TPIDS = (TPID_8021Q, TPID_8021AD, 0x9100)


class MalformedFrame(ValueError):
    """The frame cannot be switched; ``reason`` names the counter it is dropped under."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class L2Header:
    dst: bytes
    src: bytes
    vlan: int | None  # VID of the outer 802.1Q tag, None if untagged
    pcp: int
    ethertype: int  # after the outer tag, if any
    stacked: bool  # a second VLAN tag follows the first


def is_multicast(mac: bytes) -> bool:
    return bool(mac[0] & 1)


def _macs(*values: int) -> frozenset[bytes]:
    return frozenset(value.to_bytes(6, "big") for value in values)


# Destinations a bridge must never forward, the set Open vSwitch's NORMAL drops unless
# the bridge has other_config:forward-bpdu=true: IEEE 802.1D's reserved block
# 01:80:c2:00:00:00-0f (STP, pause, LACP and the other slow protocols, 802.1X, LLDP...),
# Extreme's EDP and EAPS, and Cisco's ISL, CDP/VTP/DTP/PAgP/UDLD, PVST+, Uplink Fast and
# CFM addresses.
RESERVED_DESTINATIONS = _macs(
    *range(0x0180C2000000, 0x0180C2000010),
    0x00E02B000000,
    0x00E02B000004,
    0x00E02B000006,
    0x01000C000000,
    0x01000CCCCCCC,
    0x01000CCCCCCD,
    0x01000CCDCDCD,
    *range(0x01000CCCCCC0, 0x01000CCCCCC8),
)


def parse_l2(frame: bytes) -> L2Header:
    n = len(frame)
    if n < ETH_MIN_FRAME:
        raise MalformedFrame("runt")
    if n > ETH_MAX_FRAME:
        raise MalformedFrame("oversize")
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype in VLAN_TPIDS:
        if n < ETH_HLEN + VLAN_HLEN:
            raise MalformedFrame("truncated-vlan")
        tci = (frame[14] << 8) | frame[15]
        inner = (frame[16] << 8) | frame[17]
        vid = tci & 0x0FFF
        if ethertype != TPID_8021Q:
            raise MalformedFrame("unsupported-tpid")
        return L2Header(frame[0:6], frame[6:12], vid, tci >> 13, inner, inner in VLAN_TPIDS)
    if ethertype < 0x0600 and ethertype > 1500:
        raise MalformedFrame("bad-ethertype")  # neither a length (802.3) nor a type
    return L2Header(frame[0:6], frame[6:12], None, 0, ethertype, False)


def push_vlan(frame: bytes, vid: int, pcp: int = 0) -> bytes:
    return frame[:12] + struct.pack("!HH", TPID_8021Q, (pcp << 13) | vid) + frame[12:]


def pop_vlan(frame: bytes) -> bytes:
    return frame[:12] + frame[16:]


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
