"""The netdev provider interface: what every port type implements.

A port moves frames as ``(vnet_header, frame)`` pairs: ``vnet_header`` is the 10-byte
``virtio_net_hdr`` (``datapath.vnet_header.EMPTY`` when there is no offload state) and
``frame`` starts at the destination MAC, with the 802.1Q tag in place if there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Packet = tuple[bytes, bytes]


class NetdevGone(Exception):
    """The device behind a port disappeared or failed; the message says how."""


@dataclass
class NetdevStats:
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class NetdevStatus:
    link_state: str = "down"  # "up" or "down"
    admin_state: str = "down"
    mtu: int | None = None
    ifindex: int | None = None
    mac: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Netdev(Protocol):
    name: str
    stats: NetdevStats

    def fileno(self) -> int:
        """A pollable fd that becomes readable when frames wait, or -1 (patch, memory)."""
        ...

    def receive(self, budget: int) -> list[Packet]:
        """Up to ``budget`` waiting frames, without blocking. Raises ``NetdevGone``."""
        ...

    def send(self, vnet_header: bytes, frame: bytes) -> None:
        """Transmit one frame; a full queue counts ``tx_dropped``, never blocks."""
        ...

    def status(self) -> NetdevStatus: ...

    def close(self) -> None: ...
