"""A bridge's flow rules inside the datapath: the pipeline, rule state and timeouts.

``configure`` takes the full rule set from the bridge layer and changes only what
differs, found by spec object, so its cost follows the change, not the table. A rule
whose row is unchanged keeps its object, so its counters and idle timer continue
(``replace-flows`` relies on this); a changed row (``mod-flows``) keeps its counters
but gets the new actions. A bridge in ``fail_mode`` standalone has the implicit rule
``table=0, priority=0, actions=NORMAL`` beneath all others; ``secure`` has none.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from typing import Any

from ovs_runtime.bridge.flow_rules import FlowRuleSpec
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.classifier import Rule
from ovs_runtime.ofproto.flow_match import Match
from ovs_runtime.ofproto.flow_syntax import FlowRule
from ovs_runtime.ofproto.pipeline import Pipeline

DEFAULT_RULE = FlowRule(table=0, priority=0, match=Match(), actions=(("normal",),))
L2_FIELDS = frozenset({fk.IN_PORT, fk.DL_SRC, fk.DL_DST, fk.VLAN_TCI, fk.DL_TYPE})


class BridgeFlows:
    def __init__(self, now: float) -> None:
        self.pipeline = Pipeline()
        self.rules: dict[uuid.UUID, tuple[FlowRuleSpec, Rule]] = {}
        self.default: Rule | None = None
        self.fail_mode = "standalone"
        self.held: dict[int, FlowRuleSpec] = {}  # id(spec) -> spec, for every installed rule
        self.deep_rules: set[Rule] = set()  # installed rules that read beyond Ethernet
        self.timed: set[Rule] = set()  # installed rules with an idle or hard timeout
        self.expired: list[tuple[uuid.UUID, str]] = []
        # Rows of rules that timed out, until the bridge layer stops handing them over
        # (their rows are being deleted): they must not come back meanwhile.
        self.timed_out: set[uuid.UUID] = set()
        self.last_maintenance = now
        self.set_fail_mode("standalone", now)

    def set_fail_mode(self, mode: str, now: float) -> bool:
        wanted = mode != "secure"
        if wanted == (self.default is not None) and mode == self.fail_mode:
            return False
        self.fail_mode = mode
        if self.default is not None:
            self.pipeline.table(0).remove(self.default)
            self.default = None
        if wanted:
            self.default = Rule(None, DEFAULT_RULE, now, implicit=True)
            self.default.seq = 1 << 62  # below every explicit rule of priority 0
            self.pipeline.table(0).insert(self.default)
        return True

    def configure(self, specs: list[FlowRuleSpec], ports: dict[str, int], now: float) -> bool:
        """Install exactly ``specs``; returns True if anything changed. Specs are compared
        by object first (the bridge layer hands over the same object for an unchanged
        row), so a bridge of 100,000 rules with one new rule costs two set differences
        of integers, not 100,000 comparisons."""
        wall = time.time()
        if self.timed_out:
            self.timed_out.intersection_update(s.uuid for s in specs)
        wanted = dict(zip(map(id, specs), specs, strict=True))
        if wanted.keys() == self.held.keys():
            return False
        new_ids = wanted.keys() - self.held.keys()
        if len(new_ids) > 1:  # in the order given: the first installed wins ties
            fresh = {s.uuid: s for s in specs if id(s) in new_ids}
        else:
            fresh = {wanted[k].uuid: wanted[k] for k in new_ids}
        changed = False
        for key in self.held.keys() - wanted.keys():
            old_spec = self.held.pop(key)
            row_uuid = old_spec.uuid
            _old, rule = self.rules.pop(row_uuid)
            spec = fresh.pop(row_uuid, None) if fresh else None
            if spec is not None and spec.version == old_spec.version:
                self._hold(spec, rule)  # the same rule from another row object
                continue
            self.pipeline.table(rule.table).remove(rule)
            self._untrack(rule)
            changed = True
            if spec is not None and spec.rule.identity == old_spec.rule.identity:
                # mod-flows: same rule, new actions; counters and timers continue.
                rule.spec, rule.actions = spec.rule, spec.rule.actions
                rule.compile(ports)
                self.pipeline.table(rule.table).insert(rule)
                self._hold(spec, rule)
                self._track(rule)
            elif spec is not None:
                fresh[row_uuid] = spec  # a new rule in the old row's place
        for row_uuid, spec in fresh.items():
            if row_uuid in self.timed_out:
                continue
            # hard_timeout counts from the install time in the row, across restarts.
            rule = Rule(row_uuid, spec.rule, now - max(0.0, wall - spec.created))
            rule.used = now
            rule.compile(ports)
            self.pipeline.table(rule.table).insert(rule)
            self._hold(spec, rule)
            self._track(rule)
            changed = True
        return changed

    def _hold(self, spec: FlowRuleSpec, rule: Rule) -> None:
        self.rules[spec.uuid] = (spec, rule)
        self.held[id(spec)] = spec

    def _track(self, rule: Rule) -> None:
        """Note what the datapath must know about an installed rule: its timeouts, and
        whether it reads beyond the Ethernet header (the relay's cache keys then must)."""
        if rule.spec.idle_timeout or rule.spec.hard_timeout:
            self.timed.add(rule)
        if _reads_deep(rule):
            self.deep_rules.add(rule)

    def _untrack(self, rule: Rule) -> None:
        self.timed.discard(rule)
        self.deep_rules.discard(rule)

    @property
    def deep(self) -> bool:
        """Some rule reads beyond the Ethernet header."""
        return bool(self.deep_rules)

    def recompile_ports(self, ports: dict[str, int]) -> None:
        """Ports were added, removed or renumbered: re-resolve ``in_port`` names."""
        for _spec, rule in self.rules.values():
            if rule.spec.match.in_port is not None:
                table = self.pipeline.table(rule.table)
                table.remove(rule)
                rule.compile(ports)
                table.insert(rule)

    def expire(self, now: float) -> list[tuple[uuid.UUID, str]]:
        """Remove rules whose idle or hard timeout passed; returns (uuid, reason)."""
        gone = []
        for rule in list(self.timed):
            reason = rule.expired(now)
            if reason is not None:
                gone.append((rule.uuid, reason))
                self.pipeline.table(rule.table).remove(rule)
                spec, _rule = self.rules.pop(rule.uuid)
                del self.held[id(spec)]
                self._untrack(rule)
                self.timed_out.add(rule.uuid)
        self.expired.extend(gone)
        return gone

    def all_rules(self) -> list[Rule]:
        rules = [r for _s, r in self.rules.values()]
        if self.default is not None:
            rules.append(self.default)
        return rules

    def statistics(
        self, now: float, only: Collection[uuid.UUID] | None = None
    ) -> list[dict[str, Any]]:
        """Each rule's counters and ages (with ``only``, those rules' and the implicit
        default rule's: dump-flows of a few among 100,000 need no more)."""
        if only is None:
            rules = self.all_rules()
        else:
            rules = [self.rules[u][1] for u in only if u in self.rules]
            if self.default is not None:
                rules.append(self.default)
        return [
            {
                "uuid": str(r.uuid) if r.uuid else None,
                "implicit": r.implicit,
                "table": r.table,
                "priority": r.priority,
                "n_packets": r.n_packets,
                "n_bytes": r.n_bytes,
                "duration": round(now - r.installed, 3),
                "idle_age": round(now - r.used, 3),
            }
            for r in rules
        ]


def _reads_deep(rule: Rule) -> bool:
    return bool(set(rule.spec.match.fields) - L2_FIELDS) or any(
        a[0] in ("set_field", "dec_ttl") for a in rule.actions
    )
