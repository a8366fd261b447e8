"""``ovsr`` commands for flow rules, in ovs-ofctl's syntax: ``add-flow``, ``add-flows``,
``mod-flows``, ``del-flows``, ``dump-flows``, ``replace-flows`` and ``trace``.

Rules are rows of the ``Flow_Rule`` table (see ``bridge.flow_rules``), so each command is
one OVSDB transaction: a bad flow, or one bad line in a file, changes nothing. Ports may
be written by name or number; they are stored by name. Like every ``ovsr`` write, the
command returns once the daemon has put the change in force (``--no-wait`` skips that).
Counters come from the running datapath.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.bridge.flow_rules import COLUMNS, rule_text
from ovs_runtime.cli.client import ClientError, OvsdbClient
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto import flow_syntax
from ovs_runtime.ofproto.flow_actions import format_actions
from ovs_runtime.ofproto.flow_match import FlowSyntaxError, format_match
from ovs_runtime.ofproto.flow_syntax import DEFAULT_PRIORITY, FlowFilter, FlowRule
from ovs_runtime.packet.synthesize import build_frame

DB_NAME = "Open_vSwitch"
FLOW_COMMANDS = {
    "add-flow": (2, 2, "add-flow BRIDGE FLOW"),
    "add-flows": (2, 2, "add-flows BRIDGE FILE ('-' for standard input)"),
    "mod-flows": (2, 2, "mod-flows [--strict] BRIDGE FLOW"),
    "del-flows": (1, 2, "del-flows [--strict] BRIDGE [MATCH]"),
    "dump-flows": (1, 2, "dump-flows BRIDGE [MATCH]"),
    "replace-flows": (2, 2, "replace-flows [--check] BRIDGE FILE ('-': standard input)"),
    "trace": (2, 2, "trace BRIDGE FLOW (e.g. in_port=p1,tcp,nw_dst=198.51.100.2,tp_dst=80)"),
    "check-flows": (
        2,
        10000,
        "check-flows FILE BRIDGE [PORT[=OFPORT]]... (no daemon: parse as add-flows would)",
    ),
}
OFFLINE_COMMANDS = {"check-flows"}  # need no daemon
FLOW_OPTIONS = {"del-flows": {"--strict"}, "mod-flows": {"--strict"}, "replace-flows": {"--check"}}
ROW_COLUMNS = COLUMNS  # the rule columns of a Flow_Rule row
NO_RULES = [["_uuid", "==", ["uuid", str(uuid.UUID(int=0))]]]  # a condition no rule meets


class FlowCommandError(Exception):
    pass


@dataclass
class BridgeRules:
    """One bridge's ports and rules, as read from the database."""

    name: str
    uuid: str
    root: str
    ports: set[str] = field(default_factory=set)
    numbers: dict[int, str] = field(default_factory=dict)  # ofport -> port name
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # row UUID -> columns
    _parsed: dict[str, FlowRule] = field(default_factory=dict)

    def rule(self, row_uuid: str) -> FlowRule:
        """The parsed rule of a row (parsed only when a filter needs it)."""
        rule = self._parsed.get(row_uuid)
        if rule is None:
            row = self.rows[row_uuid]
            text = rule_text(tuple(row[c] for c in COLUMNS))
            rule = self._parsed[row_uuid] = flow_syntax.parse_rule(text)
        return rule

    def by_identity(self) -> dict[tuple[Any, ...], str]:
        """(table, priority, canonical match) -> row UUID: the text is canonical, so no
        parsing is needed to find a rule's row."""
        return {(r["table"], r["priority"], r["match"]): u for u, r in self.rows.items()}

    def resolve_port(self, text: str) -> str:
        if text in self.ports:
            return text
        if text.upper() == "LOCAL" and self.name in self.ports:
            return self.name
        if text.isdigit() and int(text) in self.numbers:
            return self.numbers[int(text)]
        raise FlowSyntaxError(
            f"bridge {self.name} has no port {text!r} (ports: {', '.join(sorted(self.ports))})"
        )


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return result.get("rows", [])


def load(client: OvsdbClient, bridge: str, rule_where: list[Any] | None = None) -> BridgeRules:
    """The bridge's ports and its rules; with ``rule_where``, only the rules that match
    that OVSDB condition (``add-flow`` looks up one rule, not 100,000)."""
    rule_select: dict[str, Any] = {
        "op": "select",
        "table": "Flow_Rule",
        "where": rule_where or [],
        "columns": ["_uuid", *ROW_COLUMNS],
    }
    results = client.call(
        "transact",
        [
            DB_NAME,
            {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["_uuid"]},
            {
                "op": "select",
                "table": "Bridge",
                "where": [["name", "==", bridge]],
                "columns": ["_uuid", "ports"] + (["flow_rules"] if rule_where is None else []),
            },
            {
                "op": "select",
                "table": "Port",
                "where": [],
                "columns": ["_uuid", "name", "interfaces"],
            },
            {
                "op": "select",
                "table": "Interface",
                "where": [],
                "columns": ["_uuid", "name", "ofport"],
            },
            rule_select,
        ],
    )
    for result in results:
        if isinstance(result, dict) and result.get("error"):
            raise FlowCommandError(f"cannot read the database: {result['error']}")
    roots, bridges, ports, interfaces, rules = (_rows(r) for r in results)
    if not bridges:
        raise FlowCommandError(f"no bridge named {bridge}")
    row = bridges[0]
    view = BridgeRules(bridge, row["_uuid"][1], roots[0]["_uuid"][1])
    members = {u for _, u in _set(row["ports"])}
    by_uuid = {i["_uuid"][1]: i for i in interfaces}
    for port in ports:
        if port["_uuid"][1] in members:
            ifaces = [by_uuid[u] for _, u in _set(port["interfaces"]) if u in by_uuid]
            bond = len(ifaces) > 1  # rules name a bond's interfaces, not the bond
            if not bond:
                view.ports.add(port["name"])
            for iface in ifaces:
                name = iface["name"] if bond else port["name"]
                if bond:
                    view.ports.add(name)
                number = iface["ofport"]
                if isinstance(number, int) and number > 0:
                    view.numbers[number] = name
    if rule_where is None:
        wanted = {u for _, u in _set(row["flow_rules"])}
    else:
        wanted = _members(client, view.uuid, [r["_uuid"][1] for r in rules])
    for rule_row in rules:
        row_uuid = rule_row["_uuid"][1]
        if row_uuid in wanted:
            view.rows[row_uuid] = rule_row
    return view


def _members(client: OvsdbClient, bridge_uuid: str, candidates: list[str]) -> set[str]:
    """Which of ``candidates`` belong to the bridge (an ``includes`` query each)."""
    if not candidates:
        return set()
    ops = [
        {
            "op": "select",
            "table": "Bridge",
            "where": [
                ["_uuid", "==", ["uuid", bridge_uuid]],
                ["flow_rules", "includes", ["uuid", candidate]],
            ],
            "columns": ["_uuid"],
        }
        for candidate in candidates
    ]
    results = client.call("transact", [DB_NAME, *ops])
    return {c for c, r in zip(candidates, results, strict=True) if _rows(r)}


def _set(value: Any) -> list[Any]:
    if isinstance(value, list) and value and value[0] == "set":
        return list(value[1])
    return [value] if value else []


def flow_row(rule: FlowRule, created: float | None = None) -> dict[str, Any]:
    """The Flow_Rule row of a rule: canonical text, install time ``created`` (now)."""
    return {
        "table": rule.table,
        "priority": rule.priority,
        "cookie": rule.cookie,
        "match": format_match(rule.match),
        "actions": format_actions(rule.actions),
        "idle_timeout": rule.idle_timeout,
        "hard_timeout": rule.hard_timeout,
        "created": time.time() if created is None else created,
    }


def write(
    client: OvsdbClient,
    view: BridgeRules,
    insert: list[FlowRule],
    delete: list[str],
    update: dict[str, FlowRule],
    wait: bool,
    comment: str,
    clear: bool = False,
) -> list[Any]:
    """One transaction: delete, update and insert rows, then (with ``wait``) block until
    the daemon has the new rules in force. With ``clear``, every rule of the bridge goes
    first (the result then starts with the rules it held, read in the same
    transaction). Returns the operations' results."""
    ops: list[dict[str, Any]] = []
    bridge_where = [["_uuid", "==", ["uuid", view.uuid]]]
    if clear:
        ops.append(
            {"op": "select", "table": "Bridge", "where": bridge_where, "columns": ["flow_rules"]}
        )
        ops.append(
            {
                "op": "update",
                "table": "Bridge",
                "where": bridge_where,
                "row": {"flow_rules": ["set", []]},
            }
        )

    def members(mutator: str, refs: list[list[str]]) -> dict[str, Any]:
        return {
            "op": "mutate",
            "table": "Bridge",
            "where": bridge_where,
            "mutations": [["flow_rules", mutator, ["set", refs]]],
        }

    if delete:
        ops.append(members("delete", [["uuid", u] for u in delete]))
    for row_uuid, rule in update.items():
        ops.append(
            {
                "op": "update",
                "table": "Flow_Rule",
                "where": [["_uuid", "==", ["uuid", row_uuid]]],
                "row": {k: v for k, v in flow_row(rule).items() if k != "created"},
            }
        )
    names = []
    now = time.time()  # one install time for the transaction (and one value to parse)
    for n, rule in enumerate(insert):
        names.append(f"rule{n}")
        ops.append(
            {
                "op": "insert",
                "table": "Flow_Rule",
                "row": flow_row(rule, now),
                "uuid-name": names[-1],
            }
        )
    if names:
        ops.append(members("insert", [["named-uuid", n] for n in names]))
    if not ops:
        return []
    root_where = [["_uuid", "==", ["uuid", view.root]]]
    if wait:
        ops.append(
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": root_where,
                "mutations": [["next_cfg", "+=", 1]],
            }
        )
        ops.append(
            {"op": "select", "table": "Open_vSwitch", "where": root_where, "columns": ["next_cfg"]}
        )
    ops.append({"op": "comment", "comment": f"ovsr: {comment}"})
    results = client.call("transact", [DB_NAME, *ops])
    for result in results:
        if isinstance(result, dict) and result.get("error"):
            details = result.get("details") or ""
            raise FlowCommandError(f"transaction failed: {result['error']}: {details}")
    if wait:
        from ovs_runtime.cli.main import wait_for_cur_cfg

        wait_for_cur_cfg(client, results[-2]["rows"][0]["next_cfg"])
    return list(results)


def _read_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise FlowCommandError(f"cannot read {path}: {exc.strerror}") from None


def _dedupe(rules: list[FlowRule]) -> list[FlowRule]:
    """A later rule with the same table, priority and match replaces an earlier one."""
    by_identity: dict[tuple[object, ...], FlowRule] = {}
    for rule in rules:
        by_identity.pop(rule.identity, None)
        by_identity[rule.identity] = rule
    return list(by_identity.values())


def _text_identity(rule: FlowRule) -> tuple[Any, ...]:
    return (rule.table, rule.priority, format_match(rule.match))


def _add(
    client: OvsdbClient, view: BridgeRules, rules: list[FlowRule], wait: bool, comment: str
) -> dict[str, Any]:
    """Add rules; one with the table, priority and match of an existing rule replaces
    it (its counters start again), as with ovs-ofctl."""
    rules = _dedupe(rules)
    existing = view.by_identity()
    replaced = (
        [existing[i] for i in (_text_identity(r) for r in rules) if i in existing]
        if existing
        else []  # (formatting every new rule's match only to find no match is costly)
    )
    write(client, view, rules, replaced, {}, wait, comment)
    return {"bridge": view.name, "added": len(rules) - len(replaced), "replaced": len(replaced)}


def _selected(view: BridgeRules, flt: FlowFilter, strict: bool) -> list[str]:
    if flt.is_empty() and not strict:
        return list(view.rows)
    return [u for u in view.rows if flt.selects(view.rule(u), strict)]


def replace_plan(view: BridgeRules, rules: list[FlowRule]) -> tuple[list[FlowRule], list[str], int]:
    """(rules to insert, rows to delete, unchanged count): only what differs changes.
    Compared as canonical text, so 100,000 stored rules need no parsing."""
    current = view.by_identity()
    insert, delete, unchanged = [], [], 0
    wanted = set()
    for rule in _dedupe(rules):
        identity = _text_identity(rule)
        wanted.add(identity)
        row_uuid = current.get(identity)
        if row_uuid is not None and _same(view.rows[row_uuid], rule):
            unchanged += 1
            continue
        if row_uuid is not None:
            delete.append(row_uuid)
        insert.append(rule)
    delete += [u for identity, u in current.items() if identity not in wanted]
    return insert, delete, unchanged


def _same(row: dict[str, Any], rule: FlowRule) -> bool:
    wanted = flow_row(rule)
    return all(row[c] == wanted[c] for c in ROW_COLUMNS)


def run_flow_command(
    client: OvsdbClient, name: str, args: list[str], opts: dict[str, Any], wait: bool
) -> tuple[Any, list[str]]:
    """Returns (data for --format json, text lines)."""
    strict = bool(opts.get("strict"))
    comment = " ".join([name, *args])
    if name == "trace":
        view = load(client, args[0], rule_where=NO_RULES)
        return trace(client, view, args[1])
    if name == "add-flow":
        ports = load(client, args[0], rule_where=NO_RULES)
        rule = flow_syntax.parse_rule(args[1], ports.resolve_port)
        same = [
            ["table", "==", rule.table],
            ["priority", "==", rule.priority],
            ["match", "==", format_match(rule.match)],
        ]
        data = _add(client, load(client, args[0], rule_where=same), [rule], wait, comment)
        return data, []
    if name == "del-flows" and not strict and (len(args) == 1 or not args[1].strip()):
        # Every rule: no need to read 100,000 rows only to name them all again.
        view = load(client, args[0], rule_where=NO_RULES)
        held = write(client, view, [], [], {}, wait, comment, clear=True)[0]["rows"][0]
        count = len(_set(held["flow_rules"]))
        return {"bridge": view.name, "deleted": count}, [f"{view.name}: {count} rule(s) deleted"]
    if name in ("mod-flows", "del-flows", "dump-flows"):
        return _filtered_command(client, name, args, strict, wait, comment)
    view = load(client, args[0])
    if name == "add-flows":
        rules = flow_syntax.parse_file(_read_file(args[1]), view.resolve_port, args[1])
        data = _add(client, view, rules, wait, comment)
        return data, [f"{view.name}: {data['added']} rule(s) added, {data['replaced']} replaced"]
    if name == "replace-flows":
        rules = flow_syntax.parse_file(_read_file(args[1]), view.resolve_port, args[1])
        insert, delete, unchanged = replace_plan(view, rules)
        if not opts.get("check"):  # --check: report what would change, change nothing
            write(client, view, insert, delete, {}, wait, comment)
        data = {
            "bridge": view.name,
            "added": _new(view, insert),
            "changed": len(insert) - _new(view, insert),
            "removed": len(delete) - (len(insert) - _new(view, insert)),
            "unchanged": unchanged,
            "checked_only": bool(opts.get("check")),
        }
        return data, [
            f"{view.name}: {data['added']} added, {data['changed']} changed, "
            f"{data['removed']} removed, {data['unchanged']} unchanged"
        ]
    raise FlowCommandError(f"unknown flow command {name}")


def _filtered_command(
    client: OvsdbClient, name: str, args: list[str], strict: bool, wait: bool, comment: str
) -> tuple[Any, list[str]]:
    """mod-flows, del-flows and dump-flows: the rules a filter selects, then the change
    or the listing."""
    view = load(client, args[0], rule_where=NO_RULES)
    text = args[1] if len(args) > 1 else ""
    rule = None
    if name == "mod-flows":
        rule = flow_syntax.parse_rule(text, view.resolve_port)
        flt = FlowFilter(
            rule.match, table=rule.table if "table=" in text else None, priority=rule.priority
        )
    else:
        flt = flow_syntax.parse_filter(text, view.resolve_port)
    chosen = select_in_daemon(client, view, flt, strict)
    if chosen is None:  # a daemon without ovsr/select-flows: read and test every rule
        view = load(client, args[0])
        chosen = _selected(view, flt, strict)
    if name == "dump-flows":
        return dump(client, view, flt, chosen)
    if rule is not None:
        updates = {}
        for u in chosen:
            old = view.rule(u)
            updates[u] = FlowRule(
                old.table,
                old.priority,
                old.match,
                rule.actions,
                rule.cookie if "cookie=" in text else old.cookie,
                old.idle_timeout,
                old.hard_timeout,
            )
        write(client, view, [], [], updates, wait, comment)
        return {"bridge": view.name, "modified": len(updates)}, [
            f"{view.name}: {len(updates)} rule(s) modified"
        ]
    write(client, view, [], chosen, {}, wait, comment)
    return {"bridge": view.name, "deleted": len(chosen)}, [
        f"{view.name}: {len(chosen)} rule(s) deleted"
    ]


def select_in_daemon(
    client: OvsdbClient, view: BridgeRules, flt: FlowFilter, strict: bool
) -> list[str] | None:
    """The UUIDs of the rules ``flt`` selects, chosen by the daemon from the rules it
    holds parsed (``ovsr/select-flows``), with their rows added to ``view``; None when
    the daemon cannot choose (an older daemon, or a filter it reads differently)."""
    try:
        result = client.call(
            "ovsr/select-flows", [view.name, flow_syntax.format_filter(flt), strict]
        )
    except ClientError as exc:
        if str(exc).startswith("ovsr/select-flows failed:"):  # the daemon's answer: no
            return None
        raise  # the connection failed: reading every rule would fail the same way
    chosen = []
    for row in _rows(result):
        row_uuid = row["_uuid"][1]
        view.rows[row_uuid] = row
        chosen.append(row_uuid)
    return chosen


def check_flows(args: list[str]) -> tuple[Any, list[str]]:
    """``check-flows FILE BRIDGE [PORT[=OFPORT]]...``: the file parsed as ``add-flows``
    parses it, with the bridge's ports given by name, and by number where they have one
    (``LOCAL`` and the bridge's name are its own port); no daemon is needed, so rules can
    be checked before their bridge exists (Ansible's check mode, before a role changes
    anything; a CI pipeline)."""
    path, bridge = args[0], args[1]
    ports, numbers = {bridge}, {}
    for spec in args[2:]:
        name, _, number = spec.partition("=")
        if number and not number.isdigit():
            raise FlowCommandError(f"check-flows: {spec!r}: expected PORT or PORT=OFPORT")
        ports.add(name)
        if number:
            numbers[number] = name

    def resolve(text: str) -> str:
        if text in ports:
            return text
        if text.upper() == "LOCAL":
            return bridge
        if text in numbers:
            return numbers[text]
        raise FlowSyntaxError(
            f"bridge {bridge} has no port {text!r} (ports: {', '.join(sorted(ports))})"
        )

    rules = _dedupe(flow_syntax.parse_file(_read_file(path), resolve, path))
    canonical = sorted(flow_syntax.format_rule(rule) for rule in rules)
    return {"rules": len(rules), "canonical": canonical}, [
        f"{path}: {len(rules)} rule(s), all valid"
    ]


def _new(view: BridgeRules, insert: list[FlowRule]) -> int:
    identities = view.by_identity()
    return sum(1 for r in insert if _text_identity(r) not in identities)


def dump(
    client: OvsdbClient, view: BridgeRules, flt: FlowFilter, chosen: list[str]
) -> tuple[Any, list[str]]:
    """The ``chosen`` rules (those ``flt`` selects) with their counters, and the implicit
    default rule of a standalone bridge if ``flt`` selects it."""
    try:
        # The chosen rules' counters only (a daemon that predates that sends them all).
        stats = {s["uuid"]: s for s in client.call("ovsr/flow-stats", [view.name, chosen])}
    except ClientError:  # no datapath (--datapath none): rules without counters
        stats = {}
    rows: list[tuple[dict[str, Any], Any, str | None]] = [
        (view.rows[u], stats.get(u, {}), u) for u in chosen
    ]
    implicit = stats.get(None)
    if implicit is not None:
        default = flow_syntax.parse_rule("priority=0 actions=NORMAL")
        if flt.selects(default, strict=False):
            rows.append((flow_row(default), implicit, None))
    rows.sort(key=lambda e: (e[0]["table"], -e[0]["priority"]))
    data, lines = [], []
    for row, stat, rule_uuid in rows:
        record = {
            "uuid": rule_uuid,
            "implicit": rule_uuid is None,
            **{c: row[c] for c in ROW_COLUMNS},
            "n_packets": stat.get("n_packets", 0),
            "n_bytes": stat.get("n_bytes", 0),
            "duration": stat.get("duration"),
            "idle_age": stat.get("idle_age"),
        }
        data.append(record)
        head = [f" cookie={row['cookie']:#x}"]
        if record["duration"] is not None:
            head.append(f"duration={record['duration']:.3f}s")
        head += [
            f"table={row['table']}",
            f"n_packets={record['n_packets']}",
            f"n_bytes={record['n_bytes']}",
        ]
        if row["idle_timeout"]:
            head.append(f"idle_timeout={row['idle_timeout']}")
        if row["hard_timeout"]:
            head.append(f"hard_timeout={row['hard_timeout']}")
        if record["idle_age"] is not None:
            head.append(f"idle_age={int(record['idle_age'])}")
        # As ovs-ofctl: the default priority (32768) is not printed.
        fields = [] if row["priority"] == DEFAULT_PRIORITY else [f"priority={row['priority']}"]
        fields += [record["match"]] if record["match"] else []
        note = "  (fail_mode standalone)" if rule_uuid is None else ""
        lines.append(
            ", ".join([*head, ",".join(fields)] if fields else head)
            + f" actions={record['actions']}{note}"
        )
    return data, lines


def packet_values(match: Any) -> dict[int, int]:
    """The exact field values a trace describes (masks are not allowed there)."""
    values = {}
    for index, (value, mask) in match.fields.items():
        if index == fk.VLAN_TCI:
            if mask & 0x0FFF != 0x0FFF and value:
                raise FlowSyntaxError("trace: give dl_vlan as a number")
            values[index] = value
            continue
        if mask != fk.FULL[index] and not (index == fk.NW_TOS and mask == 0xFC):
            raise FlowSyntaxError(
                "trace: a packet has exact values; masks and prefixes are for rules"
            )
        values[index] = value
    return values


def trace(client: OvsdbClient, view: BridgeRules, text: str) -> tuple[Any, list[str]]:
    flt = flow_syntax.parse_filter(text, view.resolve_port)
    if flt.match.in_port is None:
        raise FlowSyntaxError("trace: say where the packet enters, with in_port=PORT")
    frame = build_frame(packet_values(flt.match))
    result = client.call("ovsr/trace", [view.name, flt.match.in_port, frame.hex()])
    lines = [
        f"Flow: {format_match(flt.match)}",
        f'bridge("{view.name}")',
        "-" * (len(view.name) + 10),
    ]
    for step in result["steps"] or []:
        indent = "    " * step["depth"]
        kind = step["step"]
        if kind == "port_security":
            lines.append(f"{indent}port security: {step['verdict']}")
        elif kind == "table":
            rule = step["rule"]
            if rule is None:
                lines.append(f"{indent}{step['table']:>2}. no rule matched: drop")
            else:
                match = rule["match"] or "(any)"
                extra = " (fail_mode standalone)" if rule["implicit"] else ""
                lines.append(
                    f"{indent}{step['table']:>2}. priority {rule['priority']}, {match}{extra}"
                )
        elif kind == "action":
            lines.append(f"{indent}{step['action']}")
        elif kind == "output":
            via = f" by NORMAL, {step['vlan']}" if step.get("via") else ""
            lines.append(f"{indent}-> output to {step['port']}{via}")
        elif kind == "final":
            lines.append(f"{indent}no output: dropped")
        else:
            lines.append(f"{indent}{step.get('detail', kind)}")
    lines.append("")
    lines.append(f"Megaflow: {result['megaflow']}")
    if result["outputs"]:
        outs = []
        for out in result["outputs"]:
            vlan = f" vlan {out['vlan']}" if out["vlan"] is not None else ""
            rewrite = " (rewritten)" if out["rewritten"] else ""
            outs.append(f"{out['port']}{vlan}{rewrite}")
        lines.append("Datapath actions: output to " + ", ".join(outs))
    else:
        reason = f" ({result['drop_reason']})" if result.get("drop_reason") else ""
        lines.append(f"Datapath actions: drop{reason}")
    return result, lines
