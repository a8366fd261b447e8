"""``patch`` ports: two ports on two bridges joined inside the daemon (``options:peer``).

A frame sent out of one patch port is received on its peer. The datapath delivers it
in the same loop iteration, so a patch pair costs no system call.
"""

from __future__ import annotations

from ovs_runtime.netdev.provider import NetdevStats, NetdevStatus, Packet


class PatchNetdev:
    def __init__(self, name: str, peer_name: str) -> None:
        self.name = name
        self.peer_name = peer_name
        self.peer: PatchNetdev | None = None
        self.stats = NetdevStats()
        self.queue: list[Packet] = []

    def fileno(self) -> int:
        return -1

    def receive(self, budget: int) -> list[Packet]:
        taken, self.queue = self.queue[:budget], self.queue[budget:]
        self.stats.rx_packets += len(taken)
        return taken

    def send(self, vnet_header: bytes, frame: bytes) -> None:
        if self.peer is None:
            self.stats.tx_dropped += 1
            return
        self.peer.queue.append((vnet_header, frame))
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(frame)

    def status(self) -> NetdevStatus:
        up = "up" if self.peer is not None else "down"
        return NetdevStatus(link_state=up, admin_state="up")

    def close(self) -> None:
        if self.peer is not None and self.peer.peer is self:
            self.peer.peer = None
        self.peer = None
