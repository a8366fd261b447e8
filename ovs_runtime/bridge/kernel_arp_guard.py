"""Keeping the host's kernel from answering ARP through bridged devices.

In Open vSwitch's kernel datapath a device that joins a bridge is the switch's: its
frames never reach the host's IP stack. An AF_PACKET datapath reads a copy of every
frame, and the stack still gets the original, and Linux answers an ARP request for any
of the host's addresses on whichever device it arrives (``arp_ignore=0``, the default).
So a host on a switch port that asks for the switch's own address (a VTEP, a management
address on the bridge port) could be answered twice: by the bridge port, through the
bridge, and by the kernel, straight from the port's device with that device's MAC. The
second answer sends the peer's traffic to a device that bypasses the bridge, and breaks
when that one link goes down; on a hypervisor it lets a VM reach host addresses that
are not in its VLAN at all.

So every system device in a bridge gets ``net.ipv4.conf.DEVICE.arp_ignore=1``: the
kernel answers ARP on it only for addresses configured on that device itself, which a
bridged device normally has none of (``move-addresses`` moves them to the bridge port).
A value the administrator set higher is left alone. What the device had before is kept
in a record under the run directory, so it survives a daemon restart, and is put back
when the device leaves its bridge. A device that is deleted and created again comes
back with the namespace's default, and gets the setting again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

ANSWER_ONLY_OWN_ADDRESSES = 1  # arp_ignore: the target address must be on this device
PROC_CONF = Path("/proc/sys/net/ipv4/conf")


class KernelArpGuard:
    """Sets and restores ``arp_ignore`` of bridged devices; remembers what it changed."""

    def __init__(self, record: Path, conf_root: Path = PROC_CONF) -> None:
        self.record_path = record
        self.conf_root = conf_root

    def _setting(self, device: str) -> Path:
        return self.conf_root / device / "arp_ignore"

    def _read_record(self) -> dict[str, int]:
        try:
            data = json.loads(self.record_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable ARP record %s: %s", self.record_path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}

    def _write_record(self, record: dict[str, int]) -> None:
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp, self.record_path)

    def guarded(self) -> set[str]:
        """Devices whose setting this guard changed (and will put back)."""
        return set(self._read_record())

    def guard(self, device: str) -> bool:
        """Stop the kernel answering ARP on ``device`` for other devices' addresses.
        True if the setting was changed now; False if it was already in place or the
        device has no IPv4 settings (absent, or not an IP device). OSError if the
        setting cannot be read or written."""
        path = self._setting(device)
        if not path.parent.is_dir():
            if not self.conf_root.is_dir():  # (a sandbox that hides /proc/sys)
                raise OSError(f"{self.conf_root} is not visible to the daemon")
            return False
        current = int(path.read_text())
        if current >= ANSWER_ONLY_OWN_ADDRESSES:
            return False
        record = self._read_record()
        record.setdefault(device, current)  # a re-created device: keep the first value
        self._write_record(record)
        path.write_text(str(ANSWER_ONLY_OWN_ADDRESSES))
        return True

    def release(self, device: str) -> bool:
        """Put back what ``guard`` changed on a device that left its bridge. True if
        something was put back."""
        record = self._read_record()
        if device not in record:
            return False
        original = record.pop(device)
        try:
            self._setting(device).write_text(str(original))
            restored = True
        except OSError:  # the device is gone: nothing to put back
            restored = False
        self._write_record(record)
        return restored
