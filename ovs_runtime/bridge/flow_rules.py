"""Flow rules in the configuration database: the ``Flow_Rule`` table.

Each row is one OpenFlow-style rule of the bridge whose ``flow_rules`` column holds it
(deleting the bridge deletes its rules): ``table``, ``priority``, ``cookie``, ``match``
and ``actions`` in ovs-ofctl syntax with ports named, ``idle_timeout``, ``hard_timeout``
and ``created`` (the wall-clock install time). Because the rules are rows, they survive
daemon restarts and reboots, unlike Open vSwitch's.

``check_flow_rules`` runs at commit: a rule that does not parse, names a port its bridge
does not have, or duplicates another rule's table, priority and match fails the whole
transaction with an error naming the rule and the token. ``read_flow_rules`` turns the
rows into parsed specs for the datapath; parses are cached by row content, so 100,000
unchanged rules are not parsed again on every reconciliation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ovs_runtime.db.datum import Row, as_list, members, scalar
from ovs_runtime.ofproto import flow_actions, flow_match, flow_syntax
from ovs_runtime.ofproto.flow_match import FlowSyntaxError
from ovs_runtime.ofproto.flow_syntax import FlowRule


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


def read_flow_rules(tables: dict[str, dict[uuid.UUID, Row]], bridge_row: Row) -> list[FlowRuleSpec]:
    specs = []
    rows = tables["Flow_Rule"]
    for row_uuid in members(bridge_row["flow_rules"]):
        row = rows.get(row_uuid)
        if row is None:
            continue
        try:
            specs.append(parse_row(row_uuid, row))
        except FlowSyntaxError:
            continue  # rows written before the check existed; the check names them
    if len(_parsed) > 2 * max(len(specs), 1024):
        live = {s.uuid for s in specs}
        for stale in [u for u in _parsed if u not in live]:
            del _parsed[stale]
    return specs


def _port_names(view: Any, bridge: Row) -> set[str]:
    names = {scalar(bridge["name"])}
    for port_uuid in as_list(bridge["ports"]):
        port = view.get("Port", port_uuid)
        if port is not None:
            names.add(scalar(port["name"]))
    return names


def _check_canonical(bridge: str, rule_uuid: uuid.UUID, row: Row, rule: FlowRule) -> None:
    """Rows hold the canonical text (what ``ovsr add-flow`` writes), so a rule's
    identity is plain string equality for every client. A row already in canonical
    form parsed to ``rule``, so it is stored faithfully by construction; only a row
    that is not needs the reparse that tells the two errors apart."""
    from ovs_runtime.db.errors import OvsdbError

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


def check_flow_rules(view: Any) -> None:
    from ovs_runtime.db.errors import OvsdbError

    changed_rules = {u for u, row in view.changes.get("Flow_Rule", {}).items() if row is not None}
    changed_bridges = set()
    for bridge_uuid, row in view.changes.get("Bridge", {}).items():
        if row is None:
            continue
        old = view.committed["Bridge"].get(bridge_uuid)
        if old is None or old["flow_rules"].values != row["flow_rules"].values:
            changed_bridges.add(bridge_uuid)
    if not changed_rules and not changed_bridges:
        return
    for bridge_uuid, bridge in view.rows("Bridge"):
        rule_uuids = members(bridge["flow_rules"])
        if bridge_uuid not in changed_bridges and changed_rules.isdisjoint(rule_uuids):
            continue
        name = scalar(bridge["name"])
        ports = _port_names(view, bridge)
        seen: dict[tuple[Any, ...], uuid.UUID] = {}
        for rule_uuid in rule_uuids:
            row = view.get("Flow_Rule", rule_uuid)
            if row is None:
                continue
            try:
                rule = parse_row(rule_uuid, row).rule
            except FlowSyntaxError as exc:
                raise OvsdbError(
                    "constraint violation", f"bridge {name}: flow rule {rule_uuid}: {exc}"
                ) from None
            identity = rule.identity
            if identity in seen:
                raise OvsdbError(
                    "constraint violation",
                    f"bridge {name}: two rules with table {rule.table}, priority "
                    f"{rule.priority} and match '{flow_match.format_match(rule.match)}' "
                    "(a rule replaces the one with the same table, priority and match)",
                )
            seen[identity] = rule_uuid
            if rule_uuid not in changed_rules:
                continue
            _check_canonical(name, rule_uuid, row, rule)
            named = flow_actions.ports_in(rule.actions)
            if rule.match.in_port is not None:
                named.add(rule.match.in_port)
            missing = sorted(named - ports)
            if missing:
                raise OvsdbError(
                    "constraint violation",
                    f"bridge {name}: flow rule '{flow_syntax.format_rule(rule)}' names "
                    f"port {missing[0]}, which bridge {name} does not have "
                    f"(ports: {', '.join(sorted(ports))})",
                )
