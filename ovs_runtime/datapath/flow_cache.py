"""The datapath's decision caches: an exact-match cache in front of a megaflow cache.

A decision is what the pipeline (flow tables, NORMAL, port security) concluded for a
packet, with its outputs compiled to (port handle, operation, argument) so that a cache
hit costs one dict lookup and the sends.

- The **exact-match cache** (``entries``) is keyed by the ingress port and the raw header
  bytes the pipeline can read: just the Ethernet header while no rule and no port
  security looks deeper, else also the L3/L4 bytes (``flow_key.exact_bytes``).
- The **megaflow cache** (``megaflows``) is keyed by the parsed flow key masked with the
  wildcards of the translation that produced the decision: only the fields some rule,
  NORMAL or port security actually read. It answers exact-match misses without running
  the classifier, so its cost does not grow with the number of rules.

Every decision records the bridge ``generation`` (rules, MAC table, port configuration)
it was computed under; a lookup under a different generation is a miss. So a rule
change, a MAC move, an aged-out entry, a flush or a port change can never leave a stale
decision in use. Packet and byte counts accrue on the decision and are pushed to the
rules it passed through (``push``), as OVS's revalidators push datapath flow statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.ofproto.flow_key import masked

MAX_ENTRIES = 65536
REFRESH_INTERVAL = 1.0  # how often a cached decision re-stamps its source MAC's age

# Output operations, chosen once per (input tagging, output tagging) pair; REWRITE
# carries the (original, wanted) flow keys; QUEUED wraps another operation with the skb
# priority of the QoS queue ``set_queue`` chose: (operation, argument, priority); KEYED
# wraps one for a key=flow tunnel port with the VNI to send with: (operation, argument,
# VNI).
KEEP, POP, PUSH, RETAG, REWRITE, QUEUED, KEYED = 0, 1, 2, 3, 4, 5, 6


@dataclass(slots=True, eq=False)
class CachedDecision:
    generation: int
    learned: tuple[int, bytes, int] | None  # (VLAN, MAC, port) NORMAL learned, to refresh
    actions: tuple[tuple[Any, int, Any], ...]  # (port handle, operation, vid or rewrite)
    refreshed: float  # when the source MAC's age was last re-stamped
    mirrors: tuple[Any, ...] = ()  # mirrors that selected it, for their counters
    rules: tuple[Any, ...] = ()  # flow rules it passed through, for their counters
    n_packets: int = 0
    n_bytes: int = 0
    drop_reason: str | None = None  # dropped and counted under this name (port security)
    relay_to: Any = None  # the port handle, when the decision is "out of it, unchanged"

    def __post_init__(self) -> None:
        actions = self.actions
        if len(actions) == 1 and actions[0][1] == KEEP and not self.mirrors:
            self.relay_to = actions[0][0]


def push(decision: CachedDecision, now: float) -> None:
    """Credit the decision's packets to its rules."""
    if decision.n_packets:
        for rule in decision.rules:
            rule.n_packets += decision.n_packets
            rule.n_bytes += decision.n_bytes
            rule.used = now
        decision.n_packets = decision.n_bytes = 0


@dataclass
class FlowCache:
    entries: dict[tuple[Any, ...], CachedDecision] = field(default_factory=dict)
    megaflows: dict[tuple[int, ...], dict[tuple[int, ...], CachedDecision]] = field(
        default_factory=dict
    )
    uncached: list[CachedDecision] = field(default_factory=list)
    hits: int = 0
    relayed: int = 0  # hits that went ring to ring (``ring_relay``)
    misses: int = 0
    megaflow_hits: int = 0
    invalidations: int = 0

    def megaflow_lookup(self, key: tuple[int, ...], generation: int) -> CachedDecision | None:
        for mask, table in self.megaflows.items():
            decision = table.get(masked(key, mask))
            if decision is not None and decision.generation == generation:
                self.megaflow_hits += 1
                return decision
        return None

    def store(
        self,
        exact_key: tuple[Any, ...] | None,
        mask: tuple[int, ...],
        key: tuple[int, ...],
        decision: CachedDecision,
        now: float,
    ) -> None:
        if exact_key is None:
            self.uncached.append(decision)
            return
        if len(self.entries) >= MAX_ENTRIES or self.megaflow_count() >= MAX_ENTRIES:
            self.clear(now)
        table = self.megaflows.setdefault(mask, {})
        masked_key = masked(key, mask)
        old = table.get(masked_key)
        if old is not None:
            push(old, now)
        table[masked_key] = decision
        self.remember(exact_key, decision, now)

    def remember(self, exact_key: tuple[Any, ...], decision: CachedDecision, now: float) -> None:
        """Put a decision in the exact-match cache (bounded like the megaflows)."""
        if len(self.entries) >= MAX_ENTRIES:
            for stale in self.entries.values():
                push(stale, now)
            self.entries.clear()
        old = self.entries.get(exact_key)
        if old is not None:
            push(old, now)
        self.entries[exact_key] = decision

    def megaflow_count(self) -> int:
        return sum(len(t) for t in self.megaflows.values())

    def push_all(self, now: float) -> None:
        for table in self.megaflows.values():
            for decision in table.values():
                push(decision, now)
        for decision in self.entries.values():
            push(decision, now)
        for decision in self.uncached:
            push(decision, now)
        self.uncached.clear()

    def clear(self, now: float) -> None:
        self.push_all(now)
        self.entries.clear()
        self.megaflows.clear()

    def describe(self) -> dict[str, int]:
        return {
            "entries": len(self.entries),
            "megaflows": self.megaflow_count(),
            "megaflow_masks": len(self.megaflows),
            "hits": self.hits,
            "relayed": self.relayed,
            "megaflow_hits": self.megaflow_hits,
            "misses": self.misses,
            "invalidations": self.invalidations,
        }


def tag_operation(input_vid: int | None, output_vid: int | None) -> int:
    if input_vid is None:
        return KEEP if output_vid is None else PUSH
    if output_vid is None:
        return POP
    return KEEP if output_vid == input_vid else RETAG
