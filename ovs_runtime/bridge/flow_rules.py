"""Flow rules in the configuration database: the ``Flow_Rule`` table.

Each row is one OpenFlow-style rule of the bridge whose ``flow_rules`` column holds it
(deleting the bridge deletes its rules): ``table``, ``priority``, ``cookie``, ``match``
and ``actions`` in ovs-ofctl syntax with ports named, ``idle_timeout``, ``hard_timeout``
and ``created`` (the wall-clock install time). Because the rules are rows, they survive
daemon restarts and reboots, unlike Open vSwitch's.

``FlowRuleReader`` turns a bridge's rows into parsed specs for the datapath, reading
again only the rows that changed since its last read; parses are cached by row, so
100,000 unchanged rules are not parsed again on every reconciliation. The commit-time
check of the rows is ``flow_rule_checks``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ovs_runtime.db.datum import Row, scalar
from ovs_runtime.ofproto import flow_syntax
from ovs_runtime.ofproto.flow_match import FlowSyntaxError
from ovs_runtime.ofproto.flow_syntax import FlowFilter, FlowRule


@dataclass(frozen=True)
class FlowRuleSpec:
    """One Flow_Rule row, parsed: what the bridge layer hands to the datapath."""

    uuid: uuid.UUID
    version: Any  # the row's rule columns; a change means a changed rule
    rule: FlowRule
    created: float  # wall-clock install time (hard_timeout counts from it)


COLUMNS = ("table", "priority", "cookie", "match", "actions", "idle_timeout", "hard_timeout")
# row UUID -> (the row object, its spec). Rows are replaced, never changed in place, so
# "same object" means "same rule" without reading a column, and the datapath, given the
# same spec object, sees "unchanged" at a glance.
_parsed: dict[uuid.UUID, tuple[Row, FlowRuleSpec]] = {}


def row_values(row: Row) -> tuple[Any, ...]:
    return tuple(scalar(row[c]) for c in COLUMNS)


def rule_text(values: tuple[Any, ...]) -> str:
    table, priority, cookie, match, actions, idle, hard = values
    head = f"table={table},priority={priority},cookie={cookie}"
    head += f",idle_timeout={idle},hard_timeout={hard}"
    return f"{head},{match} actions={actions}" if match else f"{head} actions={actions}"


def parse_row(row_uuid: uuid.UUID, row: Row) -> FlowRuleSpec:
    """The spec of a Flow_Rule row, parsed once per row object; raises FlowSyntaxError."""
    cached = _parsed.get(row_uuid)
    if cached is not None and cached[0] is row:
        return cached[1]
    values = row_values(row)
    if cached is not None and cached[1].version == values:
        rule = cached[1].rule
    else:
        rule = flow_syntax.parse_rule(rule_text(values))
    spec = FlowRuleSpec(row_uuid, values, rule, float(scalar(row["created"], 0.0)))
    _parsed[row_uuid] = (row, spec)
    return spec


def select_rules(
    rows: dict[uuid.UUID, Row], bridge_row: Row, flt: FlowFilter, strict: bool
) -> list[tuple[uuid.UUID, Row]]:
    """The bridge's rules that ``flt`` selects (as del-flows, mod-flows and dump-flows
    select them), in the order they were added. Parses come from the cache the
    reconciler fills, so selecting among 100,000 rules parses none of them again. Rows
    that do not parse are never selected: they are not in force."""
    chosen = []
    for atom in bridge_row["flow_rules"].values:
        row = rows.get(atom.value)
        if row is None:
            continue
        try:
            rule = parse_row(atom.value, row).rule
        except FlowSyntaxError:
            continue
        if flt.selects(rule, strict):
            chosen.append((atom.value, row))
    return chosen


@dataclass
class _BridgeRead:
    """What the reader last read of one bridge."""

    members: dict[Any, Any]  # the committed member set (replaced, never changed in place)
    specs: dict[uuid.UUID, FlowRuleSpec]  # rule UUID -> spec, in the order they were added
    unparsed: set[uuid.UUID]  # members whose rows did not parse


class FlowRuleReader:
    """Each bridge's rules as specs, read again only where rows changed.

    ``read`` with ``changed`` (the Flow_Rule UUIDs committed since the last read, from
    the database's change notifications) adjusts the bridge's last read: the members
    it gained or lost (set differences on the hashes the member sets store) and the
    rewritten rows it holds. With ``changed=None`` (not known), every member is read.
    """

    def __init__(self) -> None:
        self._last: dict[uuid.UUID, _BridgeRead] = {}

    def read(
        self,
        rows: dict[uuid.UUID, Row],
        bridge_uuid: uuid.UUID,
        bridge_row: Row,
        changed: set[uuid.UUID] | None,
    ) -> list[FlowRuleSpec]:
        now = bridge_row["flow_rules"].values
        last = self._last.get(bridge_uuid)
        if last is None or changed is None:
            last = _BridgeRead(now, {}, set())
            for atom in now:
                _read_into(last, rows, atom.value)
        else:
            for atom in set(last.members).difference(now):
                last.specs.pop(atom.value, None)
                last.unparsed.discard(atom.value)
            for row_uuid in changed:  # rows it still holds, rewritten (mod-flows)
                if row_uuid in last.specs or row_uuid in last.unparsed:
                    _read_into(last, rows, row_uuid)
            for atom in _in_member_order(now, set(now).difference(last.members)):
                _read_into(last, rows, atom.value)
            last.members = now
        self._last[bridge_uuid] = last
        return list(last.specs.values())

    def keep_only(self, bridges: set[uuid.UUID]) -> None:
        """Forget bridges that are gone, and parses no bridge holds any more (at a cost
        that follows the rules kept, so clearing 100,000 costs nothing)."""
        for gone in set(self._last) - bridges:
            del self._last[gone]
        live = sum(len(last.specs) for last in self._last.values())
        if len(_parsed) > 2 * max(live, 1024):
            kept = {
                key: _parsed[key]
                for last in self._last.values()
                for key in last.specs
                if key in _parsed
            }
            _parsed.clear()
            _parsed.update(kept)


def _in_member_order(members: dict[Any, Any], wanted: set[Any]) -> list[Any]:
    """``wanted`` in the order of ``members`` (the order the rules were added in, which
    breaks ties between equal-priority rules). A mutation appends its members, so they
    are found at the end without looking through the rest."""
    if len(wanted) < 2:
        return list(wanted)
    if len(wanted) == len(members):  # all of them (the first read, or a replaced set)
        return list(members)
    found = []
    for atom in reversed(members):
        if atom in wanted:
            found.append(atom)
            if len(found) == len(wanted):
                break
    found.reverse()
    return found


def _read_into(last: _BridgeRead, rows: dict[uuid.UUID, Row], key: uuid.UUID) -> None:
    row = rows.get(key)
    last.unparsed.discard(key)
    if row is None:
        last.specs.pop(key, None)
        return
    try:
        last.specs[key] = parse_row(key, row)
    except FlowSyntaxError:  # rows written before the commit check existed; it names them
        last.specs.pop(key, None)
        last.unparsed.add(key)
