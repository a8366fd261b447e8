"""A picture of the running fleet, drawn from live state: each host with its bridges and
ports (read with ``ovsr`` over SSH), the rack's cables, the tunnels of the overlay with
their VNIs and state, the VMs on their TAP ports and the bare-metal servers. Graphviz
(``dot``) renders it to SVG."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from lab import fleet as lab_fleet
from lab.control import LabControl

TUNNEL_TYPES = ("vxlan", "geneve")


BRIDGE_STYLE = "shape=ellipse, style=filled, fillcolor=lightblue"
GUEST_STYLE = "shape=component, style=filled, fillcolor=lightyellow"
METAL_STYLE = "shape=box3d, style=filled, fillcolor=lightgray"


def _quote(text: str) -> str:
    return '"' + text.replace('"', r"\"") + '"'


def _node(host: str, port: str) -> str:
    return _quote(f"{host}:{port}")


def _one(value: Any) -> Any:
    """ovsr's JSON gives an optional column as [] or [value]."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def collect(lab: LabControl) -> dict[str, Any]:
    """host -> {bridge -> [(port, type, state, options, tag)]}, and the guests per host."""
    state: dict[str, Any] = {}
    for host in lab.hosts:
        dpif = json.loads(lab.ssh(host.name, "ovsr --format json dpif-show").stdout)
        ifaces = json.loads(
            lab.ssh(
                host.name, "ovsr --format json --columns=name,options,link_state list Interface"
            ).stdout
        )
        ports = json.loads(
            lab.ssh(host.name, "ovsr --format json --columns=name,tag list Port").stdout
        )
        options = {i["name"]: i["options"] for i in ifaces}
        links = {i["name"]: _one(i["link_state"]) for i in ifaces}
        tags = {p["name"]: _one(p["tag"]) for p in ports}
        guests = lab.ssh(host.name, "ls /run/netns", check=False).stdout.split()
        state[host.name] = {
            "bridges": {
                bridge: [
                    (name, info["type"], links.get(name), options.get(name) or {}, tags.get(name))
                    for name, info in sorted(b["ports"].items())
                ]
                for bridge, b in dpif["bridges"].items()
            },
            "guests": guests,
        }
    return state


def to_dot(state: dict[str, Any]) -> str:
    lines = [
        "graph fleet {",
        '  graph [rankdir=TB, fontname="Helvetica", label="ovs-runtime lab fleet (live state)"];',
        '  node [fontname="Helvetica", fontsize=10, shape=box, style=rounded];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    underlay = {}
    for host, info in state.items():
        lines.append(f"  subgraph {_quote('cluster_' + host)} {{")
        lines.append(f"    label={_quote(host)}; style=rounded; color=gray40;")
        for bridge, ports in info["bridges"].items():
            lines.append(f"    {_node(host, bridge)} [label={_quote(bridge)}, {BRIDGE_STYLE}];")
            for name, kind, _link, options, tag in ports:
                if name == bridge:
                    continue
                label = name + (f"\\ntag {tag}" if isinstance(tag, int) else "")
                shape = "cds" if kind in TUNNEL_TYPES else "box"
                lines.append(f"    {_node(host, name)} [label={_quote(label)}, shape={shape}];")
                lines.append(f"    {_node(host, bridge)} -- {_node(host, name)};")
                if kind in TUNNEL_TYPES and "local_ip" in options:
                    underlay[options["local_ip"]] = host
        for guest in info["guests"]:
            vm = _node(host, "guest-" + guest)
            lines.append(f"    {vm} [label={_quote('VM ' + guest)}, {GUEST_STYLE}];")
            lines.append(f"    {_node(host, guest)} -- {_node(host, 'guest-' + guest)};")
        lines.append("  }")
    drawn = set()
    for host, info in state.items():
        for ports in info["bridges"].values():
            for name, kind, link, options, _tag in ports:
                if kind not in TUNNEL_TYPES:
                    continue
                peer = underlay.get(options.get("remote_ip", ""))
                key = tuple(sorted((host, str(peer)))) + (options.get("key"),)
                if peer is None or key in drawn:
                    continue
                drawn.add(key)
                color = "darkgreen" if link == "up" else "red"
                peer_port = next(
                    (
                        n
                        for bp in state[peer]["bridges"].values()
                        for n, k, _l, o, _t in bp
                        if k in TUNNEL_TYPES
                        and o.get("remote_ip") == options.get("local_ip")
                        and o.get("key") == options.get("key")
                    ),
                    None,
                )
                if peer_port:
                    label = _quote(f"{kind} {options.get('key')}")
                    lines.append(
                        f"  {_node(host, name)} -- {_node(peer, peer_port)} "
                        f"[style=dashed, color={color}, label={label}];"
                    )
    switch = "sw1"
    for host in state:
        if host.startswith("hv"):
            for member, front in (("eth1", host[2:]), ("eth2", str(20 + int(host[2:])))):
                cable = f"{_node(host, member)} -- {_node(switch, 'swp' + front)}"
                lines.append(f'  {cable} [penwidth=2, label="cable (bond0)"];')
    for name, (port, address, _prefix) in lab_fleet.BARE_METAL.items():
        label = _quote(f"bare metal {name}\\n{address}")
        lines.append(f"  {_quote(name)} [label={label}, {METAL_STYLE}];")
        lines.append(f"  {_quote(name)} -- {_node(switch, port)} [penwidth=2];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(lab: LabControl, path: Path) -> Path:
    dot = to_dot(collect(lab))
    path.with_suffix(".dot").write_text(dot)
    subprocess.run(["dot", "-Tsvg", "-o", str(path)], input=dot, text=True, check=True)
    return path
