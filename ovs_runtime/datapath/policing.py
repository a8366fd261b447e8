"""Ingress policing (``Interface.ingress_policing_rate`` and ``_burst``), as OVS defines it:
frames received on the port beyond ``rate`` kbit/s, after a burst of ``burst`` kbit
(8000 kbit when 0), are dropped and counted.

OVS does this with a tc police action on the device. This kernel has no police action,
and the userspace datapath reads every frame anyway, so the token bucket runs here, in
the receive path, costing nothing on ports without policing.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BURST_KBIT = 8000


@dataclass
class Policer:
    rate_kbit: int
    burst_kbit: int
    tokens: float = 0.0  # bits
    last: float = 0.0
    dropped: int = 0

    def __post_init__(self) -> None:
        self.burst_kbit = self.burst_kbit or DEFAULT_BURST_KBIT
        self.tokens = self.capacity

    @property
    def capacity(self) -> float:
        return self.burst_kbit * 1000.0

    def admit(self, packets: list[tuple[bytes, bytes]], now: float) -> list[tuple[bytes, bytes]]:
        if self.last:
            self.tokens = min(
                self.capacity, self.tokens + (now - self.last) * self.rate_kbit * 1000.0
            )
        self.last = now
        kept = []
        for packet in packets:
            bits = len(packet[1]) * 8
            if bits <= self.tokens:
                self.tokens -= bits
                kept.append(packet)
            else:
                self.dropped += 1
        return kept


def policer_for(rate_kbit: int, burst_kbit: int, current: Policer | None) -> Policer | None:
    """The policer a port should have now (keeping its state if nothing changed)."""
    if rate_kbit <= 0:
        return None
    if current is not None and (current.rate_kbit, current.burst_kbit) == (
        rate_kbit,
        burst_kbit or DEFAULT_BURST_KBIT,
    ):
        return current
    return Policer(rate_kbit, burst_kbit)
