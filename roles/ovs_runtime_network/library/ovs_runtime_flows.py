#!/usr/bin/python3
"""Ansible module: a bridge's flow rules, exactly as listed, through ``ovsr replace-flows``."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ovs_runtime_flows
short_description: Make a bridge's flow table exactly the given ovs-ofctl rules
description:
  - Sends the rules to C(ovsr replace-flows), which compares them with the bridge's table
    and changes only what differs, in one transaction; rules left alone keep their
    counters.
  - A bad rule fails the task with ovsr's message (the line and the token) and changes
    nothing.
  - Supports check mode (reports what would change, changes nothing) and diff mode (the
    table's rules before and after, in canonical form, sorted).
options:
  bridge:
    description: The bridge.
    type: str
    required: true
  flows:
    description: Rules in ovs-ofctl syntax, one per item (an empty list removes them all).
    type: list
    elements: str
    required: true
  db:
    description: The daemon's socket.
    type: str
    default: unix:/run/ovs-runtime/db.sock
  timeout:
    description: Seconds before giving up on the daemon.
    type: int
    default: 30
  ports:
    description:
      - Ports the bridge will have (by name) besides those it has now. With them the
        rules are checked without the bridge (C(ovsr check-flows)): in check mode for a
        bridge that does not exist yet, and with I(validate_only).
    type: list
    elements: str
  validate_only:
    description:
      - Only check the rules (syntax, and ports against the bridge's current ones and
        I(ports)); change nothing. The network role does this for every bridge before it
        changes anything, so a bad rule for one bridge cannot leave others half-done.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: An ACL on br-int
  ovs_runtime_flows:
    bridge: br-int
    flows:
      - priority=100,tcp,nw_dst=198.51.100.0/24,tp_dst=22,actions=drop
"""

RETURN = r"""
added:
  description: Rules added.
  type: int
  returned: success
changed_rules:
  description: Rules whose actions, cookie or timeouts changed (replaced).
  type: int
  returned: success
removed:
  description: Rules removed.
  type: int
  returned: success
unchanged:
  description: Rules left alone.
  type: int
  returned: success
"""

import json
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def replace_argv(ovsr: str, params: dict[str, Any], check: bool) -> list[str]:
    argv = [ovsr, "--db", params["db"], "--timeout", str(params["timeout"]), "--format", "json"]
    argv += ["replace-flows"] + (["--check"] if check else []) + [params["bridge"], "-"]
    return argv


def interpret(rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The module result for one ``ovsr replace-flows`` run."""
    if rc != 0:
        return {"failed": True, "msg": (stderr or stdout).strip() or f"ovsr exited {rc}"}
    data = json.loads(stdout)
    counts = {
        "added": data["added"],
        "changed_rules": data["changed"],
        "removed": data["removed"],
        "unchanged": data["unchanged"],
    }
    return {"changed": bool(data["added"] or data["changed"] or data["removed"]), **counts}


def check_argv(ovsr: str, bridge: str, ports: list[str]) -> list[str]:
    return [ovsr, "--format", "json", "check-flows", "-", bridge, *ports]


def current_ports(module: AnsibleModule, ovsr: str) -> list[str] | None:
    """The bridge's interfaces now (a bond's members, not the bond: rules name those), as
    NAME=OFPORT where they have a number (rules may name ports by number), or None if
    there is no such bridge (yet)."""
    params = module.params
    argv = [ovsr, "--db", params["db"], "--timeout", str(params["timeout"])]
    rc, stdout, _stderr = module.run_command([*argv, "br-exists", params["bridge"]])
    if rc == 2:
        return None
    rc, stdout, stderr = module.run_command([*argv, "list-ifaces", params["bridge"]])
    if rc != 0:
        module.fail_json(msg=(stderr or stdout).strip())
    names = [*stdout.split(), params["bridge"]]
    rc, stdout, stderr = module.run_command(
        [*argv, "--format", "json", "--columns=name,ofport", "list", "Interface", *names]
    )
    if rc != 0:
        module.fail_json(msg=(stderr or stdout).strip())
    numbers = {}
    for row in json.loads(stdout):
        ofport = row["ofport"][0] if isinstance(row["ofport"], list) and row["ofport"] else None
        if isinstance(ofport, int) and ofport > 0:
            numbers[row["name"]] = ofport
    return [f"{name}={numbers[name]}" if name in numbers else name for name in names]


def rule_text(record: dict[str, Any]) -> str:
    """A ``dump-flows --format json`` record in ``check-flows``' canonical form."""
    head = [f"cookie={record['cookie']:#x}"] if record["cookie"] else []
    head += [f"table={record['table']}"] if record["table"] else []
    for timeout in ("idle_timeout", "hard_timeout"):
        if record[timeout]:
            head.append(f"{timeout}={record[timeout]}")
    head.append(f"priority={record['priority']}")
    if record["match"]:
        head.append(record["match"])
    return ",".join(head) + " actions=" + record["actions"]


def checked_rules(
    module: AnsibleModule, ovsr: str, text: str, existing: list[str] | None
) -> dict[str, Any]:
    """``ovsr check-flows`` of the rules, against the bridge's ports now (``existing``)
    and the declared ones: their count and canonical form; fails the task on a bad rule."""
    params = module.params
    ports = sorted({*(existing or []), *(params["ports"] or [])})
    rc, stdout, stderr = module.run_command(
        check_argv(ovsr, params["bridge"], ports), data=text, binary_data=True
    )
    if rc != 0:
        module.fail_json(msg=(stderr or stdout).strip() or f"ovsr exited {rc}")
    checked: dict[str, Any] = json.loads(stdout)
    return checked


def lines(rules: list[str]) -> str:
    return "".join(f"{rule}\n" for rule in rules)


def table_diff(module: AnsibleModule, ovsr: str, text: str) -> dict[str, str]:
    """Diff mode: the bridge's rules now, and as they will be."""
    params = module.params
    argv = [ovsr, "--db", params["db"], "--timeout", str(params["timeout"]), "--format", "json"]
    before: list[str] = []
    existing = current_ports(module, ovsr)
    if existing is not None:
        rc, stdout, stderr = module.run_command([*argv, "dump-flows", params["bridge"]])
        if rc != 0:
            module.fail_json(msg=(stderr or stdout).strip())
        before = sorted(rule_text(r) for r in json.loads(stdout) if not r["implicit"])
    after = checked_rules(module, ovsr, text, existing)["canonical"]
    return {"before": lines(before), "after": lines(after)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "bridge": {"type": "str", "required": True},
            "flows": {"type": "list", "elements": "str", "required": True},
            "db": {"type": "str", "default": "unix:/run/ovs-runtime/db.sock"},
            "timeout": {"type": "int", "default": 30},
            "ports": {"type": "list", "elements": "str"},
            "validate_only": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    ovsr = module.get_bin_path("ovsr", required=True)
    params = module.params
    text = "".join(f"{line}\n" for line in params["flows"])
    offline = params["validate_only"] or (module.check_mode and params["ports"] is not None)
    existing = current_ports(module, ovsr) if offline else []
    if params["validate_only"] and existing is None and params["ports"] is None:
        module.fail_json(
            msg=f"bridge {params['bridge']} does not exist and is not among the declared "
            "bridges (ovs_runtime_network_bridges): its rules have nowhere to go"
        )
    if offline and (params["validate_only"] or existing is None):
        checked = checked_rules(module, ovsr, text, existing)
        count = checked["rules"]
        if params["validate_only"]:
            module.exit_json(changed=False, rules=count)
        # Check mode, the bridge not there yet: every rule would be added.
        extra = {}
        if module._diff and count:
            extra["diff"] = {"before": "", "after": lines(checked["canonical"])}
        module.exit_json(
            changed=bool(count), added=count, changed_rules=0, removed=0, unchanged=0, **extra
        )
    diff = table_diff(module, ovsr, text) if module._diff else None
    rc, stdout, stderr = module.run_command(
        replace_argv(ovsr, params, module.check_mode), data=text, binary_data=True
    )
    result = interpret(rc, stdout, stderr)
    if diff is not None and result.get("changed"):
        result["diff"] = diff
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
