"""``ovsr/select-flows``: a bridge's rules that a del-flows, mod-flows or dump-flows
filter selects, chosen in the daemon.

The daemon keeps every rule parsed (the reconciler's cache in ``bridge.flow_rules``),
so it can test 100,000 rules against a filter in a fraction of a second, where ``ovsr``
would have to read all their rows and parse each one again. ``ovsr`` sends the filter
with its ports already named (any name the bridge's ports and interfaces have, digits
or not) and gets back, in ``select``'s row format, only the rows the filter selects.
"""

from __future__ import annotations

import uuid
from typing import Any

from ovs_runtime.bridge.flow_rules import COLUMNS, select_rules
from ovs_runtime.db.datum import Row, row_to_json, scalar
from ovs_runtime.db.server import RpcError
from ovs_runtime.ofproto import flow_syntax
from ovs_runtime.ofproto.flow_match import FlowSyntaxError

USAGE = "expected [bridge name, filter text, strict (true or false)]"


def select_flows(tables: dict[str, dict[uuid.UUID, Row]], params: list[Any]) -> dict[str, Any]:
    """``{"rows": [...]}``: each selected rule's ``_uuid`` and rule columns, in the
    order the rules were added."""
    if (
        len(params) != 3
        or not isinstance(params[0], str)
        or not isinstance(params[1], str)
        or not isinstance(params[2], bool)
    ):
        raise RpcError("syntax error", USAGE)
    name, text, strict = params
    bridge = next((row for row in tables["Bridge"].values() if scalar(row["name"]) == name), None)
    if bridge is None:
        raise RpcError("unknown bridge", f"no bridge named {name}")
    ports = _port_names(tables, bridge)

    def resolve(port: str) -> str:
        if port in ports:
            return port
        raise FlowSyntaxError(f"bridge {name} has no port {port!r}")

    try:
        flt = flow_syntax.parse_filter(text, resolve)
    except FlowSyntaxError as exc:
        raise RpcError("syntax error", f"filter {text!r}: {exc}") from None
    chosen = select_rules(tables["Flow_Rule"], bridge, flt, strict)
    columns = list(COLUMNS)
    return {
        "rows": [
            {"_uuid": ["uuid", str(row_uuid)], **row_to_json(row, columns)}
            for row_uuid, row in chosen
        ]
    }


def _port_names(tables: dict[str, dict[uuid.UUID, Row]], bridge: Row) -> set[str]:
    """The names rules may give a bridge's ports: each port's, and a bond's interfaces'
    (ovsr sends the filter with ports already resolved to these)."""
    names = set()
    for atom in bridge["ports"].values:
        port = tables["Port"].get(atom.value)
        if port is None:
            continue
        names.add(scalar(port["name"]))
        for iface_atom in port["interfaces"].values:
            iface = tables["Interface"].get(iface_atom.value)
            if iface is not None:
                names.add(scalar(iface["name"]))
    return names
