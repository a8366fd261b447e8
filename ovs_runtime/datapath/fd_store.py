"""Keeping the datapath's file descriptors alive across restarts and upgrades.

Under systemd (``FileDescriptorStoreMax=`` in the unit), every port socket and TAP fd is
handed to the service manager with ``FDSTORE=1`` and a name. When the daemon restarts,
systemd passes them back (``LISTEN_FDS``/``LISTEN_FDNAMES``), and the new process takes
them instead of opening new ones: the kernel queued the frames that arrived meanwhile
in the sockets' rings, and TAP devices (VM NICs) never disappeared. A port that is
removed, or whose device vanished, is taken out of the store (``FDSTOREREMOVE=1``).
Without systemd this does nothing. The daemon passes in how to notify systemd, so this
layer does not call up into the daemon's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, MutableMapping

log = logging.getLogger(__name__)
SD_LISTEN_FDS_START = 3


def fd_name(kind: str, interface: str) -> str:
    """The store name of an interface's fd (no ':' allowed: LISTEN_FDNAMES uses it)."""
    return f"{kind}.{interface}"


class FdStore:
    def __init__(
        self,
        notify: Callable[..., bool] | None = None,
        environ: MutableMapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.notify = notify
        self.available: dict[str, int] = {}
        if env.get("LISTEN_PID") == str(os.getpid()):
            count = int(env.get("LISTEN_FDS", "0") or 0)
            names = env.get("LISTEN_FDNAMES", "").split(":")
            for i in range(count):
                fd = SD_LISTEN_FDS_START + i
                os.set_inheritable(fd, False)
                self.available[names[i] if i < len(names) else f"unnamed{i}"] = fd
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(key, None)
        self.enabled = notify is not None
        if self.available:
            log.info("took back %d file descriptor(s) from systemd", len(self.available))

    def take(self, name: str) -> int | None:
        return self.available.pop(name, None)

    def keep(self, name: str, fd: int) -> None:
        if self.notify is not None:
            self.notify(f"FDSTORE=1\nFDNAME={name}", fds=[fd])

    def forget(self, name: str) -> None:
        if self.notify is not None:
            self.notify(f"FDSTOREREMOVE=1\nFDNAME={name}")

    def release_unclaimed(self) -> None:
        """After the first reconciliation: fds of ports that no longer exist."""
        for name, fd in list(self.available.items()):
            log.info("dropping stored file descriptor %s: no such port any more", name)
            with contextlib.suppress(OSError):
                os.close(fd)
            self.forget(name)
        self.available.clear()
