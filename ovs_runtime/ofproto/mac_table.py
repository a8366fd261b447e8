"""The MAC learning table of one bridge, keyed by (VLAN, MAC).

As in OVS: entries age out after ``mac-aging-time`` seconds without traffic from that
MAC (default 300), the table holds at most ``mac-table-size`` entries (default 8192) and
evicts the least recently used, and a station that moves is re-learned on its new port.
``generation`` changes whenever a forwarding decision could change (an entry added,
moved or removed), which is what the datapath's flow cache checks to stay correct.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_AGING = 300.0
DEFAULT_SIZE = 8192


@dataclass(slots=True)
class MacEntry:
    port: int
    last_seen: float


class MacTable:
    def __init__(self, aging: float = DEFAULT_AGING, max_entries: int = DEFAULT_SIZE) -> None:
        self.aging = aging
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[int, bytes], MacEntry] = OrderedDict()
        self.generation = 0
        self.evictions = 0
        self.moves = 0

    def learn(self, vlan: int, mac: bytes, port: int, now: float) -> None:
        key = (vlan, mac)
        entry = self.entries.get(key)
        if entry is not None:
            entry.last_seen = now
            self.entries.move_to_end(key)
            if entry.port != port:
                entry.port = port
                self.moves += 1
                self.generation += 1
            return
        if len(self.entries) >= self.max_entries:
            self.entries.popitem(last=False)
            self.evictions += 1
        self.entries[key] = MacEntry(port, now)
        self.generation += 1

    def lookup(self, vlan: int, mac: bytes, now: float) -> int | None:
        entry = self.entries.get((vlan, mac))
        if entry is None or now - entry.last_seen > self.aging:
            return None
        return entry.port

    def expire(self, now: float) -> int:
        stale = [k for k, e in self.entries.items() if now - e.last_seen > self.aging]
        for key in stale:
            del self.entries[key]
        if stale:
            self.generation += 1
        return len(stale)

    def forget_port(self, port: int) -> None:
        gone = [k for k, e in self.entries.items() if e.port == port]
        for key in gone:
            del self.entries[key]
        self.generation += 1

    def forget_vlans(self, vlans: frozenset[int]) -> None:
        gone = [k for k in self.entries if k[0] in vlans]
        for key in gone:
            del self.entries[key]
        self.generation += 1

    def flush(self) -> None:
        self.entries.clear()
        self.generation += 1

    def configure(self, aging: float, max_entries: int) -> None:
        self.aging = aging
        self.max_entries = max_entries
        while len(self.entries) > max_entries:
            self.entries.popitem(last=False)
            self.evictions += 1
        self.generation += 1
