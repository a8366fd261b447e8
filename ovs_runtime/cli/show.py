"""``ovsr show``: the overview tree ovs-vsctl users know, or the same as JSON."""

from __future__ import annotations

from typing import Any

from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.model import Model


def _fmt(m: Model, table: str, column: str, value: Any) -> str:
    return vs.format_value(m.column_type(table, column), value)


def show_data(m: Model) -> dict[str, Any]:
    """The tree as plain data; the text form is rendered from this."""
    roots = list(m.rows["Open_vSwitch"].items())
    result: dict[str, Any] = {
        "uuid": roots[0][0] if roots else None,
        "managers": [],
        "bridges": [],
    }
    if roots:
        root = roots[0][1]
        result["ovs_version"] = vs.to_plain(root.get("ovs_version", []))
        bridge_keys = [m.key_of(r) for r in root["bridges"]]
        # In UUID order, as ovs-vsctl prints the set.
        for key in sorted(m.key_of(ref) for ref in root["manager_options"]):
            row = m.rows["Manager"].get(key)
            if row is not None:
                manager = {"target": row["target"], "is_connected": row["is_connected"] is True}
                result["managers"].append(manager)
    else:
        bridge_keys = []
    for bkey in sorted(bridge_keys, key=lambda k: str(m.rows["Bridge"][k]["name"])):
        b = m.rows["Bridge"][bkey]
        bridge: dict[str, Any] = {"name": b["name"], "ports": []}
        if b["fail_mode"]:
            bridge["fail_mode"] = b["fail_mode"][0]
        if b["datapath_type"]:
            bridge["datapath_type"] = b["datapath_type"]
        for pref in b["ports"]:
            p = m.rows["Port"].get(m.key_of(pref))
            if p is None:
                continue
            port: dict[str, Any] = {"name": p["name"], "interfaces": []}
            for col in ("tag", "trunks", "vlan_mode"):
                if p[col]:
                    port[col] = vs.to_plain(p[col] if col == "trunks" else p[col][0])
            for iref in p["interfaces"]:
                i = m.rows["Interface"].get(m.key_of(iref))
                if i is None:
                    continue
                iface: dict[str, Any] = {"name": i["name"]}
                if i["type"]:
                    iface["type"] = i["type"]
                if i["options"]:
                    iface["options"] = vs.to_plain(i["options"])
                if i["error"]:
                    iface["error"] = i["error"][0]
                port["interfaces"].append(iface)
            port["interfaces"].sort(key=lambda x: x["name"])
            bridge["ports"].append(port)
        bridge["ports"].sort(key=lambda x: x["name"])
        result["bridges"].append(bridge)
    return result


def show_text(m: Model) -> list[str]:
    data = show_data(m)
    lines = [str(data["uuid"] or "(no Open_vSwitch row: run 'ovsr init')")]
    for manager in data["managers"]:  # as ovs-vsctl show prints them
        lines.append(f"    Manager {vs.format_atom(manager['target'])}")
        if manager["is_connected"]:
            lines.append("        is_connected: true")
    for bridge in data["bridges"]:
        lines.append(f"    Bridge {vs.format_atom(bridge['name'])}")
        if "fail_mode" in bridge:
            lines.append(f"        fail_mode: {bridge['fail_mode']}")
        if "datapath_type" in bridge:
            lines.append(f"        datapath_type: {bridge['datapath_type']}")
        for port in bridge["ports"]:
            lines.append(f"        Port {vs.format_atom(port['name'])}")
            if "tag" in port:
                lines.append(f"            tag: {port['tag']}")
            if "trunks" in port:
                lines.append(f"            trunks: [{', '.join(map(str, port['trunks']))}]")
            if "vlan_mode" in port:
                lines.append(f"            vlan_mode: {port['vlan_mode']}")
            for iface in port["interfaces"]:
                lines.append(f"            Interface {vs.format_atom(iface['name'])}")
                if "type" in iface:
                    lines.append(f"                type: {iface['type']}")
                if "options" in iface:
                    opts = ", ".join(
                        f"{vs.format_atom(k)}={vs.format_atom(v)}"
                        for k, v in sorted(iface["options"].items())
                    )
                    lines.append(f"                options: {{{opts}}}")
                if "error" in iface:
                    lines.append(f'                error: "{iface["error"]}"')
    if data.get("ovs_version"):
        lines.append(f'    ovs_version: "{data["ovs_version"][0]}"')
    return lines
