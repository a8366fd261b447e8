"""The ARP guard on a stand-in for /proc/sys/net/ipv4/conf (no root): it sets
``arp_ignore=1``, keeps what was there before across a restart, records a re-created
device's own value, leaves a restrictive administrator's value alone, and puts the old
value back on release; and the reconciler applies it to a bridge's system devices.
tests/integration/test_kernel_arp_guard.py shows the same on real devices."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ovs_runtime.bridge import reconciler as reconciler_module
from ovs_runtime.bridge.kernel_arp_guard import KernelArpGuard
from ovs_runtime.bridge.reconciler import Reconciler
from ovs_runtime.datapath.userspace import UserspaceDatapath
from ovs_runtime.netdev.memory import MemoryNetdev
from tests.unit.db_helpers import add_bridge_ops, errors, new_db


def conf_tree(tmp_path: Path, **values: int) -> Path:
    root = tmp_path / "conf"
    for device, value in values.items():
        (root / device).mkdir(parents=True)
        (root / device / "arp_ignore").write_text(f"{value}\n")
    return root


def setting(root: Path, device: str) -> int:
    return int((root / device / "arp_ignore").read_text())


def test_guard_sets_and_release_restores(tmp_path: Path) -> None:
    root = conf_tree(tmp_path, swp1=0, swp2=0)
    guard = KernelArpGuard(tmp_path / "run" / "arp-guard.json", root)
    assert guard.guard("swp1", 7) is True
    assert setting(root, "swp1") == 1 and setting(root, "swp2") == 0
    assert guard.guard("swp1", 7) is False  # already in place
    assert guard.guarded() == {"swp1"}
    assert guard.release("swp1", 7) is True
    assert setting(root, "swp1") == 0
    assert guard.guarded() == set()
    assert guard.release("swp1", 7) is False  # nothing of ours left to put back


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    root = conf_tree(tmp_path, swp1=0)
    record = tmp_path / "run" / "arp-guard.json"
    KernelArpGuard(record, root).guard("swp1", 7)
    again = KernelArpGuard(record, root)  # a new daemon: the device already says 1
    assert again.guard("swp1", 7) is False
    assert again.release("swp1", 7) is True
    assert setting(root, "swp1") == 0


def test_a_recreated_device_is_guarded_again_with_its_own_value_recorded(
    tmp_path: Path,
) -> None:
    root = conf_tree(tmp_path, vm1=3)
    guard = KernelArpGuard(tmp_path / "arp-guard.json", root)
    guard.guard("vm1", 7)
    (root / "vm1" / "arp_ignore").write_text("0\n")  # deleted and created again
    assert guard.guard("vm1", 8) is True
    assert setting(root, "vm1") == 1
    guard.release("vm1", 8)
    assert setting(root, "vm1") == 0  # the new device's value, not the old one's 3


def test_a_recreated_device_an_administrator_set_is_not_touched_on_release(
    tmp_path: Path,
) -> None:
    root = conf_tree(tmp_path, vm1=0)
    guard = KernelArpGuard(tmp_path / "arp-guard.json", root)
    guard.guard("vm1", 7)
    (root / "vm1" / "arp_ignore").write_text("2\n")  # re-created, set by sysctl.d
    assert guard.guard("vm1", 8) is False
    assert guard.release("vm1", 8) is False
    assert setting(root, "vm1") == 2
    guard.guard("vm1", 8)
    (root / "vm1" / "arp_ignore").write_text("0\n")
    assert guard.release("vm1", 9) is False  # another device took the name
    assert setting(root, "vm1") == 0


@pytest.mark.parametrize("value", [1, 2, 8])
def test_a_restrictive_value_is_left_alone(tmp_path: Path, value: int) -> None:
    root = conf_tree(tmp_path, eth0=value)
    guard = KernelArpGuard(tmp_path / "arp-guard.json", root)
    assert guard.guard("eth0", 7) is False
    assert setting(root, "eth0") == value
    assert guard.release("eth0", 7) is False
    assert setting(root, "eth0") == value


@pytest.mark.parametrize("value", [3, 4, 5])
def test_values_that_answer_for_other_addresses_are_replaced(tmp_path: Path, value: int) -> None:
    """3 answers for host-scope addresses only... of any device; 4-7 are reserved (as 0)."""
    root = conf_tree(tmp_path, eth0=value)
    guard = KernelArpGuard(tmp_path / "arp-guard.json", root)
    assert guard.guard("eth0", 7) is True
    assert setting(root, "eth0") == 1
    assert guard.release("eth0", 7) is True
    assert setting(root, "eth0") == value


def test_absent_devices_and_a_damaged_record(tmp_path: Path) -> None:
    root = conf_tree(tmp_path, swp1=0)
    record = tmp_path / "arp-guard.json"
    guard = KernelArpGuard(record, root)
    assert guard.guard("gone0", 7) is False  # no such device: nothing recorded
    assert guard.guarded() == set()
    guard.guard("swp1", 7)
    (root / "swp1" / "arp_ignore").unlink()
    (root / "swp1").rmdir()  # the device went away while bridged
    assert guard.release("swp1", None) is False
    assert guard.guarded() == set()
    record.write_text('{"swp1": 0}')  # an older layout
    assert KernelArpGuard(record, root).guarded() == set()  # unreadable: moved aside
    assert record.with_suffix(".unreadable").exists()


def test_a_hidden_proc_sys_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    root = conf_tree(tmp_path, swp1=0)
    guard = KernelArpGuard(tmp_path / "arp-guard.json", root)
    guard.guard("swp1", 7)
    (root / "swp1" / "arp_ignore").unlink()
    (root / "swp1").rmdir()
    root.rmdir()  # as ProcSubset=pid hides /proc/sys
    with pytest.raises(OSError, match="not visible"):
        guard.guard("swp2", 8)
    with pytest.raises(OSError, match="not visible"):
        guard.release("swp1", 7)
    assert guard.guarded() == {"swp1"}  # kept, to be put back when it can be


def test_the_reconciler_guards_a_bridges_system_devices_and_releases_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = conf_tree(tmp_path, swp1=0, swp2=0, vm1=0)
    indexes = {"swp1": 11, "swp2": 12, "vm1": 13}
    monkeypatch.setattr(reconciler_module.link, "ifindex", indexes.get)
    record = tmp_path / "run" / "arp-guard.json"

    async def scenario() -> None:
        db = new_db(tmp_path / "db")
        dp = UserspaceDatapath(lambda kind, name, options: MemoryNetdev(name))
        rec = Reconciler(db, dp, None, KernelArpGuard(record, root))
        assert not errors(db.transact(add_bridge_ops("br0", ("swp1", "swp2"))))
        tap = {"op": "update", "table": "Interface", "where": [["name", "==", "vm1"]]}
        tap["row"] = {"type": "tap"}
        assert not errors(db.transact([*add_bridge_ops("br1", ("vm1",)), tap]))
        rec.reconcile()
        assert [setting(root, d) for d in ("swp1", "swp2", "vm1")] == [1, 1, 0]  # tap: not
        assert json.loads(record.read_text()) == {"swp1": [11, 0], "swp2": [12, 0]}
        rows = db.transact([{"op": "select", "table": "Port", "where": [["name", "==", "swp2"]]}])
        port_uuid = rows[0]["rows"][0]["_uuid"]
        bridge = db.transact(
            [{"op": "select", "table": "Bridge", "where": [["name", "==", "br0"]]}]
        )
        ops = [
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["_uuid", "==", bridge[0]["rows"][0]["_uuid"]]],
                "mutations": [["ports", "delete", ["set", [port_uuid]]]],
            }
        ]
        assert not errors(db.transact(ops))
        rec.reconcile()
        assert [setting(root, d) for d in ("swp1", "swp2")] == [1, 0]
        assert json.loads(record.read_text()) == {"swp1": [11, 0]}
        (root / "swp1" / "arp_ignore").write_text("0\n")
        indexes["swp1"] = 21  # deleted and created again
        rec.refresh_status()
        assert setting(root, "swp1") == 1
        dp.stop()

    asyncio.run(scenario())
