"""An exact-match cache of forwarding decisions, with precompiled actions.

The key holds exactly the header bytes the NORMAL decision looks at: the ingress port,
destination and source MAC, and the outer VLAN tag (present or not, and its VID). The
value is the list of output ports with the tag operation each needs, so a hit costs one
dict lookup and no parsing beyond the Ethernet header.

Every entry records the bridge ``generation`` (MAC table, port configuration) it was
computed under; a lookup under a different generation is a miss. So a MAC move, an
aged-out entry, a flush or a port change can never leave a stale decision in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 65536

# Tag operations on output, chosen once per (input tagging, output tagging) pair.
KEEP, POP, PUSH, RETAG = 0, 1, 2, 3


@dataclass(slots=True)
class CachedDecision:
    generation: int
    vlan: int
    actions: tuple[tuple[Any, int, int], ...]  # (port handle, tag op, vid)
    refreshed: float  # when the source MAC's age was last re-stamped
    mirrors: tuple[Any, ...] = ()  # mirrors that selected it, for their counters


class FlowCache:
    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], CachedDecision] = {}
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    def lookup(self, key: tuple[Any, ...], generation: int) -> CachedDecision | None:
        entry = self.entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry.generation != generation:
            self.invalidations += 1
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def store(self, key: tuple[Any, ...], decision: CachedDecision) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        self.entries[key] = decision

    def clear(self) -> None:
        self.entries.clear()


def tag_operation(input_vid: int | None, output_vid: int | None) -> int:
    if input_vid is None:
        return KEEP if output_vid is None else PUSH
    if output_vid is None:
        return POP
    return KEEP if output_vid == input_vid else RETAG
