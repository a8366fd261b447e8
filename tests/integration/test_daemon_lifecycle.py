"""The daemon process: side-by-side instances, signals, socket mode, systemd notify,
refusing bad config and newer databases."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from ovs_runtime.db.schema import schema_json
from tests.daemon_process import DaemonProcess, python_env


def test_instances_side_by_side_and_one_per_run_dir(tmp_path: Path) -> None:
    a = DaemonProcess(tmp_path / "a").start()
    b = DaemonProcess(tmp_path / "b").start()
    try:
        assert a.ovsr("add-br", "bra").returncode == 0
        assert b.ovsr("add-br", "brb").returncode == 0
        assert a.ovsr("list-br").stdout.split() == ["bra"]
        assert b.ovsr("list-br").stdout.split() == ["brb"]
        twin = DaemonProcess(tmp_path / "a")
        twin.log_path = tmp_path / "twin.log"
        twin.start(wait=False)
        assert twin.proc is not None and twin.proc.wait(15) == 1
        assert "already uses run directory" in twin.log()
        assert a.ovsr("list-br").stdout.split() == ["bra"]  # the first one is unharmed
    finally:
        a.stop()
        b.stop()


def test_socket_mode_sigterm_and_restart_keeps_config(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "d").start()
    try:
        assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o660
        assert d.ovsr("add-br", "br0", "--", "add-port", "br0", "p1", "tag=3").returncode == 0
    finally:
        assert d.stop() == 0
    assert "SIGTERM received" in d.log() and "stopped cleanly" in d.log()
    d.start()
    try:
        assert d.ovsr("get", "Port", "p1", "tag").stdout.strip() == "3"
        assert "bridge br0: created" in d.log().split("ready, pid")[-2]  # restored on start
    finally:
        d.stop()


def test_sighup_reloads_and_keeps_old_config_on_error(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "d")
    d.base.mkdir(parents=True)
    d.config.write_text("[daemon]\nlog_level = info\n")
    d.start()
    try:
        d.config.write_text("[daemon]\nlog_level = debug\n")
        d.signal(signal.SIGHUP)
        _wait_for(lambda: "SIGHUP: reloaded" in d.log())
        d.config.write_text("[daemon]\nlog_level = shouty\n")
        d.signal(signal.SIGHUP)
        _wait_for(lambda: "keeping the previous configuration" in d.log())
        assert "log_level 'shouty'" in d.log()
        assert d.ovsr("add-br", "br0").returncode == 0  # still serving
    finally:
        d.stop()


def test_bad_config_refuses_to_start(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "d")
    d.base.mkdir(parents=True)
    d.config.write_text("[daemon]\nlog_level = info\nbogus = 1\n")
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 1
    assert f"{d.config}:3: unknown key 'bogus'" in d.log()


def test_newer_database_refused_and_untouched(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path / "d").start()
    d.stop()
    db_file = d.state_dir / "conf.db"
    conn = sqlite3.connect(db_file)
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema'",
        (json.dumps(dict(schema_json(), version="42.0.0")),),
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = db_file.read_bytes()
    d.start(wait=False)
    assert d.proc is not None and d.proc.wait(15) == 1
    assert "newer than this ovs-runtime" in d.log()
    assert db_file.read_bytes() == before


def test_systemd_notifications(tmp_path: Path) -> None:
    """A real AF_UNIX datagram socket plays systemd's notify socket."""
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(10)
    env = python_env()
    env["NOTIFY_SOCKET"] = str(sock_path)
    env["WATCHDOG_USEC"] = "400000"  # ping every 0.2 s
    d = DaemonProcess(tmp_path / "d")
    try:
        d.start(env=env)
        messages: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
            messages.append(listener.recv(4096).decode())
        joined = "\n".join(messages)
        assert "READY=1" in joined and "STATUS=" in joined
        assert sum("WATCHDOG=1" in m for m in messages) >= 3
        d.stop()
        tail = []
        listener.settimeout(2)
        try:
            while True:
                tail.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
        assert any("STOPPING=1" in m for m in tail)
    finally:
        d.stop()
        listener.close()


def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail("condition not reached in time")


def test_a_large_flow_table_is_kept_out_of_collector_passes(tmp_path: Path) -> None:
    """12,000 rules arrive as one 2 MB request: the collector pauses for it, and the
    grown database is frozen out of its passes; the daemon goes on serving as before."""
    d = DaemonProcess(tmp_path / "d", extra_args=("--datapath", "none", "--log-level", "debug"))
    rules = tmp_path / "many.flows"
    rules.write_text(
        "".join(
            f"priority=100,udp,nw_src=203.0.113.{n % 250},tp_dst={n},actions=drop\n"
            for n in range(12_000)
        )
    )
    d.start()
    try:
        assert d.ovsr("add-br", "br0").returncode == 0
        loaded = d.ovsr("--timeout", "120", "add-flows", "br0", str(rules), timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        assert "12000 rule(s) added" in loaded.stdout
        deadline = time.monotonic() + 5
        while "objects out of collector passes" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = d.log()
        assert "large request: cycle collector paused" in log
        assert "objects out of collector passes" in log
        assert d.ovsr("add-flow", "br0", "priority=5,udp,tp_dst=9,actions=drop").returncode == 0
        dumped = json.loads(d.ovsr("--format", "json", "dump-flows", "br0").stdout)
        assert len(dumped) == 12_001
        assert d.ovsr("del-flows", "br0").stdout == "br0: 12001 rule(s) deleted\n"
    finally:
        assert d.stop() == 0
