"""OVSDB managers: ``set-manager ptcp:...`` makes the daemon serve the database over TCP
on loopback, as ovsdb-server does; the real ovs-vsctl and the OVS Python IDL work over
it; Manager status follows connections; removing the target stops the listener and
drops its clients; it survives a restart; bad targets are refused whole."""

from __future__ import annotations

import contextlib
import json
import os
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


def wait_for_connected(daemon: DaemonProcess, target: str | None = None) -> None:
    deadline = time.monotonic() + 10
    while not manager(daemon, target)["is_connected"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager(daemon, target)["is_connected"] is True


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
    assert row["is_connected"] is False and "state" not in row["status"]
    with pytest.raises(ConnectionRefusedError):  # ptcp: with an address: that one only
        socket.create_connection(("::1", port), timeout=5).close()

    made = vsctl_tcp(port, "add-br", "br-tcp", "--", "add-port", "br-tcp", "p1", "tag=10")
    assert made.returncode == 0, made.stderr
    assert daemon.ovsr("list-ports", "br-tcp").stdout.split() == ["p1"]
    assert vsctl_tcp(port, "get", "Port", "p1", "tag").stdout == "10\n"

    # Clients that stay connected show in the row (OVS's keys), and their leaving too.
    client = socket.create_connection(("127.0.0.1", port))
    second = socket.create_connection(("127.0.0.1", port))
    try:
        connected = wait_for_status(daemon, "n_connections", "2")
        assert connected["is_connected"] is True and "state" not in connected["status"]
        assert "sec_since_connect" in connected["status"]
        assert idl_bridges(f"tcp:127.0.0.1:{port}") == ["br-tcp"]
    finally:
        client.close()
        second.close()
    gone = wait_for_status(daemon, "sec_since_disconnect")
    deadline = time.monotonic() + 10
    while manager(daemon)["is_connected"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager(daemon)["is_connected"] is False, gone

    # Removing the target stops the listener and disconnects its clients.
    kept = socket.create_connection(("127.0.0.1", port))
    try:
        wait_for_connected(daemon)
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
    wait_for_status(daemon, "bound_port", str(busy))  # tried again once the port is free
    assert vsctl_tcp(busy, "list-br").returncode == 0
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
        wait_for_connected(daemon, target="ptcp:0:127.0.0.1")
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


def test_silent_clients_are_probed_and_dropped(daemon: DaemonProcess) -> None:
    """inactivity_probe (ms): a client silent that long gets an RFC 7047 echo request;
    one that does not answer within as long again is disconnected."""
    created = daemon.ovsr(
        *("--", "--id=@m", "create", "Manager", "target=ptcp:0:127.0.0.1"),
        "inactivity_probe=1000",
        *("--", "set", "Open_vSwitch", ".", "manager_options=@m"),
    )
    assert created.returncode == 0, created.stderr
    port = int(wait_for_status(daemon, "bound_port")["status"]["bound_port"])
    client = socket.create_connection(("127.0.0.1", port))
    try:
        client.settimeout(5)
        started = time.monotonic()
        probe = json.loads(client.recv(65536))
        assert probe["method"] == "echo" and probe["id"] == "echo", probe
        assert client.recv(1) == b"", "a silent client was not dropped"
        assert time.monotonic() - started < 4.5
    finally:
        client.close()


def test_punix_targets_keep_off_other_files(daemon: DaemonProcess, tmp_path: Path) -> None:
    own = daemon.ovsr("set-manager", f"punix:{daemon.db.removeprefix('unix:')}")
    assert own.returncode == 1 and "the daemon's own socket" in own.stderr, own.stderr
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    assert daemon.ovsr("set-manager", f"punix:{precious}").returncode == 0
    row = wait_for_status(daemon, "last_error")
    assert "exists and is not a socket" in row["status"]["last_error"]
    assert precious.read_text() == "keep me"
    path = tmp_path / "mgr.sock"
    assert daemon.ovsr("set-manager", f"punix:{path}").returncode == 0
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.is_socket()
    assert daemon.ovsr("del-manager").returncode == 0
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not path.exists(), "the socket file was left behind"
    assert daemon.ovsr("list-br").returncode == 0, "the daemon's own socket still serves"


def listening_ports(pid: int) -> list[int]:
    """The TCP ports process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def test_changes_racing_a_listener_never_leak_one(daemon: DaemonProcess) -> None:
    """A second commit while a listener is being opened must not open it twice (the
    first would stay open, serving the database after the manager is removed)."""
    assert daemon.proc is not None
    for delay in (0.0, 0.0005, 0.001, 0.002, 0.005):
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(daemon.db.removeprefix("unix:"))
            create = [
                {
                    "op": "insert",
                    "table": "Manager",
                    "uuid-name": "m",
                    "row": {"target": "ptcp:0:127.0.0.1"},
                },
                {
                    "op": "update",
                    "table": "Open_vSwitch",
                    "where": [],
                    "row": {"manager_options": ["named-uuid", "m"]},
                },
            ]
            bump = [
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [],
                    "mutations": [["next_cfg", "+=", 1]],
                }
            ]
            for n, ops in enumerate((create, bump)):
                raw.sendall(
                    json.dumps(
                        {"id": n, "method": "transact", "params": ["Open_vSwitch", *ops]}
                    ).encode()
                )
                time.sleep(delay)
            wait_for_status(daemon, "bound_port")
            time.sleep(0.3)
            assert len(listening_ports(daemon.proc.pid)) == 1, listening_ports(daemon.proc.pid)
        assert daemon.ovsr("del-manager").returncode == 0
        deadline = time.monotonic() + 5
        while listening_ports(daemon.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listening_ports(daemon.proc.pid) == [], f"a listener leaked (delay {delay})"


def test_a_symlinked_spelling_of_the_daemons_socket_is_refused(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    run_dir = os.path.dirname(daemon.db.removeprefix("unix:"))
    alias = tmp_path / "alias"
    alias.symlink_to(run_dir)
    proc = daemon.ovsr("set-manager", f"punix:{alias}/db.sock")
    assert proc.returncode == 1 and "the daemon's own socket" in proc.stderr, proc.stderr
    assert daemon.ovsr("list-br").returncode == 0


def test_a_client_that_stopped_reading_is_dropped(daemon: DaemonProcess) -> None:
    """A dead peer whose receive window is full: the probe must still disconnect it."""
    created = daemon.ovsr(
        *("--", "--id=@m", "create", "Manager", "target=ptcp:0:127.0.0.1"),
        "inactivity_probe=1000",
        *("--", "set", "Open_vSwitch", ".", "manager_options=@m"),
    )
    assert created.returncode == 0, created.stderr
    port = int(wait_for_status(daemon, "bound_port")["status"]["bound_port"])
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", port))
    try:
        request = json.dumps({"id": 1, "method": "get_schema", "params": ["Open_vSwitch"]})
        stuck.sendall(request.encode() * 300)  # replies pile up: it never reads them
        wait_for_connected(daemon)
        deadline = time.monotonic() + 15
        while manager(daemon)["is_connected"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert manager(daemon)["is_connected"] is False, "the stuck client is still connected"
    finally:
        stuck.close()
