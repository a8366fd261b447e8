"""A flow table: priority-ordered rules, looked up by tuple space search (as OVS does).

Rules are grouped into subtables by their mask (which fields, which bits). A lookup
masks the packet's key once per subtable and does one dict lookup there, visiting the
subtables in order of their highest priority and stopping as soon as no remaining
subtable can beat the best rule found. So the cost grows with the number of distinct
masks, not the number of rules.

While looking up, the classifier ORs every visited subtable's mask into ``wildcards``:
the fields (and bits) this decision depended on. That is the megaflow mask the datapath
caches the decision under.

Ties: OpenFlow leaves overlapping rules of equal priority undefined; here the rule
installed first wins, every time.
"""

from __future__ import annotations

import itertools
from typing import Any

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.flow_key import masked

UNRESOLVED_PORT = 0xFFFFFFFF  # in_port of a rule whose port does not exist: never matches
_sequence = itertools.count(1)


class Rule:
    """One installed rule with its runtime state (counters, timestamps)."""

    __slots__ = (
        "uuid",
        "spec",
        "table",
        "priority",
        "seq",
        "values",
        "mask",
        "actions",
        "n_packets",
        "n_bytes",
        "installed",
        "used",
        "implicit",
    )

    def __init__(self, uuid: Any, spec: Any, installed: float, implicit: bool = False) -> None:
        self.uuid = uuid
        self.spec = spec  # the parsed FlowRule
        self.table: int = spec.table
        self.priority: int = spec.priority
        self.seq = next(_sequence)
        self.actions = spec.actions
        self.n_packets = 0
        self.n_bytes = 0
        self.installed = installed
        self.used = installed
        self.implicit = implicit
        self.values: fk.Key = fk.NO_MASK
        self.mask: fk.Key = fk.NO_MASK

    def compile(self, port_numbers: dict[str, int]) -> None:
        values = [0] * fk.KEY_SIZE
        mask = [0] * fk.KEY_SIZE
        for index, (value, m) in self.spec.match.fields.items():
            values[index], mask[index] = value & m, m
        if self.spec.match.in_port is not None:
            values[fk.IN_PORT] = port_numbers.get(self.spec.match.in_port, UNRESOLVED_PORT)
            mask[fk.IN_PORT] = fk.FULL[fk.IN_PORT]
        self.values, self.mask = tuple(values), tuple(mask)

    def expired(self, now: float) -> str | None:
        spec = self.spec
        if spec.hard_timeout and now - self.installed >= spec.hard_timeout:
            return "hard"
        if spec.idle_timeout and now - self.used >= spec.idle_timeout:
            return "idle"
        return None


class Subtable:
    """The rules of one mask, by their masked values; ``priorities`` counts the rules
    of each priority, so the highest one is known again in a step when a rule goes
    (deleting every rule of a large table stays linear)."""

    __slots__ = ("mask", "nonzero", "rules", "priorities", "max_priority")

    def __init__(self, mask: fk.Key) -> None:
        self.mask = mask
        self.nonzero = tuple((i, m) for i, m in enumerate(mask) if m)
        self.rules: dict[fk.Key, list[Rule]] = {}
        self.priorities: dict[int, int] = {}
        self.max_priority = -1


class FlowTable:
    def __init__(self, table_id: int) -> None:
        self.table_id = table_id
        self.subtables: dict[fk.Key, Subtable] = {}
        self.order: list[Subtable] = []
        self.count = 0

    def insert(self, rule: Rule) -> None:
        sub = self.subtables.get(rule.mask)
        if sub is None:
            sub = self.subtables[rule.mask] = Subtable(rule.mask)
        bucket = sub.rules.setdefault(rule.values, [])
        bucket.append(rule)
        bucket.sort(key=lambda r: (-r.priority, r.seq))
        sub.priorities[rule.priority] = sub.priorities.get(rule.priority, 0) + 1
        self.count += 1
        if rule.priority > sub.max_priority:
            sub.max_priority = rule.priority
            self._reorder()
        elif len(self.order) != len(self.subtables):
            self._reorder()

    def remove(self, rule: Rule) -> None:
        sub = self.subtables.get(rule.mask)
        if sub is None:
            return
        bucket = sub.rules.get(rule.values)
        if not bucket or rule not in bucket:
            return
        bucket.remove(rule)
        self.count -= 1
        if not bucket:
            del sub.rules[rule.values]
        left = sub.priorities[rule.priority] - 1
        if left:
            sub.priorities[rule.priority] = left
            return
        del sub.priorities[rule.priority]
        if not sub.rules:
            del self.subtables[rule.mask]
        elif rule.priority == sub.max_priority:
            sub.max_priority = max(sub.priorities)
        else:
            return  # the subtable's place in the order is unchanged
        self._reorder()

    def _reorder(self) -> None:
        self.order = sorted(self.subtables.values(), key=lambda s: -s.max_priority)

    def lookup(self, key: fk.Key, wildcards: list[int]) -> Rule | None:
        best: Rule | None = None
        for sub in self.order:
            if best is not None and sub.max_priority < best.priority:
                break
            for index, m in sub.nonzero:
                wildcards[index] |= m
            bucket = sub.rules.get(masked(key, sub.mask))
            if bucket:
                rule = bucket[0]
                if (
                    best is None
                    or rule.priority > best.priority
                    or (rule.priority == best.priority and rule.seq < best.seq)
                ):
                    best = rule
        return best

    def rules(self) -> list[Rule]:
        return [r for sub in self.subtables.values() for b in sub.rules.values() for r in b]
