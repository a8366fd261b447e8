"""OVSDB managers: ``set-manager ptcp:...`` makes the daemon serve the database over TCP
on loopback, as ovsdb-server does; the real ovs-vsctl and the OVS Python IDL work over
it; Manager status follows connections; removing the target stops the listener and
drops its clients; it survives a restart; bad targets are refused whole."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_process import DaemonProcess

pytestmark = pytest.mark.skipif(shutil.which("ovs-vsctl") is None, reason="ovs-vsctl missing")


def manager(daemon: DaemonProcess, target: str | None = None) -> dict[str, Any]:
    out = daemon.ovsr("--format", "json", "list", "Manager").stdout
    rows = [r for r in json.loads(out) if target is None or r["target"] == target]
    assert len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    return row


def wait_for_status(
    daemon: DaemonProcess, key: str, value: str | None = None, target: str | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = manager(daemon, target)
        if key in row["status"] and (value is None or row["status"][key] == value):
            return row
        time.sleep(0.1)
    raise AssertionError(f"Manager status never had {key}={value}: {manager(daemon)}")


def vsctl_tcp(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["ovs-vsctl", f"--db=tcp:127.0.0.1:{port}", "--timeout=10", "--no-wait", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def idl_bridges(remote: str) -> list[str]:
    """The bridges the OVS Python IDL sees over ``remote``."""
    from importlib import resources

    import ovs.db.idl
    import ovs.poller

    from ovs_runtime.db.schema import SCHEMA_RESOURCE

    schema_file = str(resources.files("ovs_runtime.db").joinpath(SCHEMA_RESOURCE))
    helper = ovs.db.idl.SchemaHelper(location=schema_file)
    helper.register_all()
    idl = ovs.db.idl.Idl(remote, helper)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not idl.has_ever_connected():
            idl.run()
            poller = ovs.poller.Poller()
            idl.wait(poller)
            poller.timer_wait(100)
            poller.block()
        idl.run()
        return sorted(b.name for b in idl.tables["Bridge"].rows.values())
    finally:
        idl.close()


def test_ptcp_manager_serves_ovs_tools_and_reports_connections(daemon: DaemonProcess) -> None:
    assert daemon.ovsr("set-manager", "ptcp:0:127.0.0.1").returncode == 0
    assert daemon.ovsr("get-manager").stdout == "ptcp:0:127.0.0.1\n"
    row = wait_for_status(daemon, "bound_port")
    port = int(row["status"]["bound_port"])
    assert row["is_connected"] is False and row["status"]["state"] == "LISTEN"

    made = vsctl_tcp(port, "add-br", "br-tcp", "--", "add-port", "br-tcp", "p1", "tag=10")
    assert made.returncode == 0, made.stderr
    assert daemon.ovsr("list-ports", "br-tcp").stdout.split() == ["p1"]
    assert vsctl_tcp(port, "get", "Port", "p1", "tag").stdout == "10\n"

    # A client that stays connected shows in the row, and its leaving too.
    client = socket.create_connection(("127.0.0.1", port))
    try:
        connected = wait_for_status(daemon, "n_connections", "1")
        assert connected["is_connected"] is True and connected["status"]["state"] == "ACTIVE"
        assert idl_bridges(f"tcp:127.0.0.1:{port}") == ["br-tcp"]
    finally:
        client.close()
    wait_for_status(daemon, "n_connections", "0")

    # Removing the target stops the listener and disconnects its clients.
    kept = socket.create_connection(("127.0.0.1", port))
    try:
        wait_for_status(daemon, "n_connections", "1")
        assert daemon.ovsr("del-manager").returncode == 0
        kept.settimeout(5)
        assert kept.recv(1) == b"", "the client was not disconnected"
    finally:
        kept.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_manager_survives_a_restart_and_a_busy_port_is_reported(daemon: DaemonProcess) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    try:
        assert daemon.ovsr("set-manager", f"ptcp:{busy}:127.0.0.1").returncode == 0
        row = wait_for_status(daemon, "last_error")
        assert "in use" in row["status"]["last_error"] and row["is_connected"] is False
    finally:
        holder.close()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert daemon.ovsr("set-manager", f"ptcp:{port}:127.0.0.1").returncode == 0
    wait_for_status(daemon, "bound_port", str(port))
    daemon.stop()
    daemon.start()
    wait_for_status(daemon, "bound_port", str(port))
    assert vsctl_tcp(port, "list-br").returncode == 0


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ssl:192.0.2.1:6640", "SSL managers are not supported"),
        ("pssl:6640", "SSL managers are not supported"),
        ("tcp:127.0.0.1:6640", "active managers"),
        ("ptcp:http", "is not ptcp:PORT[:IP]"),
        ("ptcp:6640:localhost", "is not ptcp:PORT[:IP]"),
        ("punix:relative/path", "needs an absolute path"),
        ("http://example", "is not a manager target"),
    ],
)
def test_bad_manager_targets_are_refused_whole(
    daemon: DaemonProcess, target: str, message: str
) -> None:
    assert daemon.ovsr("set-manager", "ptcp:0:127.0.0.1").returncode == 0
    proc = daemon.ovsr("set-manager", target)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert daemon.ovsr("get-manager").stdout == "ptcp:0:127.0.0.1\n", "nothing changed"


def test_show_lists_managers_as_ovs_vsctl_does(daemon: DaemonProcess, tmp_path: Path) -> None:
    punix = f"punix:{tmp_path}/manager.sock"
    assert daemon.ovsr("set-manager", "ptcp:0:127.0.0.1", punix).returncode == 0
    row = wait_for_status(daemon, "bound_port", target="ptcp:0:127.0.0.1")
    port = int(row["status"]["bound_port"])
    client = socket.create_connection(("127.0.0.1", port))
    try:
        wait_for_status(daemon, "n_connections", "1", target="ptcp:0:127.0.0.1")
        # The punix target serves too: the real ovs-vsctl through it.
        listed = subprocess.run(
            ["ovs-vsctl", f"--db=unix:{tmp_path}/manager.sock", "--no-wait", "get-manager"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert listed.stdout.split() == ["ptcp:0:127.0.0.1", punix], listed.stderr
        ours = daemon.ovsr("show").stdout
        theirs = subprocess.run(
            ["ovs-vsctl", f"--db={daemon.db}", "--no-wait", "show"], capture_output=True, text=True
        ).stdout
        assert '    Manager "ptcp:0:127.0.0.1"\n        is_connected: true\n' in ours, ours
        assert ours == theirs
    finally:
        client.close()
        daemon.ovsr("del-manager")
