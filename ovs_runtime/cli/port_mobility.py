"""``ovsr port-export PORT`` and ``ovsr port-import FILE [BRIDGE]``: a VM's network state
as one JSON document, so it can follow the VM to another host.

The document (``format: ovs-runtime/port``, ``version: 2``) holds the Port and Interface
rows in RFC 7047 notation (only the configuration columns, port security included), the
port's QoS (type, settings and queues), the flow rules that match on it (``in_port`` is
the port) in ovs-ofctl syntax, its mirror membership (by mirror name: selected as
source, destination, or the output), the port number it had, the MAC addresses learned behind
it with their VLANs, and its counters. Version 1 documents (no QoS, no rules) still
import.

Import re-creates the rows, the QoS and the rules on the named bridge (by default the
one it came from) in one transaction (a rule the target cannot take, say one that outputs
to a port it lacks, fails the whole import), lets the daemon pick a free port number
(``ofport_request`` is not carried over, so the source's number cannot clash), and then
asks the datapath to announce each learned MAC with a RARP broadcast from the port, as
QEMU does after a live migration: the other switches and hosts relearn where the VM is
at once.
"""

from __future__ import annotations

import datetime
import json
import socket
from pathlib import Path
from typing import Any

from ovs_runtime.bridge.flow_rules import COLUMNS as RULE_COLUMNS
from ovs_runtime.bridge.flow_rules import rule_text
from ovs_runtime.cli import apply as apply_cmd
from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.bridge_commands import bridge_key, bridge_of_port, port_key
from ovs_runtime.cli.client import OvsdbClient
from ovs_runtime.cli.command_registry import CommandContext, command
from ovs_runtime.cli.flow_commands import flow_row
from ovs_runtime.cli.model import Model, ModelError
from ovs_runtime.ofproto import flow_syntax
from ovs_runtime.ofproto.flow_match import FlowSyntaxError

FORMAT = "ovs-runtime/port"
VERSION = 2
READABLE_VERSIONS = (1, 2)
PORT_COLUMNS = (
    "name",
    "tag",
    "trunks",
    "vlan_mode",
    "port_security",
    "other_config",
    "external_ids",
)
IFACE_COLUMNS = (
    "name",
    "type",
    "options",
    "mac",
    "mtu_request",
    "other_config",
    "external_ids",
    "ingress_policing_rate",
    "ingress_policing_burst",
)


class PortDocumentError(ValueError):
    """The file is not a port document this version can import."""


def _columns(m: Model, table: str, key: str, names: tuple[str, ...]) -> dict[str, Any]:
    tschema = m.schema.tables[table]
    row = m.rows[table][key]
    values = {}
    for column in names:
        value = vs.to_json(tschema.columns[column].type, row[column])
        if isinstance(value, list) and value[0] == "set" and len(value[1]) == 1:
            value = value[1][0]  # RFC 7047 allows a lone atom for a one-element set
        values[column] = value
    return values


@command("port-export", 1, 1, "port-export PORT  (JSON document on stdout)", writes=False)
def cmd_port_export(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    port = port_key(m, args[0])
    assert port is not None
    bridge = bridge_of_port(m, port)
    if bridge is None:
        raise ModelError(f"port {args[0]} is in no bridge")
    row = m.rows["Port"][port]
    ifaces = [m.key_of(ref) for ref in row["interfaces"]]
    stats = {}
    ofport = None
    for key in ifaces:
        irow = m.rows["Interface"][key]
        stats[irow["name"]] = dict(irow["statistics"])
        ofport = ofport if ofport is not None else (irow["ofport"] or [None])[0]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "source": {"host": socket.gethostname(), "bridge": m.rows["Bridge"][bridge]["name"]},
        "ofport": ofport,
        "port": _columns(m, "Port", port, PORT_COLUMNS),
        "interfaces": [_columns(m, "Interface", k, IFACE_COLUMNS) for k in ifaces],
        "learned_macs": [],  # filled in from the datapath (add_learned_macs)
        "statistics": stats,
        "qos": _port_qos(m, row),
        "flows": _port_flows(m, bridge, row["name"]),
        "mirrors": _port_mirrors(m, bridge, port),
    }
    ctx.emit(json.dumps(doc, indent=2, sort_keys=True), doc)


def _port_qos(m: Model, row: dict[str, Any]) -> dict[str, Any] | None:
    if not row["qos"] or m.key_of(row["qos"][0]) not in m.rows["QoS"]:
        return None
    qos = m.rows["QoS"][m.key_of(row["qos"][0])]
    return {
        "type": qos["type"],
        "other_config": dict(qos["other_config"]),
        "queues": {
            str(qid): {"other_config": dict(m.rows["Queue"][m.key_of(ref)]["other_config"])}
            for qid, ref in sorted(qos["queues"].items())
            if m.key_of(ref) in m.rows["Queue"]
        },
    }


MIRROR_ROLES = ("select_src_port", "select_dst_port", "output_port")


def _port_mirrors(m: Model, bridge: str, port: str) -> dict[str, list[str]]:
    """Mirror name -> the roles the port plays in it (selected as source, destination,
    or the SPAN output)."""
    ref = m.ref("Port", port)
    out = {}
    for mref in m.rows["Bridge"][bridge]["mirrors"]:
        mirror = m.rows["Mirror"].get(m.key_of(mref))
        if mirror is None:
            continue
        roles = [r for r in MIRROR_ROLES if ref in mirror[r]]
        if roles:
            out[str(mirror["name"])] = roles
    return out


def _import_mirrors(m: Model, bridge: str, port: str, wanted: Any, what: str) -> list[str]:
    """Put the port back into the target bridge's mirrors of the same names; returns
    the names this host does not have (reported, since a mirror's output is local)."""
    if not wanted:
        return []
    if not isinstance(wanted, dict):
        raise ModelError(f"{what}: 'mirrors' must map mirror names to roles")
    by_name: dict[str, str] = {}
    for mref in m.rows["Bridge"][bridge]["mirrors"]:
        key = m.key_of(mref)
        if key in m.rows["Mirror"]:
            by_name[str(m.rows["Mirror"][key]["name"])] = key
    missing: list[str] = []
    for name, roles in sorted(wanted.items()):
        if not isinstance(roles, list) or not set(roles) <= set(MIRROR_ROLES):
            raise ModelError(
                f"{what}: mirror {name}: roles must be among {', '.join(MIRROR_ROLES)}"
            )
        if name not in by_name:
            missing.append(name)
            continue
        key = by_name[name]
        for role in roles:
            current = list(m.rows["Mirror"][key][role])
            m.set(
                "Mirror",
                key,
                role,
                [*current, m.ref("Port", port)] if role != "output_port" else [m.ref("Port", port)],
            )
    return missing


def _port_flows(m: Model, bridge: str, port: str) -> list[str]:
    """The bridge's rules that match on the port, in ovs-ofctl syntax."""
    rules = []
    for ref in m.rows["Bridge"][bridge]["flow_rules"]:
        row = m.rows["Flow_Rule"].get(m.key_of(ref))
        if row is None:
            continue
        rule = flow_syntax.parse_rule(rule_text(tuple(row[c] for c in RULE_COLUMNS)))
        if rule.match.in_port == port:
            rules.append(flow_syntax.format_rule(rule))
    return sorted(rules)


def add_learned_macs(client: OvsdbClient, ctx: CommandContext) -> None:
    """port-export, second half: the MACs the datapath learned behind the port, and its
    counters as they are now (the database copy is up to a second old)."""
    doc = ctx.data[0]
    bridge = doc["source"]["bridge"]
    try:
        fdb = client.call("ovsr/fdb-show", [bridge])
        live = client.call("ovsr/dpif-show", [])["bridges"][bridge]["ports"]
    except Exception:  # --datapath none, or a bridge not running: no learned MACs
        fdb, live = [], {}
    counters = live.get(doc["port"]["name"], {})
    for iface in doc["statistics"]:
        doc["statistics"][iface].update(
            {k: v for k, v in counters.items() if k.startswith(("rx_", "tx_"))}
        )
    names = {i["name"] for i in doc["interfaces"]} | {doc["port"]["name"]}
    doc["learned_macs"] = sorted(
        ({"mac": e["mac"], "vlan": e["vlan"]} for e in fdb if e["port_name"] in names),
        key=lambda e: (e["vlan"], e["mac"]),
    )
    ctx.out = [json.dumps(doc, indent=2, sort_keys=True)]


# -- import -----------------------------------------------------------------------------


def read_document(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise PortDocumentError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise PortDocumentError(f"{path} is not JSON: {exc}") from None
    validate_document(doc, path)
    return doc


def validate_document(doc: Any, what: str) -> None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PortDocumentError(f"{what}: not a port document (expected format {FORMAT!r})")
    if doc.get("version") not in READABLE_VERSIONS:
        raise PortDocumentError(
            f"{what}: version {doc.get('version')!r} is not supported (this ovsr reads "
            f"{' and '.join(map(str, READABLE_VERSIONS))})"
        )
    flows = doc.get("flows", [])
    if not isinstance(flows, list) or not all(isinstance(f, str) for f in flows):
        raise PortDocumentError(f"{what}: 'flows' must be a list of rules in ovs-ofctl syntax")
    for number, text in enumerate(flows, 1):
        try:
            flow_syntax.parse_rule(text)
        except FlowSyntaxError as exc:
            raise PortDocumentError(f"{what}: flows[{number}]: {exc}") from None
    port, ifaces = doc.get("port"), doc.get("interfaces")
    if not isinstance(port, dict) or not isinstance(port.get("name"), str):
        raise PortDocumentError(f"{what}: 'port' must be an object with a 'name'")
    if not isinstance(ifaces, list) or len(ifaces) != 1 or not isinstance(ifaces[0], dict):
        raise PortDocumentError(f"{what}: 'interfaces' must hold exactly one interface object")
    for table, row, allowed in (
        ("port", port, PORT_COLUMNS),
        ("interface", ifaces[0], IFACE_COLUMNS),
    ):
        unknown = sorted(set(row) - set(allowed))
        if unknown:
            raise PortDocumentError(
                f"{what}: {table} column(s) {', '.join(unknown)} cannot be imported; "
                f"accepted: {', '.join(allowed)}"
            )
    macs = doc.get("learned_macs", [])
    if not isinstance(macs, list) or not all(_is_mac_entry(e) for e in macs):
        raise PortDocumentError(
            f"{what}: 'learned_macs' must be a list of {{mac: 'xx:xx:xx:xx:xx:xx', vlan: 0-4095}}"
        )


def _is_mac_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("mac"), str):
        return False
    parts = entry["mac"].split(":")
    vlan = entry.get("vlan")
    return (
        len(parts) == 6
        and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts)
        and isinstance(vlan, int)
        and 0 <= vlan <= 4095
    )


def _decode(m: Model, table: str, row: dict[str, Any], what: str) -> dict[str, Any]:
    tschema = m.schema.tables[table]
    values = {}
    for column, value in row.items():
        try:
            values[column] = vs.from_json(tschema.columns[column].type, value)
        except Exception as exc:
            raise ModelError(f"{what}: {table}.{column}: {value!r} is not valid: {exc}") from None
    return values


@command("port-import", 1, 2, "port-import FILE [BRIDGE]")
def cmd_port_import(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    doc = read_document(args[0])
    bridge_name = args[1] if len(args) > 1 else doc.get("source", {}).get("bridge")
    if not isinstance(bridge_name, str):
        raise ModelError(
            f"{args[0]}: no bridge named in the document; give one: port-import FILE BRIDGE"
        )
    bridge = bridge_key(m, bridge_name)
    assert bridge is not None
    name = doc["port"]["name"]
    iface_name = doc["interfaces"][0].get("name", name)
    if port_key(m, name, must_exist=False) is not None:
        raise ModelError(f"port {name} already exists on this host; remove it first (del-port)")
    if m.lookup("Interface", iface_name, must_exist=False) is not None:
        raise ModelError(f"interface {iface_name} already exists on this host")
    iface = m.insert("Interface", _decode(m, "Interface", doc["interfaces"][0], args[0]))
    port_values = _decode(m, "Port", doc["port"], args[0])
    port_values["interfaces"] = [m.ref("Interface", iface)]
    port = m.insert("Port", port_values)
    m.set("Bridge", bridge, "ports", [*m.rows["Bridge"][bridge]["ports"], m.ref("Port", port)])
    if doc.get("qos"):
        try:
            apply_cmd._apply_qos(m, port, apply_cmd._qos(m.schema, doc["qos"], f"{args[0]}: qos"))
        except apply_cmd.ApplyError as exc:
            raise ModelError(str(exc)) from None
    _import_flows(m, bridge, name, doc.get("flows", []), args[0])
    missing_mirrors = _import_mirrors(m, bridge, port, doc.get("mirrors"), args[0])
    summary = {
        "imported": name,
        "bridge": bridge_name,
        "from_host": doc.get("source", {}).get("host"),
        "old_ofport": doc.get("ofport"),
        "learned_macs": doc.get("learned_macs", []),
        "mirrors_not_here": missing_mirrors,
    }
    text = f"imported port {name} into {bridge_name}"
    if missing_mirrors:
        text += f"; not in mirror(s) {', '.join(missing_mirrors)}: this host has none by that name"
    ctx.emit(text, summary)


def _import_flows(m: Model, bridge: str, port: str, flows: list[str], what: str) -> None:
    ports = {port} | {
        m.rows["Port"][m.key_of(ref)]["name"] for ref in m.rows["Bridge"][bridge]["ports"]
    }

    def resolve(text: str) -> str:
        if text in ports:
            return text
        raise FlowSyntaxError(
            f"this host's bridge has no port {text!r} (ports: {', '.join(sorted(ports))})"
        )

    refs = list(m.rows["Bridge"][bridge]["flow_rules"])
    for number, text in enumerate(flows, 1):
        try:
            rule = flow_syntax.parse_rule(text, resolve)
        except FlowSyntaxError as exc:
            raise ModelError(f"{what}: flows[{number}]: {exc}") from None
        values = flow_row(rule)
        key = m.insert("Flow_Rule", values)
        refs.append(m.ref("Flow_Rule", key))
    if flows:
        m.set("Bridge", bridge, "flow_rules", refs)


def announce(client: OvsdbClient, ctx: CommandContext) -> None:
    """port-import, second half: once the port is live, announce its MACs."""
    summary = ctx.data[0]
    rows = client.call(
        "transact",
        [
            "Open_vSwitch",
            {
                "op": "select",
                "table": "Interface",
                "where": [["name", "==", summary["imported"]]],
                "columns": ["ofport"],
            },
        ],
    )[0]["rows"]
    ofport = rows[0]["ofport"] if rows else None
    summary["ofport"] = ofport if isinstance(ofport, int) else None
    entries = [[e["mac"], e["vlan"]] for e in summary["learned_macs"]]
    result = client.call("ovsr/announce", [summary["bridge"], summary["imported"], entries])
    summary["announced"] = result["announced"]
    ctx.out.append(
        f"port number {summary['old_ofport']} -> {summary['ofport']}; "
        f"announced {result['announced']} MAC address(es)"
    )
