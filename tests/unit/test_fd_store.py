"""The fd store's bookkeeping, with the systemd notify call recorded (the real systemd
path runs in tests/packaging/test_restart_upgrade_nspawn.py)."""

from __future__ import annotations

import os
from typing import Any

from ovs_runtime.datapath.fd_store import FdStore, fd_name


def test_fds_passed_back_by_systemd_are_taken_by_name() -> None:
    sent: list[tuple[str, Any]] = []
    r, w = os.pipe()
    # Pretend systemd passed two fds starting at 3: make 3 and 4 real fds for the test.
    saved = [os.dup(3) if _is_open(3) else None, os.dup(4) if _is_open(4) else None]
    os.dup2(r, 3)
    os.dup2(w, 4)
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "pkt.veth1:tap.vm1"}
    try:
        store = FdStore(lambda msg, fds=None: sent.append((msg, fds)) or True, env)
        assert "LISTEN_FDS" not in env  # not passed on to children
        assert store.take(fd_name("pkt", "veth1")) == 3
        assert store.take("pkt.veth1") is None
        store.keep("pkt.veth2", 7)
        store.forget("pkt.veth2")
        store.release_unclaimed()  # tap.vm1 was not claimed: closed and removed
        assert sent == [
            ("FDSTORE=1\nFDNAME=pkt.veth2", [7]),
            ("FDSTOREREMOVE=1\nFDNAME=pkt.veth2", None),
            ("FDSTOREREMOVE=1\nFDNAME=tap.vm1", None),
        ]
        assert not _is_open(4)
    finally:
        for fd, old in ((3, saved[0]), (4, saved[1])):
            if old is not None:
                os.dup2(old, fd)
                os.close(old)
        for fd in (r, w):
            if _is_open(fd):
                os.close(fd)


def test_without_systemd_nothing_is_sent() -> None:
    store = FdStore(None, {"LISTEN_PID": "1", "LISTEN_FDS": "3"})  # not for this pid
    assert store.available == {} and not store.enabled
    store.keep("pkt.x", 5)
    store.forget("pkt.x")


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
