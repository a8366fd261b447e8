#!/usr/bin/python3
"""Ansible module: what ovs-runtime runs on a host, as facts."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ovs_runtime_facts
short_description: Gather ovs-runtime bridges, ports, VLANs, interface status and MAC tables
description:
  - Reads the database and the running datapath through C(ovsr) and returns
    C(ansible_facts.ovs_runtime). Read-only; supports check mode.
options:
  db:
    description: The daemon's socket.
    type: str
    default: unix:/run/ovs-runtime/db.sock
  timeout:
    description: Seconds before giving up on the daemon.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Gather ovs-runtime facts
  ovs_runtime_facts:

- name: Every bridge has its ports up
  ansible.builtin.assert:
    that: ansible_facts.ovs_runtime.bridges.br0.ports.vm1.link_state == "up"
"""

RETURN = r"""
ansible_facts:
  description: C(ovs_runtime) with version, bridges (ports, VLANs, interface type,
    options, ofport, link state, error, QoS), their mirrors and fdb sizes.
  type: dict
  returned: always
"""

import json
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def ovsr_json(module: AnsibleModule, ovsr: str, *args: str) -> Any:
    argv = [
        ovsr,
        "--db",
        module.params["db"],
        "--timeout",
        str(module.params["timeout"]),
        "--format",
        "json",
        *args,
    ]
    rc, stdout, stderr = module.run_command(argv)
    if rc != 0:
        module.fail_json(msg=(stderr or stdout).strip())
    return json.loads(stdout)


def _first(value: Any) -> Any:
    """An optional column's value (a list of none or one, in ``--format json``)."""
    return value[0] if isinstance(value, list) and value else None


def qos_and_mirrors(tables: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], ...]:
    """(QoS by port name, mirrors by bridge name) from ``list Port``, ``QoS``,
    ``Queue``, ``Mirror`` and ``Bridge`` (JSON forms), ports named rather than by UUID."""
    port_names = {row["_uuid"]: row["name"] for row in tables["Port"]}
    queues = {row["_uuid"]: row["other_config"] for row in tables["Queue"]}
    qos_rows = {row["_uuid"]: row for row in tables["QoS"]}
    qos: dict[str, Any] = {}
    for port in tables["Port"]:
        row = qos_rows.get(_first(port["qos"]))
        if row is not None:
            qos[port["name"]] = {
                "type": row["type"],
                "other_config": row["other_config"],
                "queues": {str(k): queues.get(v, {}) for k, v in row["queues"].items()},
            }
    mirror_rows = {row["_uuid"]: row for row in tables["Mirror"]}
    mirrors: dict[str, Any] = {}
    for bridge in tables["Bridge"]:
        found = {}
        for ref in bridge["mirrors"]:
            row = mirror_rows.get(ref)
            if row is None:
                continue
            found[row["name"]] = {
                "select_all": row["select_all"],
                "select_src_port": sorted(port_names.get(u, u) for u in row["select_src_port"]),
                "select_dst_port": sorted(port_names.get(u, u) for u in row["select_dst_port"]),
                "select_vlan": row["select_vlan"],
                "output_port": port_names.get(_first(row["output_port"])),
                "output_vlan": _first(row["output_vlan"]),
            }
        mirrors[bridge["name"]] = found
    return qos, mirrors


def build_facts(
    show: dict[str, Any],
    interfaces: list[dict[str, Any]],
    dpif: dict[str, Any] | None,
    extra: tuple[dict[str, Any], ...] = ({}, {}),
) -> dict[str, Any]:
    """Facts from ``ovsr show``, ``list Interface`` and ``dpif-show`` (JSON forms), and
    ``extra`` = ``qos_and_mirrors(...)``."""
    qos, mirrors = extra
    status = {row["name"]: row for row in interfaces}
    bridges: dict[str, Any] = {}
    for bridge in show["bridges"]:
        ports: dict[str, Any] = {}
        for port in bridge["ports"]:
            iface = port["interfaces"][0] if port["interfaces"] else {"name": port["name"]}
            row = status.get(iface["name"], {})
            ports[port["name"]] = {
                "tag": port.get("tag"),
                "trunks": port.get("trunks", []),
                "vlan_mode": port.get("vlan_mode"),
                "type": iface.get("type", "system"),
                "options": iface.get("options", {}),
                "ofport": (row.get("ofport") or [None])[0],
                "link_state": (row.get("link_state") or [None])[0],
                "error": (row.get("error") or [None])[0],
                "qos": qos.get(port["name"]),
            }
        dp = (dpif or {}).get("bridges", {}).get(bridge["name"], {})
        bridges[bridge["name"]] = {
            "fail_mode": bridge.get("fail_mode", "standalone"),
            "ports": ports,
            "mirrors": mirrors.get(bridge["name"], {}),
            "fdb_size": dp.get("mac_table", {}).get("entries"),
        }
    version = show.get("ovs_version") or [None]
    return {"version": version[0], "bridges": bridges}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "db": {"type": "str", "default": "unix:/run/ovs-runtime/db.sock"},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    ovsr = module.get_bin_path("ovsr", required=True)
    show = ovsr_json(module, ovsr, "show")
    interfaces = ovsr_json(
        module, ovsr, "--columns=name,ofport,link_state,error", "list", "Interface"
    )
    argv = [ovsr, "--db", module.params["db"], "--format", "json", "dpif-show"]
    rc, stdout, _ = module.run_command(argv)
    dpif = json.loads(stdout) if rc == 0 else None  # a daemon without a datapath has none
    tables = {
        "Port": ovsr_json(module, ovsr, "--columns=_uuid,name,qos", "list", "Port"),
        "QoS": ovsr_json(module, ovsr, "list", "QoS"),
        "Queue": ovsr_json(module, ovsr, "list", "Queue"),
        "Mirror": ovsr_json(module, ovsr, "list", "Mirror"),
        "Bridge": ovsr_json(module, ovsr, "--columns=name,mirrors", "list", "Bridge"),
    }
    facts = build_facts(show, interfaces, dpif, qos_and_mirrors(tables))
    module.exit_json(changed=False, ansible_facts={"ovs_runtime": facts})


if __name__ == "__main__":
    main()
