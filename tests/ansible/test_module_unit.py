"""The ovs_runtime_config module's own logic, without a daemon (no root)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_module(name: str = "ovs_runtime_config") -> ModuleType:
    path = REPO / f"roles/ovs_runtime_network/library/{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_argv_carries_check_mode_and_state() -> None:
    mod = load_module()
    params = {"db": "unix:/x.sock", "timeout": 5, "state": "replaced", "confirm_timeout": 0}
    argv = mod.apply_argv("/usr/bin/ovsr", params, "/tmp/d.json", check=True)
    assert argv == [
        "/usr/bin/ovsr",
        "--db",
        "unix:/x.sock",
        "--timeout",
        "5",
        "--format",
        "json",
        "apply",
        "--state=replaced",
        "--check",
        "/tmp/d.json",
    ]
    assert "--check" not in mod.apply_argv("ovsr", params, "f", check=False)


def test_interpret_changed_unchanged_and_errors() -> None:
    mod = load_module()
    report = {
        "changed": True,
        "before": {},
        "after": {"br0": {"ports": {}}},
        "diff": ["+ bridge br0"],
    }
    changed = mod.interpret(2, json.dumps(report), "")
    assert changed["changed"] is True and changed["commands"] == ["+ bridge br0"]
    assert '"br0"' in changed["diff"]["after"] and changed["diff"]["before"] == "{}\n"
    same = mod.interpret(0, json.dumps(dict(report, changed=False, diff=[])), "")
    assert same["changed"] is False
    failed = mod.interpret(1, "", "ovsr: d.json: bridge br0 port p.tag: 5000 is out of range\n")
    assert failed == {
        "failed": True,
        "msg": "ovsr: d.json: bridge br0 port p.tag: 5000 is out of range",
    }


def test_probation_and_confirm_arguments() -> None:
    mod = load_module()
    params = {
        "db": "unix:/x.sock",
        "timeout": 5,
        "state": "merged",
        "confirm_timeout": 30,
        "confirm": "tok",
    }
    assert "--confirm-timeout=30" in mod.apply_argv("ovsr", params, "f", check=False)
    assert "--confirm-timeout=30" not in mod.apply_argv("ovsr", params, "f", check=True)
    assert mod.confirm_argv("ovsr", params)[-2:] == ["confirm", "tok"]
    report = {"before": {}, "after": {}, "diff": ["+ bridge br0"], "confirm_token": "tok"}
    assert mod.interpret(2, json.dumps(report), "")["confirm_token"] == "tok"


def test_facts_from_ovsr_json() -> None:
    facts_mod = load_module("ovs_runtime_facts")
    show = {
        "ovs_version": ["0.1.0"],
        "bridges": [
            {
                "name": "br0",
                "ports": [
                    {"name": "vm1", "tag": 10, "interfaces": [{"name": "vm1"}]},
                    {
                        "name": "pa",
                        "interfaces": [{"name": "pa", "type": "patch", "options": {"peer": "pb"}}],
                    },
                ],
            }
        ],
    }
    interfaces = [
        {"name": "vm1", "ofport": [1], "link_state": ["up"], "error": []},
        {"name": "pa", "ofport": [-1], "link_state": [], "error": ["no peer"]},
    ]
    dpif = {"bridges": {"br0": {"mac_table": {"entries": 3}}}}
    facts = facts_mod.build_facts(show, interfaces, dpif)
    assert facts["version"] == "0.1.0"
    br0 = facts["bridges"]["br0"]
    assert br0["fdb_size"] == 3 and br0["fail_mode"] == "standalone"
    assert br0["ports"]["vm1"] == {
        "tag": 10,
        "trunks": [],
        "vlan_mode": None,
        "type": "system",
        "options": {},
        "ofport": 1,
        "link_state": "up",
        "error": None,
        "qos": None,
    }
    assert br0["mirrors"] == {}
    assert br0["ports"]["pa"]["error"] == "no peer" and br0["ports"]["pa"]["type"] == "patch"
    assert facts_mod.build_facts(show, interfaces, None)["bridges"]["br0"]["fdb_size"] is None
