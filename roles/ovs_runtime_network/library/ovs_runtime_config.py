#!/usr/bin/python3
"""Ansible module: declarative ovs-runtime bridges and ports, through ``ovsr apply``."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ovs_runtime_config
short_description: Declare ovs-runtime bridges, ports and VLANs in one transaction
description:
  - Sends the desired state to C(ovsr apply), which diffs it against the database and
    applies the difference in one transaction.
  - Values are normalised by column type before comparing, so C(tag: "10") equals
    C(tag: 10) and list order does not matter where it has no meaning.
  - Supports check mode (reports, changes nothing) and diff mode (before and after).
options:
  bridges:
    description: Bridges by name, each with settings and C(ports) (see the operator guide).
    type: dict
  state:
    description:
      - C(merged) creates and sets only what is given (a map such as external_ids gets
        the given keys and keeps the others); C(replaced) makes the given bridges exactly
        as described; C(overridden) also removes bridges not given; C(deleted) removes the
        given bridges, or, when C(ports) is given, only those ports that are on that
        bridge.
    type: str
    choices: [merged, replaced, overridden, deleted]
    default: merged
  db:
    description: The daemon's socket.
    type: str
    default: unix:/run/ovs-runtime/db.sock
  timeout:
    description: Seconds before giving up on the daemon.
    type: int
    default: 30
  confirm_timeout:
    description:
      - Apply on probation; the daemon rolls the change back unless it is confirmed
        within this many seconds (0 = no probation). The token is returned as
        C(confirm_token); confirm it from a fresh connection with I(confirm).
    type: int
    default: 0
  confirm:
    description: Confirm the change with this token (from an earlier C(confirm_token)).
    type: str
"""

EXAMPLES = r"""
- name: Two VMs on VLAN 10 and a trunk uplink
  ovs_runtime_config:
    bridges:
      br0:
        ports:
          vm1: {tag: 10}
          vm2: {tag: 10}
          uplink: {trunks: [10, 20], vlan_mode: trunk}

- name: An active-backup bond of two uplinks, carrying the host's address
  ovs_runtime_config:
    bridges:
      br0:
        ports:
          bond0:
            interfaces: [eth1, eth2]
            trunks: [10, 20]
            bond_updelay: 200
            other_config: {move-addresses: "true", bond-primary: eth1}
    confirm_timeout: 60

- name: An LACP bond to a switch's port-channel, active-backup until the switch speaks
  ovs_runtime_config:
    bridges:
      br0:
        ports:
          bond0:
            interfaces: [eth1, eth2]
            lacp: active
            other_config: {lacp-time: fast, lacp-fallback-ab: "true"}
"""

RETURN = r"""
before:
  description: The managed bridges before the change.
  type: dict
  returned: always
after:
  description: The managed bridges after the change (as they would be, in check mode).
  type: dict
  returned: always
commands:
  description: The differences, one line each.
  type: list
  returned: always
"""

import json
import os
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

EXIT_CHANGED = 2


def apply_argv(ovsr: str, params: dict[str, Any], path: str, check: bool) -> list[str]:
    argv = [
        ovsr,
        "--db",
        params["db"],
        "--timeout",
        str(params["timeout"]),
        "--format",
        "json",
        "apply",
        f"--state={params['state']}",
    ]
    if check:
        argv.append("--check")
    elif params.get("confirm_timeout"):
        argv.append(f"--confirm-timeout={params['confirm_timeout']}")
    return [*argv, path]


def confirm_argv(ovsr: str, params: dict[str, Any]) -> list[str]:
    timeout = str(params["timeout"])
    return [ovsr, "--db", params["db"], "--timeout", timeout, "confirm", params["confirm"]]


def interpret(rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The module result for one ``ovsr apply`` run, or ``{"failed": ..., "msg": ...}``."""
    if rc not in (0, EXIT_CHANGED):
        return {"failed": True, "msg": (stderr or stdout).strip() or f"ovsr exited {rc}"}
    report = json.loads(stdout)
    result: dict[str, Any] = {
        "changed": rc == EXIT_CHANGED,
        "before": report["before"],
        "after": report["after"],
        "commands": report["diff"],
        "diff": {
            "before": json.dumps(report["before"], indent=2, sort_keys=True) + "\n",
            "after": json.dumps(report["after"], indent=2, sort_keys=True) + "\n",
        },
    }
    if "confirm_token" in report:
        result["confirm_token"] = report["confirm_token"]
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "bridges": {"type": "dict"},
            "state": {
                "type": "str",
                "default": "merged",
                "choices": ["merged", "replaced", "overridden", "deleted"],
            },
            "db": {"type": "str", "default": "unix:/run/ovs-runtime/db.sock"},
            "timeout": {"type": "int", "default": 30},
            "confirm_timeout": {"type": "int", "default": 0},
            "confirm": {"type": "str"},
        },
        required_one_of=[["bridges", "confirm"]],
        mutually_exclusive=[["bridges", "confirm"]],
        supports_check_mode=True,
    )
    ovsr = module.get_bin_path("ovsr", required=True)
    if module.params["confirm"]:
        if module.check_mode:
            module.exit_json(changed=False)
        rc, stdout, stderr = module.run_command(confirm_argv(ovsr, module.params))
        if rc != 0:
            module.fail_json(msg=(stderr or stdout).strip())
        module.exit_json(changed=False, confirmed=module.params["confirm"])
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as desired:
        json.dump({"bridges": module.params["bridges"]}, desired)
    try:
        rc, stdout, stderr = module.run_command(
            apply_argv(ovsr, module.params, desired.name, module.check_mode)
        )
    finally:
        os.unlink(desired.name)
    result = interpret(rc, stdout, stderr)
    if result.get("failed"):
        # (ovsr names the file it was given; here that is our temporary copy)
        module.fail_json(msg=result["msg"].replace(f"{desired.name}: ", ""))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
