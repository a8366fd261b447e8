"""A stable hash of a frame's flow, for spreading tunnel traffic over an ECMP underlay.

RFC 7348 (section 5) asks a VXLAN sender to derive the outer UDP source port from a hash
of the inner frame, so that routers hashing the outer 5-tuple spread a host's tunnels
over their equal-cost paths while each flow keeps one path (and its packets their
order). ``flow_hash`` reads what Linux's flow dissector and Open vSwitch's RSS hash
read:

- IPv4 and IPv6: the protocol, the addresses and, for TCP, UDP, SCTP and UDP-Lite, the
  ports. Fragments hash without ports, so every fragment of a datagram (the first one
  included) takes the path of the others.
- anything else (ARP, LLDP...): the Ethernet addresses and EtherType.

One or two 802.1Q / 802.1ad tags are skipped. A truncated frame hashes what it has; it
never raises. CRC-32 (C code in ``zlib``) rather than Python's ``hash``: the value must
not change from one run of the daemon to the next.
"""

from __future__ import annotations

import zlib

_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")
_PORT_PROTOS = frozenset((6, 17, 132, 136))  # TCP, UDP, SCTP, UDP-Lite
_MORE_FRAGMENTS_OR_OFFSET = 0x3FFF


def flow_hash(frame: bytes) -> int:
    """A 32-bit hash of ``frame``'s flow; equal for every packet of one flow."""
    l3 = 12
    for _ in range(2):
        if frame[l3 : l3 + 2] not in _VLAN_TPIDS:
            break
        l3 += 4
    ethertype = frame[l3 : l3 + 2]
    l3 += 2
    if ethertype == b"\x08\x00" and len(frame) >= l3 + 20:
        proto = frame[l3 + 9]
        key = frame[l3 + 9 : l3 + 10] + frame[l3 + 12 : l3 + 20]
        fragment = int.from_bytes(frame[l3 + 6 : l3 + 8], "big") & _MORE_FRAGMENTS_OR_OFFSET
        if proto in _PORT_PROTOS and not fragment:
            l4 = l3 + (frame[l3] & 0x0F) * 4
            key += frame[l4 : l4 + 4]
        return zlib.crc32(key)
    if ethertype == b"\x86\xdd" and len(frame) >= l3 + 40:
        proto = frame[l3 + 6]
        key = frame[l3 + 6 : l3 + 7] + frame[l3 + 8 : l3 + 40]
        if proto in _PORT_PROTOS:  # (a fragment header would be proto 44: no ports)
            key += frame[l3 + 40 : l3 + 44]
        return zlib.crc32(key)
    return zlib.crc32(frame[:12] + ethertype)
