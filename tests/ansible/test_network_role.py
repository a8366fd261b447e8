"""The ovs_runtime_network role with real ansible-playbook against a real daemon:
changed then unchanged, check mode, diff mode, "10" vs 10, and bad variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon_process import DaemonProcess

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def playbook(
    daemon: DaemonProcess,
    tmp: Path,
    variables: dict[str, Any],
    *extra: str,
    book: str = "network.yml",
) -> tuple[int, str, int]:
    """Run a playbook on localhost; (exit code, output, changed count)."""
    vars_file = tmp / "vars.yml"
    vars_file.write_text(yaml.safe_dump({"ovs_runtime_network_db": daemon.db, **variables}))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{vars_file}",
            str(REPO / "playbooks" / book),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=REPO,
    )
    match = re.search(r"changed=(\d+)", proc.stdout)
    return proc.returncode, proc.stdout + proc.stderr, int(match.group(1)) if match else -1


BRIDGES = {
    "br0": {
        "fail_mode": "standalone",
        "ports": {
            "vm1": {"tag": 10},
            "vm2": {"tag": 10},
            "uplink": {"trunks": [20, 10], "vlan_mode": "trunk"},
        },
    }
}


def ports(daemon: DaemonProcess) -> dict[str, Any]:
    rows = json.loads(
        daemon.ovsr("--format", "json", "--columns=name,tag,trunks", "list", "Port").stdout
    )
    return {r["name"]: (r["tag"], r["trunks"]) for r in rows}


def test_changed_then_unchanged_with_string_numbers(daemon: DaemonProcess, tmp_path: Path) -> None:
    rc, out, changed = playbook(daemon, tmp_path, {"ovs_runtime_network_bridges": BRIDGES})
    assert rc == 0 and changed == 1, out
    assert ports(daemon)["uplink"] == ([], [10, 20])
    rc, out, changed = playbook(daemon, tmp_path, {"ovs_runtime_network_bridges": BRIDGES})
    assert rc == 0 and changed == 0, out
    as_strings = json.loads(json.dumps(BRIDGES).replace("10", '"10"'))
    rc, out, changed = playbook(daemon, tmp_path, {"ovs_runtime_network_bridges": as_strings})
    assert rc == 0 and changed == 0, out  # "10" and 10 are the same VLAN


def test_check_and_diff_mode(daemon: DaemonProcess, tmp_path: Path) -> None:
    playbook(daemon, tmp_path, {"ovs_runtime_network_bridges": BRIDGES})
    edited = json.loads(json.dumps(BRIDGES))
    edited["br0"]["ports"]["vm2"]["tag"] = 30
    rc, out, changed = playbook(
        daemon, tmp_path, {"ovs_runtime_network_bridges": edited}, "--check", "--diff"
    )
    assert rc == 0 and changed == 1, out
    assert ports(daemon)["vm2"] == ([10], [])  # check mode changed nothing
    assert re.search(r"^-\s+10$", out, re.M) and re.search(r"^\+\s+30$", out, re.M), out


def test_bad_variables_are_rejected_before_any_change(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    bad_state = {"ovs_runtime_network_bridges": BRIDGES, "ovs_runtime_network_state": "sideways"}
    rc, out, _ = playbook(daemon, tmp_path, bad_state)
    assert rc != 0 and "ovs_runtime_network_state" in out and "sideways" in out, out
    bad_type = {"ovs_runtime_network_bridges": ["br0"]}
    rc, out, _ = playbook(daemon, tmp_path, bad_type)
    assert rc != 0 and "ovs_runtime_network_bridges" in out, out
    bad_tag = {"ovs_runtime_network_bridges": {"br0": {"ports": {"vm1": {"tag": 5000}}}}}
    rc, out, _ = playbook(daemon, tmp_path, bad_tag)
    assert rc != 0 and "bridge br0 port vm1.tag: 5000 is out of range" in out, out
    assert daemon.ovsr("list-br").stdout.strip() == ""  # nothing was applied


def test_confirmed_over_a_fresh_connection(daemon: DaemonProcess, tmp_path: Path) -> None:
    variables = {"ovs_runtime_network_bridges": BRIDGES, "ovs_runtime_network_confirm_timeout": 3}
    rc, out, changed = playbook(daemon, tmp_path, variables)
    assert rc == 0 and changed == 1, out
    assert "Confirm the change from the fresh connection" in out
    assert re.search(r"change \S+ confirmed", daemon.log())
    import time

    time.sleep(4)  # past the probation: the confirmed change stays
    assert ports(daemon)["uplink"] == ([], [10, 20])
    assert "not confirmed in time" not in daemon.log()


def test_facts_and_verify_playbook(daemon: DaemonProcess, tmp_path: Path) -> None:
    variables = {"ovs_runtime_network_bridges": BRIDGES}
    assert playbook(daemon, tmp_path, variables)[0] == 0
    rc, out, _ = playbook(daemon, tmp_path, variables, book="verify.yml")
    assert rc == 0, out
    assert daemon.ovsr("set", "Port", "vm2", "tag=99").returncode == 0  # drift
    rc, out, _ = playbook(daemon, tmp_path, variables, book="verify.yml")
    assert rc != 0 and "wrong VLAN tags on ['vm2']" in out, out


def flows(daemon: DaemonProcess) -> list[str]:
    rows = json.loads(daemon.ovsr("--format", "json", "dump-flows", "br0").stdout)
    return sorted(f"{r['priority']} {r['match']} {r['actions']}" for r in rows if not r["implicit"])


def test_flow_rules_replace_only_differences_and_honour_check_mode(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    acl = [
        "priority=100,tcp,nw_dst=198.51.100.0/24,tp_dst=22,actions=drop",
        "priority=90,in_port=vm1,dl_vlan=10 actions=NORMAL",
    ]
    variables: dict[str, Any] = {
        "ovs_runtime_network_bridges": BRIDGES,
        "ovs_runtime_network_flows": {"br0": acl},
    }
    rc, out, changed = playbook(daemon, tmp_path, variables)
    assert rc == 0 and changed == 2, out  # the bridge, then its rules
    assert flows(daemon) == [
        "100 tcp,nw_dst=198.51.100.0/24,tp_dst=22 drop",
        "90 in_port=vm1,dl_vlan=10 NORMAL",
    ]
    rc, out, changed = playbook(daemon, tmp_path, variables)
    assert rc == 0 and changed == 0, out  # same rules: nothing to do
    variables["ovs_runtime_network_flows"] = {"br0": acl[:1]}
    rc, out, changed = playbook(daemon, tmp_path, variables, "--check")
    assert rc == 0 and changed == 1, out
    assert len(flows(daemon)) == 2, "check mode changed nothing"
    rc, out, changed = playbook(daemon, tmp_path, variables)
    assert rc == 0 and changed == 1 and len(flows(daemon)) == 1, out
    variables["ovs_runtime_network_flows"] = {
        "br0": [*acl[:1], "priority=5,ip,nw_src=1.2.3 actions=drop"]
    }
    rc, out, _ = playbook(daemon, tmp_path, variables)
    assert rc != 0 and "line 2: field nw_src: '1.2.3' is not an IPv4 address" in out, out
    assert len(flows(daemon)) == 1, "a bad rule changes nothing"


def test_a_bad_rule_for_one_bridge_changes_no_bridge(daemon: DaemonProcess, tmp_path: Path) -> None:
    """Every bridge's rules are checked before anything changes: a bad rule for brnew
    must not leave br0 with its new table and brnew half-made."""
    rc, out, _ = playbook(daemon, tmp_path, {"ovs_runtime_network_bridges": BRIDGES})
    assert rc == 0, out
    variables: dict[str, Any] = {
        "ovs_runtime_network_bridges": {**BRIDGES, "brnew": {"ports": {"vmx": {"tag": 5}}}},
        "ovs_runtime_network_flows": {
            "br0": ["priority=10,ip,actions=drop"],
            "brnew": ["priority=10,in_port=vmx,actions=NORMAL", "priority=5,ip,actions=BOGUS"],
        },
    }
    rc, out, changed = playbook(daemon, tmp_path, variables)
    assert rc != 0 and "unknown action 'BOGUS'" in out, out
    assert daemon.ovsr("list-br").stdout.split() == ["br0"], "brnew was not created"
    assert flows(daemon) == [], "br0's table was not touched"
    variables["ovs_runtime_network_flows"] = {"brmissing": ["priority=1,actions=drop"]}
    rc, out, _ = playbook(daemon, tmp_path, variables)
    assert rc != 0 and "bridge brmissing does not exist and is not among the declared" in out


def test_check_mode_of_a_first_deployment_with_flow_rules(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """Nothing exists yet: check mode must say what would change, not fail because the
    bridge the rules are for is not there."""
    variables: dict[str, Any] = {
        "ovs_runtime_network_bridges": {"brnew": {"ports": {"vmx": {"tag": 5}}}},
        "ovs_runtime_network_flows": {"brnew": ["priority=10,in_port=vmx,actions=NORMAL"]},
    }
    rc, out, changed = playbook(daemon, tmp_path, variables, "--check")
    assert rc == 0 and changed == 2, out  # the bridge, and its one rule
    assert daemon.ovsr("list-br").stdout.split() == [], "check mode changed nothing"
    variables["ovs_runtime_network_flows"] = {"brnew": ["priority=10,in_port=vmy,actions=drop"]}
    rc, out, _ = playbook(daemon, tmp_path, variables, "--check")
    assert rc != 0 and "bridge brnew has no port 'vmy'" in out, out


def test_flow_rules_given_as_a_string_are_refused_clearly(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    variables: dict[str, Any] = {
        "ovs_runtime_network_bridges": BRIDGES,
        "ovs_runtime_network_flows": {"br0": "priority=100,ip,actions=drop"},
    }
    rc, out, _ = playbook(daemon, tmp_path, variables)
    assert rc != 0 and "ovs_runtime_network_flows.br0 must be a list of rules" in out, out
    assert daemon.ovsr("list-br").stdout.split() == [], "nothing was changed"


def test_flow_rules_in_diff_mode(daemon: DaemonProcess, tmp_path: Path) -> None:
    """--diff shows the table's rules before and after, canonical and sorted."""
    first = ["priority=100,tcp,nw_dst=198.51.100.0/24,tp_dst=22,actions=drop"]
    variables: dict[str, Any] = {
        "ovs_runtime_network_bridges": BRIDGES,
        "ovs_runtime_network_flows": {"br0": first},
    }
    rc, out, _ = playbook(daemon, tmp_path, variables, "--diff")
    assert rc == 0, out
    assert "+priority=100,tcp,nw_dst=198.51.100.0/24,tp_dst=22 actions=drop" in out, out
    variables["ovs_runtime_network_flows"] = {"br0": ["priority=90,in_port=vm1 actions=NORMAL"]}
    rc, out, _ = playbook(daemon, tmp_path, variables, "--check", "--diff")
    assert rc == 0, out
    assert "-priority=100,tcp,nw_dst=198.51.100.0/24,tp_dst=22 actions=drop" in out, out
    assert "+priority=90,in_port=vm1 actions=NORMAL" in out, out
    assert len(flows(daemon)) == 1, "check mode changed nothing"


def test_flow_rules_may_name_existing_ports_by_number(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """The role's check before any change knows the numbers of the ports that exist."""
    rc, out, _ = playbook(daemon, tmp_path, {"ovs_runtime_network_bridges": BRIDGES})
    assert rc == 0, out
    number = daemon.ovsr("get", "Interface", "vm1", "ofport").stdout.strip()
    variables: dict[str, Any] = {
        "ovs_runtime_network_bridges": BRIDGES,
        "ovs_runtime_network_flows": {"br0": [f"priority=5,in_port={number},actions=drop"]},
    }
    rc, out, changed = playbook(daemon, tmp_path, variables)
    assert rc == 0 and changed == 1, out
    assert flows(daemon) == ["5 in_port=vm1 drop"]


def test_facts_include_mirrors_and_qos(daemon: DaemonProcess, tmp_path: Path) -> None:
    bridges = {
        "br0": {
            "ports": {
                "vm1": {
                    "tag": 10,
                    "qos": {"type": "linux-htb", "other_config": {"max-rate": 2000000}},
                },
                "vm2": {"tag": 10},
            },
            "mirrors": {"m0": {"select_src_port": ["vm1"], "output_port": "vm2"}},
        }
    }
    assert playbook(daemon, tmp_path, {"ovs_runtime_network_bridges": bridges})[0] == 0
    dump = tmp_path / "facts.json"
    book = tmp_path / "facts.yml"
    book.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Facts",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {"name": "Gather", "ovs_runtime_facts": {"db": daemon.db}},
                        {
                            "name": "Keep",
                            "ansible.builtin.copy": {
                                "content": "{{ ansible_facts.ovs_runtime | to_json }}",
                                "dest": str(dump),
                            },
                        },
                    ],
                }
            ]
        )
    )
    rc, out, _ = playbook(daemon, tmp_path, {}, book=str(book))
    assert rc == 0, out
    facts = json.loads(dump.read_text())["bridges"]["br0"]
    assert facts["mirrors"]["m0"]["select_src_port"] == ["vm1"]
    assert facts["mirrors"]["m0"]["output_port"] == "vm2"
    assert facts["ports"]["vm1"]["qos"]["other_config"] == {"max-rate": "2000000"}
    assert facts["ports"]["vm2"]["qos"] is None
