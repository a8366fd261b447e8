"""LACPDUs (IEEE 802.1AX Link Aggregation Control Protocol), built and read.

A LACPDU is a slow-protocol frame (to 01:80:c2:00:00:02, EtherType 0x8809, subtype 1)
whose 110 bytes carry the sender's view of its own link (the actor) and of the other
end (the partner), as TLVs: actor and partner information (20 bytes each), collector
information (16), a terminator and reserved padding. ``decode`` accepts any version
from 1 up and reads the first three TLVs, as the standard asks of a version-1 receiver;
anything shorter or out of shape raises ``MalformedLacpdu`` naming what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SLOW_PROTOCOLS_MAC = bytes.fromhex("0180c2000002")
ETH_TYPE_SLOW = 0x8809
SLOW_ETHERTYPE = ETH_TYPE_SLOW.to_bytes(2, "big")  # as it sits at bytes 12-13 of a frame
SUBTYPE_LACP = 1
PDU_SIZE = 110  # after the Ethernet header

# Bits of an actor or partner state octet.
ACTIVITY = 0x01  # active LACP (passive: answers only)
TIMEOUT = 0x02  # short timeout: asks the other end for a PDU every second
AGGREGATION = 0x04  # the link may be aggregated
SYNC = 0x08  # the link is in the right aggregator
COLLECTING = 0x10
DISTRIBUTING = 0x20
DEFAULTED = 0x40  # no partner information received: defaults in use
EXPIRED = 0x80  # the partner's information has timed out once

_INFO = struct.Struct("!BBH6sHHHB3x")  # TLV type, length, then the information
_COLLECTOR = struct.Struct("!BBH12x")
_HEAD = struct.Struct("!6s6sHBB")  # destination, source, EtherType, subtype, version
MIN_READABLE = _HEAD.size + 2 * _INFO.size + _COLLECTOR.size
STATE_NAMES = (
    (ACTIVITY, "activity"),
    (TIMEOUT, "timeout"),
    (AGGREGATION, "aggregation"),
    (SYNC, "synchronized"),
    (COLLECTING, "collecting"),
    (DISTRIBUTING, "distributing"),
    (DEFAULTED, "defaulted"),
    (EXPIRED, "expired"),
)


class MalformedLacpdu(ValueError):
    """A slow-protocol frame that is not a LACPDU this side can read."""


@dataclass(frozen=True)
class LacpInfo:
    """One end's view of one link: who the system is and what the port is doing."""

    system_priority: int = 0
    system: bytes = bytes(6)
    key: int = 0
    port_priority: int = 0
    port: int = 0
    state: int = 0

    def same_aggregator(self, other: LacpInfo) -> bool:
        """Both describe links into the same aggregator of the same system."""
        return (self.system_priority, self.system, self.key) == (
            other.system_priority,
            other.system,
            other.key,
        )


@dataclass(frozen=True)
class Lacpdu:
    actor: LacpInfo
    partner: LacpInfo
    collector_max_delay: int = 0


def state_names(state: int) -> list[str]:
    return [name for bit, name in STATE_NAMES if state & bit]


def encode(source_mac: bytes, pdu: Lacpdu) -> bytes:
    """The whole Ethernet frame (124 bytes) of ``pdu``, sent from ``source_mac``."""
    frame = bytearray(_HEAD.pack(SLOW_PROTOCOLS_MAC, source_mac, ETH_TYPE_SLOW, SUBTYPE_LACP, 1))
    for tlv_type, info in ((1, pdu.actor), (2, pdu.partner)):
        frame += _INFO.pack(
            tlv_type,
            20,
            info.system_priority,
            info.system,
            info.key,
            info.port_priority,
            info.port,
            info.state,
        )
    frame += _COLLECTOR.pack(3, 16, pdu.collector_max_delay)
    frame += bytes(2 + 50)  # terminator TLV (type 0, length 0) and reserved octets
    return bytes(frame)


def is_lacpdu(frame: bytes) -> bool:
    """A slow-protocol frame with the LACP subtype (not yet checked any further)."""
    return len(frame) > 14 and frame[12:14] == SLOW_ETHERTYPE and frame[14] == SUBTYPE_LACP


def decode(frame: bytes) -> Lacpdu:
    if len(frame) < MIN_READABLE:
        raise MalformedLacpdu(
            f"{len(frame)} bytes: too short for the actor, partner and collector information "
            f"({MIN_READABLE} bytes with the Ethernet header; a whole LACPDU is {14 + PDU_SIZE})"
        )
    _dst, _src, ethertype, subtype, version = _HEAD.unpack_from(frame)
    if ethertype != ETH_TYPE_SLOW or subtype != SUBTYPE_LACP:
        raise MalformedLacpdu(f"EtherType {ethertype:#06x} subtype {subtype}: not LACP")
    if version < 1:
        raise MalformedLacpdu("version 0: LACP versions start at 1")
    infos = []
    offset = _HEAD.size
    for expected in (1, 2):
        tlv_type, length, *fields = _INFO.unpack_from(frame, offset)
        if (tlv_type, length) != (expected, 20):
            raise MalformedLacpdu(
                f"TLV {tlv_type} of length {length} where the "
                f"{'actor' if expected == 1 else 'partner'} information (type {expected}, "
                "length 20) belongs"
            )
        infos.append(LacpInfo(*fields))
        offset += _INFO.size
    tlv_type, length, max_delay = _COLLECTOR.unpack_from(frame, offset)
    if (tlv_type, length) != (3, 16):
        raise MalformedLacpdu(
            f"TLV {tlv_type} of length {length} where the collector information "
            "(type 3, length 16) belongs"
        )
    return Lacpdu(infos[0], infos[1], max_delay)
