"""What an inventory declares for one host, computed independently of the role: the
bridges and ports from ``ovs_runtime_network_bridges`` plus the overlay mesh (one VXLAN
port per other host of the mesh group and logical network), in the shape the checks
compare against the running switch."""

from __future__ import annotations

from typing import Any

from fleet.inventory import host_variables

NAMES = (
    "ovs_runtime_network_bridges",
    "ovs_runtime_network_flows",
    "ovs_runtime_network_mesh_group",
    "ovs_runtime_network_mesh_bridge",
    "ovs_runtime_network_logical_networks",
    "ovs_runtime_network_underlay_ip",
    "ovs_runtime_install_version",
    "lab_guests",
    "lab_guest_mtu",
    "lab_networks",
    "groups",
)


def host_vars(inventory: list[str], host: str) -> dict[str, Any]:
    return host_variables(inventory, host, NAMES)


def declared_bridges(inventory: list[str], host: str) -> dict[str, dict[str, dict[str, Any]]]:
    """bridge -> port -> {tag, trunks, vlan_mode, type, options} as declared."""
    v = host_vars(inventory, host)
    bridges: dict[str, dict[str, dict[str, Any]]] = {}
    for bridge, body in (v.get("ovs_runtime_network_bridges") or {}).items():
        bridges[bridge] = {
            name: dict(port or {}) for name, port in (body.get("ports") or {}).items()
        }
    group = v.get("ovs_runtime_network_mesh_group") or ""
    networks = v.get("ovs_runtime_network_logical_networks") or []
    if group and networks:
        mesh = bridges.setdefault(v.get("ovs_runtime_network_mesh_bridge") or "br-int", {})
        for peer in sorted(v["groups"][group]):
            if peer == host:
                continue
            remote = host_vars(inventory, peer)["ovs_runtime_network_underlay_ip"]
            for net in networks:
                mesh[f"vx{net['vni']}-{peer}"[:15]] = {
                    "type": "vxlan",
                    "tag": net["vlan"],
                    "options": {
                        "remote_ip": remote,
                        "local_ip": v["ovs_runtime_network_underlay_ip"],
                        "key": str(net["vni"]),
                    },
                }
    return bridges
