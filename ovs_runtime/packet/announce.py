"""Frames that announce where a MAC address lives, after a VM moved.

A RARP "reverse request" broadcast from the MAC (EtherType 0x8035), as QEMU sends after a
live migration: it needs no IP address, and every switch on the way learns the MAC on the
port it arrived from.
"""

from __future__ import annotations

import struct

from ovs_runtime.packet.ethernet import push_vlan

ETH_P_RARP = 0x8035
ARP_HTYPE_ETHERNET = 1
ETH_P_IP = 0x0800
RARP_REQUEST_REVERSE = 3
BROADCAST = b"\xff" * 6
MIN_FRAME = 60  # without the FCS


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"{text!r} is not a MAC address (expected xx:xx:xx:xx:xx:xx)")
    return bytes(int(p, 16) for p in parts)


def rarp_announcement(mac: bytes, vid: int | None = None) -> bytes:
    """The broadcast RARP frame for ``mac``, 802.1Q-tagged with ``vid`` if given."""
    payload = struct.pack(
        "!HHBBH6s4s6s4s",
        ARP_HTYPE_ETHERNET,
        ETH_P_IP,
        6,
        4,
        RARP_REQUEST_REVERSE,
        mac,
        bytes(4),
        mac,
        bytes(4),
    )
    frame = BROADCAST + mac + struct.pack("!H", ETH_P_RARP) + payload
    frame = frame.ljust(MIN_FRAME, b"\x00")
    return push_vlan(frame, vid) if vid else frame
