"""An in-memory port: frames are queued by a test and captured on output.

It implements the same ``Netdev`` interface as the kernel-backed ports, so the NORMAL and
VLAN behaviour suite runs against it without root, and against AF_PACKET with real
traffic; the two runs check the same expectations.
"""

from __future__ import annotations

from ovs_runtime.datapath.vnet_header import EMPTY
from ovs_runtime.netdev.provider import NetdevStats, NetdevStatus, Packet


class MemoryNetdev:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = NetdevStats()
        self.inbox: list[Packet] = []
        self.sent: list[bytes] = []
        self.link_state = "up"  # a test pulls the cable by setting "down"
        self.mac: str | None = None

    def inject(self, frame: bytes) -> None:
        self.inbox.append((EMPTY, frame))

    def fileno(self) -> int:
        return -1

    def receive(self, budget: int) -> list[Packet]:
        taken, self.inbox = self.inbox[:budget], self.inbox[budget:]
        self.stats.rx_packets += len(taken)
        return taken

    def send(self, vnet_header: bytes, frame: bytes) -> None:
        self.sent.append(frame)
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(frame)

    def status(self) -> NetdevStatus:
        return NetdevStatus(link_state=self.link_state, admin_state="up", mac=self.mac)

    def close(self) -> None:
        pass
