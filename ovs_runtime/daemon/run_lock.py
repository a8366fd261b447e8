"""One daemon per run directory: an flock on ``<run-dir>/ovs-runtimed.pid``.

Several daemons may run side by side as long as each has its own run directory; a
second one started on the same directory exits at once with a message naming the pid
that holds it. The lock dies with the process, so ``kill -9`` never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os


class AlreadyRunning(Exception):
    pass


def acquire(run_dir: str) -> int:
    path = os.path.join(run_dir, "ovs-runtimed.pid")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AlreadyRunning(
            f"another ovs-runtimed (pid {holder}) already uses run directory {run_dir}"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
