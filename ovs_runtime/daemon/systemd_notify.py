"""sd_notify(3) messages: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1, RELOADING=1.

Uses python-systemd (Debian ``python3-systemd``) and does nothing when the process was
not started by systemd (no ``NOTIFY_SOCKET``), so the daemon runs the same by hand.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def under_systemd() -> bool:
    return bool(os.environ.get("NOTIFY_SOCKET"))


def notify(message: str, fds: list[int] | None = None) -> bool:
    if not under_systemd():
        return False
    try:
        from systemd import daemon as sd_daemon
    except ImportError:  # pragma: no cover - the package depends on python3-systemd
        log.warning("NOTIFY_SOCKET is set but python3-systemd is missing; cannot notify")
        return False
    sent: bool = sd_daemon.notify(message, fds=fds) if fds else sd_daemon.notify(message)
    return sent


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd gave us, in seconds, or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
