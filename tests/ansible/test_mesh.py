"""The overlay mesh from the inventory: three "hosts" (each its own real daemon, reached
with a local connection), then a fourth added; every host ends up with exactly one VXLAN
port per other host and logical network, and a re-run changes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.daemon_process import DaemonProcess

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
NETWORKS = [
    {"name": "tenant-a", "vlan": 10, "vni": 5010},
    {"name": "tenant-b", "vlan": 20, "vni": 5020},
]


def inventory(tmp: Path, daemons: dict[str, DaemonProcess]) -> Path:
    hosts = {
        name: {
            "ansible_connection": "local",
            "ovs_runtime_network_db": d.db,
            "ovs_runtime_network_underlay_ip": f"203.0.113.{n}",
        }
        for n, (name, d) in enumerate(sorted(daemons.items()), 1)
    }
    doc = {
        "all": {
            "children": {"hypervisors": {"hosts": hosts}},
            "vars": {
                "ansible_python_interpreter": "/usr/bin/python3",
                "ovs_runtime_network_mesh_group": "hypervisors",
                "ovs_runtime_network_logical_networks": NETWORKS,
                "ovs_runtime_network_bridges": {"br-int": {"ports": {"vm1": {"tag": 10}}}},
            },
        }
    }
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run(tmp: Path, daemons: dict[str, DaemonProcess]) -> tuple[int, str]:
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory(tmp, daemons)),
            str(REPO / "playbooks/network.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    return proc.returncode, proc.stdout + proc.stderr


def tunnels(daemon: DaemonProcess) -> dict[str, tuple[str, str, list[int]]]:
    rows = json.loads(
        daemon.ovsr("--format", "json", "--columns=name,type,options", "list", "Interface").stdout
    )
    ports = {
        r["name"]: r["tag"]
        for r in json.loads(
            daemon.ovsr("--format", "json", "--columns=name,tag", "list", "Port").stdout
        )
    }
    return {
        r["name"]: (r["options"]["remote_ip"], r["options"]["key"], ports[r["name"]])
        for r in rows
        if r["type"] == "vxlan"
    }


def test_mesh_grows_when_a_host_is_added(tmp_path: Path) -> None:
    daemons = {f"hv{n}": DaemonProcess(tmp_path / f"hv{n}").start() for n in (1, 2, 3)}
    try:
        rc, out = run(tmp_path, daemons)
        assert rc == 0, out
        assert tunnels(daemons["hv1"]) == {
            "vx5010-hv2": ("203.0.113.2", "5010", [10]),
            "vx5020-hv2": ("203.0.113.2", "5020", [20]),
            "vx5010-hv3": ("203.0.113.3", "5010", [10]),
            "vx5020-hv3": ("203.0.113.3", "5020", [20]),
        }
        rc, out = run(tmp_path, daemons)
        assert rc == 0 and re.findall(r"changed=(\d+)", out) == ["0", "0", "0"], out
        daemons["hv4"] = DaemonProcess(tmp_path / "hv4").start()
        rc, out = run(tmp_path, daemons)
        assert rc == 0, out
        assert re.findall(r"changed=(\d+)", out) == ["1", "1", "1", "1"], out
        for name, daemon in daemons.items():
            found = tunnels(daemon)
            peers = sorted({port.split("-", 1)[1] for port in found})
            assert peers == sorted(set(daemons) - {name}), (name, found)
            assert len(found) == 2 * (len(daemons) - 1)
        assert tunnels(daemons["hv2"])["vx5020-hv4"] == ("203.0.113.4", "5020", [20])
    finally:
        for daemon in daemons.values():
            daemon.stop()


def test_long_host_names_still_give_one_port_per_peer(tmp_path: Path) -> None:
    """vx5010-compute-001 and vx5010-compute-002 are both 18 characters: cut to 15 they
    were the same name, and one tunnel silently replaced the other."""
    names = ["compute-001", "compute-002", "compute-003"]
    daemons = {name: DaemonProcess(tmp_path / name).start() for name in names}
    try:
        # compute-001 as an earlier version left it: one tunnel per network, cut to
        # 15 characters, to the last peer (compute-003). The upgrade keeps those ports.
        old = tmp_path / "old.yaml"
        old.write_text(
            "bridges:\n  br-int:\n    ports:\n"
            + "".join(
                f"      vx{vni}-compute-: {{type: vxlan, tag: {tag}, options: "
                f"{{remote_ip: 203.0.113.3, local_ip: 203.0.113.1, key: '{vni}'}}}}\n"
                for vni, tag in ((5010, 10), (5020, 20))
            )
        )
        assert daemons["compute-001"].ovsr("apply", str(old)).returncode == 2
        rc, out = run(tmp_path, daemons)
        assert rc == 0, out
        for n, name in enumerate(names, 1):
            found = tunnels(daemons[name])
            assert all(len(port) <= 15 for port in found), found
            peers = {f"203.0.113.{m}" for m in (1, 2, 3) if m != n}
            assert sorted(found.values()) == sorted(
                (ip, key, [tag]) for ip in peers for key, tag in (("5010", 10), ("5020", 20))
            ), found
            last = "203.0.113.3" if n != 3 else "203.0.113.2"
            assert found["vx5010-compute-"] == (last, "5010", [10]), found
        rc, out = run(tmp_path, daemons)
        assert rc == 0 and re.findall(r"changed=(\d+)", out) == ["0", "0", "0"], out
    finally:
        for daemon in daemons.values():
            daemon.stop()
