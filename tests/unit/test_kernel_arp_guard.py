"""The ARP guard on a stand-in for /proc/sys/net/ipv4/conf (no root): it sets
``arp_ignore=1``, keeps what was there before across a restart and a re-created device,
leaves a stricter administrator's value alone, and puts the old value back on release.
tests/integration/test_kernel_arp_guard.py shows the same on real devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovs_runtime.bridge.kernel_arp_guard import KernelArpGuard


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
    assert guard.guard("swp1") is True
    assert setting(root, "swp1") == 1 and setting(root, "swp2") == 0
    assert guard.guard("swp1") is False  # already in place
    assert guard.guarded() == {"swp1"}
    assert guard.release("swp1") is True
    assert setting(root, "swp1") == 0
    assert guard.guarded() == set()
    assert guard.release("swp1") is False  # nothing of ours left to put back


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    root = conf_tree(tmp_path, swp1=0)
    record = tmp_path / "run" / "arp-guard.json"
    KernelArpGuard(record, root).guard("swp1")
    again = KernelArpGuard(record, root)  # a new daemon: the device already says 1
    assert again.guard("swp1") is False
    assert again.release("swp1") is True
    assert setting(root, "swp1") == 0


def test_a_recreated_device_is_guarded_again_and_keeps_the_first_value(tmp_path: Path) -> None:
    root = conf_tree(tmp_path, vm1=0)
    guard = KernelArpGuard(tmp_path / "arp-guard.json", root)
    guard.guard("vm1")
    (root / "vm1" / "arp_ignore").write_text("0\n")  # deleted and created again
    assert guard.guard("vm1") is True
    assert setting(root, "vm1") == 1
    guard.release("vm1")
    assert setting(root, "vm1") == 0


def test_a_stricter_value_is_left_alone(tmp_path: Path) -> None:
    root = conf_tree(tmp_path, eth0=2)
    guard = KernelArpGuard(tmp_path / "arp-guard.json", root)
    assert guard.guard("eth0") is False
    assert setting(root, "eth0") == 2
    assert guard.release("eth0") is False
    assert setting(root, "eth0") == 2


def test_absent_devices_and_a_damaged_record(tmp_path: Path) -> None:
    root = conf_tree(tmp_path, swp1=0)
    record = tmp_path / "arp-guard.json"
    guard = KernelArpGuard(record, root)
    assert guard.guard("gone0") is False  # no such device: nothing recorded
    assert guard.guarded() == set()
    guard.guard("swp1")
    (root / "swp1" / "arp_ignore").unlink()
    (root / "swp1").rmdir()  # the device went away while bridged
    assert guard.release("swp1") is False
    assert guard.guarded() == set()
    record.write_text("not json")
    assert guard.guarded() == set()  # unreadable: ignored, not fatal


def test_a_hidden_proc_sys_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    guard = KernelArpGuard(tmp_path / "arp-guard.json", tmp_path / "no-such-conf")
    with pytest.raises(OSError, match="not visible"):
        guard.guard("swp1")
