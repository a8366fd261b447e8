"""Bad input on the wire gets an RFC 7047 error; the server never crashes, never applies
part of a transaction, and keeps serving other clients."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from ovs_runtime.db.jsonrpc import MessageFramer
from tests.daemon_process import DaemonProcess


class Raw:
    """A raw socket to the daemon, for sending exactly the bytes a test wants."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.framer = MessageFramer(1 << 30)
        self.pending: list[Any] = []

    def send(self, data: bytes | dict[str, Any]) -> None:
        self.sock.sendall(data if isinstance(data, bytes) else json.dumps(data).encode())

    def recv(self) -> Any:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.pending.extend(self.framer.feed(data))
        return self.pending.pop(0)

    def call(self, method: str, params: list[Any], msg_id: Any = 1) -> Any:
        self.send({"method": method, "params": params, "id": msg_id})
        return self.recv()

    def close(self) -> None:
        self.sock.close()


def bridge_names(daemon: DaemonProcess) -> list[str]:
    rows = daemon.transact({"op": "select", "table": "Bridge", "where": [], "columns": ["name"]})[
        0
    ]["rows"]
    return sorted(r["name"] for r in rows)


def healthy(daemon: DaemonProcess) -> bool:
    raw = Raw(daemon.socket)
    try:
        return raw.call("echo", ["ping"]) == {"result": ["ping"], "error": None, "id": 1}
    finally:
        raw.close()


def test_malformed_json_gets_error_then_close(daemon: DaemonProcess) -> None:
    raw = Raw(daemon.socket)
    raw.send(b'{"method": "echo", "params": [1, 2,, 3], "id": 1}')
    reply = raw.recv()
    assert reply["error"]["error"] == "syntax error"
    assert raw.recv() is None  # connection closed: the stream cannot be resynchronised
    assert healthy(daemon)


def test_wrong_shapes_keep_the_session(daemon: DaemonProcess) -> None:
    raw = Raw(daemon.socket)
    for message, msg_id in (
        ([1, 2, 3], None),
        ({"method": "echo", "params": {}, "id": 7}, 7),
        ({"method": 3, "params": [], "id": 8}, 8),
        ({"id": 9}, 9),
    ):
        raw.send(json.dumps(message).encode())
        reply = raw.recv()
        assert reply["error"]["error"] == "syntax error", message
        assert reply["id"] == msg_id
    assert raw.call("echo", ["still here"])["result"] == ["still here"]
    raw.close()


def test_strings_that_are_not_unicode_are_refused(daemon: DaemonProcess) -> None:
    """A lone UTF-16 surrogate (escaped, or raw in the UTF-8) is JSON Python accepts,
    but not Unicode: stored, it would make every strict client (the OVS tools) drop its
    connection on reading the row. The request gets an error; nothing is stored; the
    session goes on."""
    assert daemon.ovsr("add-br", "br0").returncode == 0
    raw = Raw(daemon.socket)
    try:
        update = (
            '{"method":"transact","params":["Open_vSwitch",{"op":"update","table":"Bridge",'
            '"where":[],"row":{"external_ids":["map",[["k",%s]]]}}],"id":%d}'
        )
        for msg_id, text in ((11, rb'"\ud800"'), (12, b'"x\xed\xa0\x80"')):
            raw.send((update % ("%s", msg_id)).encode() % text)
            reply = raw.recv()
            assert reply["id"] == msg_id and reply["error"]["error"] == "syntax error", reply
            assert "not valid Unicode" in reply["error"]["details"]
        # A valid pair is one character, and is fine.
        raw.send((update % ('"\\ud83d\\ude00"', 13)).encode())
        assert raw.recv()["error"] is None
        assert raw.call("echo", ["still here"], 14)["result"] == ["still here"]
    finally:
        raw.close()
    row = daemon.transact({"op": "select", "table": "Bridge", "where": []})[0]["rows"][0]
    assert row["external_ids"] == ["map", [["k", "\U0001f600"]]]
    listed = subprocess.run(
        ["ovs-vsctl", f"--db={daemon.db}", "--no-wait", "get", "Bridge", "br0", "external_ids"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr


def test_unknown_method_and_database(daemon: DaemonProcess) -> None:
    raw = Raw(daemon.socket)
    assert raw.call("frobnicate", [])["error"]["error"] == "unknown method"
    assert raw.call("get_schema", ["Nope"])["error"]["error"] == "unknown database"
    assert (
        raw.call("transact", ["Nope", {"op": "comment", "comment": "x"}])["error"]["error"]
        == "unknown database"
    )
    assert raw.call("list_dbs", [])["result"] == ["Open_vSwitch"]
    schema = raw.call("get_schema", ["Open_vSwitch"])["result"]
    assert schema["name"] == "Open_vSwitch" and "Interface" in schema["tables"]
    raw.close()


def test_violations_over_the_wire_change_nothing(daemon: DaemonProcess) -> None:
    assert daemon.ovsr("add-br", "br0").returncode == 0
    before = daemon.transact({"op": "select", "table": "Port", "where": []})[0]["rows"]
    cases = [
        # type violation after a valid op: the valid op must be rolled back too
        [
            {"op": "update", "table": "Bridge", "where": [], "row": {"fail_mode": "secure"}},
            {"op": "update", "table": "Port", "where": [], "row": {"tag": "x"}},
        ],
        # constraint violation
        [{"op": "update", "table": "Port", "where": [], "row": {"tag": 9999}}],
        # dangling reference
        [
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [],
                "mutations": [
                    ["ports", "insert", ["uuid", "11111111-2222-4333-8444-555555555555"]]
                ],
            }
        ],
        # duplicate index key
        [
            {"op": "insert", "table": "Interface", "uuid-name": "i", "row": {"name": "br0"}},
            {
                "op": "insert",
                "table": "Port",
                "uuid-name": "p",
                "row": {"name": "br0", "interfaces": ["named-uuid", "i"]},
            },
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [],
                "mutations": [["ports", "insert", ["named-uuid", "p"]]],
            },
        ],
    ]
    expected = [
        "syntax error",
        "constraint violation",
        "referential integrity violation",
        "constraint violation",
    ]
    for ops, tag in zip(cases, expected, strict=False):
        results = daemon.transact(*ops)
        errors = [r for r in results if isinstance(r, dict) and "error" in r]
        assert errors and errors[0]["error"] == tag, results
    after = daemon.transact({"op": "select", "table": "Port", "where": []})[0]["rows"]
    assert after == before
    bridge = daemon.transact({"op": "select", "table": "Bridge", "where": []})[0]["rows"][0]
    assert bridge["fail_mode"] == ["set", []]


def test_oversized_message(tmp_path: Path) -> None:
    small = DaemonProcess(
        tmp_path / "small", ("--datapath", "none", "--max-message-bytes", "65536")
    ).start()
    try:
        raw = Raw(small.socket)
        huge = {
            "method": "transact",
            "params": [
                "Open_vSwitch",
                {"op": "insert", "table": "Bridge", "row": {"name": "x" * 200_000}},
            ],
            "id": 1,
        }
        try:
            raw.send(json.dumps(huge).encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before we finish writing
        reply = raw.recv()
        assert reply is None or "exceeds the limit" in reply["error"]["details"]
        assert "exceeds the limit of 65536 bytes" in small.log()
        assert healthy(small)
        assert bridge_names(small) == []
    finally:
        small.stop()


def test_disconnect_mid_transaction(daemon: DaemonProcess) -> None:
    message = json.dumps(
        {
            "method": "transact",
            "params": [
                "Open_vSwitch",
                {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "half"}},
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [],
                    "mutations": [["bridges", "insert", ["named-uuid", "b"]]],
                },
            ],
            "id": 1,
        }
    ).encode()
    for cut in (10, len(message) // 2, len(message) - 1):
        raw = Raw(daemon.socket)
        raw.send(message[:cut])
        raw.close()
    assert healthy(daemon)
    assert bridge_names(daemon) == []


def test_hundred_concurrent_clients(daemon: DaemonProcess) -> None:
    results: dict[int, Any] = {}
    barrier = threading.Barrier(100)

    def client(n: int) -> None:
        raw = Raw(daemon.socket)
        try:
            barrier.wait()
            ops = [
                {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": f"c{n}"}},
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [],
                    "mutations": [["bridges", "insert", ["named-uuid", "b"]]],
                },
            ]
            results[n] = raw.call("transact", ["Open_vSwitch", *ops], msg_id=n)
        finally:
            raw.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 100
    assert all(r["error"] is None and "uuid" in r["result"][0] for r in results.values())
    assert bridge_names(daemon) == sorted(f"c{n}" for n in range(100))


def test_monitor_notifications_and_cancel(daemon: DaemonProcess) -> None:
    watcher = Raw(daemon.socket)
    initial = watcher.call("monitor", ["Open_vSwitch", "w", {"Bridge": {"columns": ["name"]}}])
    assert initial["result"] == {}
    assert daemon.ovsr("add-br", "br7").returncode == 0
    update = watcher.recv()
    assert update["method"] == "update" and update["params"][0] == "w"
    assert [row["new"]["name"] for row in update["params"][1]["Bridge"].values()] == ["br7"]
    assert watcher.call("monitor_cancel", ["w"], msg_id=2)["result"] == {}
    assert watcher.call("monitor_cancel", ["w"], msg_id=3)["error"]["error"] == "unknown monitor"
    watcher.close()


def test_wait_blocks_until_another_commit(daemon: DaemonProcess) -> None:
    waiter = Raw(daemon.socket)
    waiter.send(
        {
            "method": "transact",
            "params": [
                "Open_vSwitch",
                {
                    "op": "wait",
                    "table": "Bridge",
                    "where": [["name", "==", "late"]],
                    "columns": ["name"],
                    "until": "==",
                    "rows": [{"name": "late"}],
                    "timeout": 10000,
                },
            ],
            "id": 5,
        }
    )
    assert daemon.ovsr("add-br", "late").returncode == 0
    assert waiter.recv() == {"result": [{}], "error": None, "id": 5}
    waiter.send(
        {
            "method": "transact",
            "params": [
                "Open_vSwitch",
                {
                    "op": "wait",
                    "table": "Bridge",
                    "where": [],
                    "columns": ["name"],
                    "until": "==",
                    "rows": [],
                    "timeout": 200,
                },
            ],
            "id": 6,
        }
    )
    reply = waiter.recv()
    assert reply["id"] == 6 and reply["result"][0]["error"] == "timed out"
    waiter.close()


def test_locks(daemon: DaemonProcess) -> None:
    a, b = Raw(daemon.socket), Raw(daemon.socket)
    assert a.call("lock", ["L"])["result"] == {"locked": True}
    assert b.call("lock", ["L"])["result"] == {"locked": False}
    assert (
        b.call("transact", ["Open_vSwitch", {"op": "assert", "lock": "L"}])["result"][0]["error"]
        == "not owner"
    )
    assert b.call("steal", ["L"], msg_id=2)["result"] == {"locked": True}
    assert a.recv() == {"method": "stolen", "params": ["L"], "id": None}
    assert b.call("transact", ["Open_vSwitch", {"op": "assert", "lock": "L"}], msg_id=3)[
        "result"
    ] == [{}]
    a.close()
    b.close()
