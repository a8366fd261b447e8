"""The shipped inventories parse, have the promised shape, and every playbook passes
ansible-playbook --syntax-check against them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def inventory(name: str) -> dict[str, object]:
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(REPO / "inventories" / name), "--list"],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    )
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def hosts_of(data: dict[str, object], group: str) -> set[str]:
    entry = data.get(group, {})
    assert isinstance(entry, dict)
    found = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        found |= hosts_of(data, child)
    return found


def test_example_fleet_shape_and_underlay_addresses() -> None:
    data = inventory("example")
    assert len(hosts_of(data, "hypervisors")) == 40
    assert hosts_of(data, "hw_switches") == {"leaf-r1", "leaf-r2"}
    assert hosts_of(data, "vteps") == hosts_of(data, "hypervisors") | {"leaf-r1", "leaf-r2"}
    hostvars = data["_meta"]["hostvars"]  # type: ignore[index]
    assert "203.0.113." in hostvars["hv-r2-07"]["ovs_runtime_network_underlay_ip"]


def test_lab_fleet_shape() -> None:
    data = inventory("lab")
    assert hosts_of(data, "hypervisors") == {"hv1", "hv2", "hv3"}
    assert hosts_of(data, "hw_switches") == {"sw1"}


@pytest.mark.parametrize(
    "book", ["site.yml", "upgrade.yml", "network.yml", "install.yml", "verify.yml"]
)
@pytest.mark.parametrize("inv", ["lab", "example"])
def test_playbooks_syntax(book: str, inv: str) -> None:
    proc = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "--syntax-check",
            "-i",
            str(REPO / "inventories" / inv),
            str(REPO / "playbooks" / book),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
