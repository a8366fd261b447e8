"""Keeping the host's kernel from answering ARP through bridged devices.

In Open vSwitch's kernel datapath a device that joins a bridge is the switch's: its
frames never reach the host's IP stack. An AF_PACKET datapath reads a copy of every
frame, and the stack still gets the original, and Linux answers an ARP request for any
of the host's addresses on whichever device it arrives (``arp_ignore=0``, the default).
So a host on a switch port that asks for the switch's own address (a VTEP, a management
address on the bridge port) could be answered twice: by the bridge port, through the
bridge, and by the kernel, straight from the port's device with that device's MAC. The
second answer sends the peer's traffic to a device that bypasses the bridge, and breaks
when that one link goes down.

So every system device in a bridge gets ``net.ipv4.conf.DEVICE.arp_ignore=1``: the
kernel answers ARP on it only for addresses configured on that device itself, which a
bridged device normally has none of (``move-addresses`` moves them to the bridge port).
A value that already restricts replies (1, 2 or 8) is left alone. What the device had
before is recorded, with its ifindex, under the run directory, so a daemon restart
still knows it; it is put back when the device leaves its bridge. A device that is
deleted and created again (a new ifindex) comes back with the namespace's default: it
is guarded again, and that default is what will be put back.

(Dropping every frame before the host's stack, as OVS's kernel datapath does, would
need a tc ingress drop action or BPF; the kernels we target may have neither. Setting
the value over netlink, ``IFLA_INET_CONF``, is not something pyroute2 can encode.)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

ANSWER_ONLY_OWN_ADDRESSES = 1  # arp_ignore: the target address must be on this device
RESTRICTIVE = {1, 2, 8}  # arp_ignore values that do not answer for other devices' addresses
PROC_CONF = Path("/proc/sys/net/ipv4/conf")


class KernelArpGuard:
    """Sets and restores ``arp_ignore`` of bridged devices; remembers what it changed
    as ``{device: [ifindex, value before]}``."""

    def __init__(self, record: Path, conf_root: Path = PROC_CONF) -> None:
        self.record_path = record
        self.conf_root = conf_root
        self._record: dict[str, tuple[int, int]] | None = None  # read once, then kept

    def _setting(self, device: str) -> Path:
        return self.conf_root / device / "arp_ignore"

    def _entries(self) -> dict[str, tuple[int, int]]:
        if self._record is None:
            self._record = self._load()
        return self._record

    def _load(self) -> dict[str, tuple[int, int]]:
        try:
            data = json.loads(self.record_path.read_text())
            return {str(k): (int(v[0]), int(v[1])) for k, v in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            aside = self.record_path.with_suffix(".unreadable")
            log.warning(
                "ARP record %s unreadable (%s): moved to %s; the devices it named keep "
                "arp_ignore=1 when they leave their bridge",
                self.record_path,
                exc,
                aside,
            )
            try:
                os.replace(self.record_path, aside)
            except OSError:
                pass
            return {}

    def _save(self) -> None:
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._entries(), indent=1, sort_keys=True))
        os.replace(tmp, self.record_path)

    def guarded(self) -> set[str]:
        """Devices whose setting this guard changed (and will put back)."""
        return set(self._entries())

    def guard(self, device: str, ifindex: int) -> bool:
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
        entries = self._entries()
        known = entries.get(device)
        if current in RESTRICTIVE:
            if known is not None and known[0] != ifindex:
                del entries[device]  # another device by that name, set by someone else
                self._save()
            return False
        if known is None or known[0] != ifindex:
            entries[device] = (ifindex, current)
            self._save()
        path.write_text(str(ANSWER_ONLY_OWN_ADDRESSES))
        return True

    def release(self, device: str, ifindex: int | None) -> bool:
        """Put back what ``guard`` changed on a device that left its bridge (``ifindex``:
        the device's now, None if it is gone). True if something was put back; OSError
        (and the record kept) if it could not be."""
        entries = self._entries()
        if device not in entries:
            return False
        recorded, original = entries[device]
        if ifindex != recorded:  # gone, or another device took the name: not ours
            del entries[device]
            self._save()
            return False
        try:
            self._setting(device).write_text(str(original))
            restored = True
        except FileNotFoundError:
            if not self.conf_root.is_dir():
                raise OSError(f"{self.conf_root} is not visible to the daemon") from None
            restored = False  # the device is gone: nothing to put back
        del entries[device]
        self._save()
        return restored
