"""The commit-time check of Flow_Rule rows.

A rule that does not parse, is not stored in canonical form, names a port its bridge
does not have, or repeats another rule's table, priority and match fails the whole
transaction with an error naming the bridge, the rule and the token.

Only what a transaction changed is looked at, against an index of the bridge's rules
by identity kept from the commit before (validated by the bridge row object and the
Flow_Rule table's commit serial), so adding one rule to a bridge of 100,000 does not
re-check the 100,000. Without a valid index (the first transaction after a start)
every rule of the bridge is checked.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from ovs.db.data import Atom
from ovs.db.types import UuidType

from ovs_runtime.bridge.flow_rules import parse_row
from ovs_runtime.db.datum import Row, as_list, scalar
from ovs_runtime.db.errors import OvsdbError
from ovs_runtime.ofproto import flow_actions, flow_match, flow_syntax
from ovs_runtime.ofproto.flow_match import FlowSyntaxError
from ovs_runtime.ofproto.flow_syntax import FlowRule


def _port_names(view: Any, bridge: Row) -> set[str]:
    """Names rules may use: ports, and for a bond its interfaces instead (rules name
    OpenFlow ports, which are a bond's members, as in OVS)."""
    names = {scalar(bridge["name"])}
    for port_uuid in as_list(bridge["ports"]):
        port = view.get("Port", port_uuid)
        if port is None:
            continue
        interfaces = as_list(port["interfaces"])
        if len(interfaces) < 2:
            names.add(scalar(port["name"]))
            continue
        for iface_uuid in interfaces:
            iface = view.get("Interface", iface_uuid)
            if iface is not None:
                names.add(scalar(iface["name"]))
    return names


def _check_canonical(bridge: str, rule_uuid: uuid.UUID, row: Row, rule: FlowRule) -> None:
    """Rows hold the canonical text (what ``ovsr add-flow`` writes), so a rule's
    identity is plain string equality for every client. A row already in canonical
    form parsed to ``rule``, so it is stored faithfully by construction; only a row
    that is not needs the reparse that tells the two errors apart."""
    for column, canonical in (
        ("match", flow_match.format_match(rule.match)),
        ("actions", flow_actions.format_actions(rule.actions)),
    ):
        if scalar(row[column]) == canonical:
            continue
        reparsed = flow_syntax.parse_rule(flow_syntax.format_rule(rule))
        if reparsed.match != rule.match or reparsed.actions != rule.actions:
            raise OvsdbError(
                "constraint violation",
                f"bridge {bridge}: flow rule {rule_uuid}: '{scalar(row['match'])}' cannot be "
                "stored faithfully; write the fields it matches explicitly",
            )
        raise OvsdbError(
            "constraint violation",
            f"bridge {bridge}: flow rule {rule_uuid}: write {column} in canonical form "
            f"'{canonical}' (as ovsr add-flow stores it), not '{scalar(row[column])}'",
        )


@dataclass
class _RuleIndex:
    """A bridge's rules by identity (table, priority, match) as they stood when its row
    was ``bridge_row`` and the Flow_Rule table's last change had serial ``serial``."""

    bridge_row: Row
    serial: int
    identities: dict[Any, uuid.UUID]


# bridge UUID -> (the index for the state a transaction will commit, the index for the
# committed state it started from). The second stays usable if that commit fails after
# this check, or turns out to change nothing.
_indexes: dict[uuid.UUID, tuple[_RuleIndex, _RuleIndex | None]] = {}


def _index_for(bridge_uuid: uuid.UUID, row: Row, serial: int) -> _RuleIndex | None:
    for entry in _indexes.get(bridge_uuid, ()):
        if entry is not None and entry.bridge_row is row and entry.serial == serial:
            return entry
    return None


def check_flow_rules(view: Any) -> None:
    """At commit: the rules of every bridge the transaction touches must parse, be
    stored in canonical form, name only the bridge's ports, and not repeat a table,
    priority and match. Only what the transaction changed is looked at, against an
    index of the bridge's rules kept from the commit before, so adding one rule to a
    bridge of 100,000 does not re-check the 100,000; without a valid index (the first
    transaction after a start) every rule of the bridge is checked."""
    changed_rules = {u for u, row in view.changes.get("Flow_Rule", {}).items() if row is not None}
    changed_bridges = set()
    for bridge_uuid, row in view.changes.get("Bridge", {}).items():
        if row is None:
            _indexes.pop(bridge_uuid, None)
            continue
        old = view.committed["Bridge"].get(bridge_uuid)
        if old is None or old["flow_rules"].values != row["flow_rules"].values:
            changed_bridges.add(bridge_uuid)
    base_serial = view.table_serials.get("Flow_Rule", 0)
    next_serial = view.serial if view.changes.get("Flow_Rule") else base_serial
    # Rows that were there before and were rewritten: only these can be in a bridge
    # whose member set did not change (new rows join a set, which changes it).
    committed_rules = view.committed["Flow_Rule"]
    rewritten = {Atom(UuidType, u) for u in changed_rules if u in committed_rules}
    # (bridge, new index, base index): remembered once every bridge has passed
    passed: list[tuple[uuid.UUID, _RuleIndex, _RuleIndex | None]] = []
    for bridge_uuid, bridge in view.rows("Bridge"):
        old = view.committed["Bridge"].get(bridge_uuid)
        index: dict[Any, uuid.UUID] | None
        if old is None:  # a new bridge: nothing to compare with
            base, index = None, {}
        else:
            base = _index_for(bridge_uuid, old, base_serial)
            index = base.identities if base is not None else None
        rule_set = bridge["flow_rules"].values
        if bridge_uuid not in changed_bridges and not any(a in rule_set for a in rewritten):
            # Its rules stay as they are: the index carries over to the new state.
            if (
                index is not None
                and view.serial
                and (bridge is not old or next_serial != base_serial)
            ):
                passed.append((bridge_uuid, _RuleIndex(bridge, next_serial, index), base))
            continue
        name = scalar(bridge["name"])
        ports = _port_names(view, bridge)
        old_set = old["flow_rules"].values if old is not None else {}
        if index is None or 2 * len(rule_set) < len(old_set):
            # (After del-flows of most of a table, what is left is the smaller part.)
            identities = _check_all(view, name, ports, rule_set, changed_rules)
        else:
            identities = _check_changes(
                view, name, ports, index, old_set, rule_set, changed_rules, rewritten
            )
        if view.serial:
            passed.append((bridge_uuid, _RuleIndex(bridge, next_serial, identities), base))
    for bridge_uuid, entry, base in passed:
        _indexes[bridge_uuid] = (entry, base)


def _check_all(
    view: Any, name: str, ports: set[str], rule_set: dict[Atom, Any], changed: set[uuid.UUID]
) -> dict[Any, uuid.UUID]:
    """Every rule of the bridge (all of them new against an empty index)."""
    return _check_changes(view, name, ports, {}, {}, rule_set, changed, set())


def _check_changes(
    view: Any,
    name: str,
    ports: set[str],
    index: dict[Any, uuid.UUID],
    old_set: dict[Atom, Any],
    new_set: dict[Atom, Any],
    changed: set[uuid.UUID],
    rewritten_rows: set[Atom],
) -> dict[Any, uuid.UUID]:
    """The committed index, less the rules the transaction removed or rewrote, plus the
    ones it added or rewrote (set differences use the stored hashes: no per-rule work)."""
    rewritten = [atom for atom in rewritten_rows if atom in new_set and atom in old_set]
    identities = dict(index)
    committed = view.committed["Flow_Rule"]
    for atom in itertools.chain(set(old_set).difference(new_set), rewritten):
        row = committed.get(atom.value)
        if row is None:
            continue
        try:
            identity = parse_row(atom.value, row).rule.identity
        except FlowSyntaxError:
            continue
        if identities.get(identity) == atom.value:
            del identities[identity]
    for atom in itertools.chain(set(new_set).difference(old_set), rewritten):
        row = view.get("Flow_Rule", atom.value)
        if row is None:
            continue
        rule = _parsed_rule(name, atom.value, row)
        _claim(identities, name, rule, atom.value)
        if atom.value in changed:
            _check_written(name, ports, atom.value, row, rule)
    return identities


def _parsed_rule(bridge: str, rule_uuid: uuid.UUID, row: Row) -> FlowRule:
    try:
        return parse_row(rule_uuid, row).rule
    except FlowSyntaxError as exc:
        raise OvsdbError(
            "constraint violation", f"bridge {bridge}: flow rule {rule_uuid}: {exc}"
        ) from None


def _claim(
    identities: dict[Any, uuid.UUID], bridge: str, rule: FlowRule, rule_uuid: uuid.UUID
) -> None:
    if rule.identity in identities:
        raise OvsdbError(
            "constraint violation",
            f"bridge {bridge}: two rules with table {rule.table}, priority "
            f"{rule.priority} and match '{flow_match.format_match(rule.match)}' "
            "(a rule replaces the one with the same table, priority and match)",
        )
    identities[rule.identity] = rule_uuid


def _check_written(
    bridge: str, ports: set[str], rule_uuid: uuid.UUID, row: Row, rule: FlowRule
) -> None:
    """A rule the transaction wrote: canonical text, and only ports the bridge has."""
    _check_canonical(bridge, rule_uuid, row, rule)
    named = flow_actions.ports_in(rule.actions)
    if rule.match.in_port is not None:
        named.add(rule.match.in_port)
    missing = sorted(named - ports)
    if missing:
        raise OvsdbError(
            "constraint violation",
            f"bridge {bridge}: flow rule '{flow_syntax.format_rule(rule)}' names "
            f"port {missing[0]}, which bridge {bridge} does not have "
            f"(ports: {', '.join(sorted(ports))})",
        )
