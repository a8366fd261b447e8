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
    options, ofport, link state, error) and fdb sizes.
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


def build_facts(
    show: dict[str, Any], interfaces: list[dict[str, Any]], dpif: dict[str, Any] | None
) -> dict[str, Any]:
    """Facts from ``ovsr show``, ``list Interface`` and ``dpif-show`` (JSON forms)."""
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
            }
        dp = (dpif or {}).get("bridges", {}).get(bridge["name"], {})
        bridges[bridge["name"]] = {
            "fail_mode": bridge.get("fail_mode", "standalone"),
            "ports": ports,
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
    module.exit_json(
        changed=False, ansible_facts={"ovs_runtime": build_facts(show, interfaces, dpif)}
    )


if __name__ == "__main__":
    main()
