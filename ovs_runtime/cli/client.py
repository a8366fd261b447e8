"""A blocking OVSDB JSON-RPC client with deadlines on every step.

``ovs-vsctl`` hangs when the daemon is down; this client does not: connecting, sending
and waiting for a reply all share one deadline, and failures raise ``ClientError`` with
a message that says which socket and what to check.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from typing import Any

from ovs_runtime.db.jsonrpc import FramingError, MessageFramer

DEFAULT_DB = "unix:/run/ovs-runtime/db.sock"


class ClientError(Exception):
    pass


def socket_path(target: str) -> str:
    if not target.startswith("unix:"):
        raise ClientError(f"unsupported database address {target!r}; use unix:PATH")
    return target[len("unix:") :]


class OvsdbClient:
    def __init__(self, target: str, timeout: float) -> None:
        self.target = target
        self.path = socket_path(target)
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.ids = itertools.count(1)
        self.framer = MessageFramer(1 << 31)
        self.pending: list[Any] = []  # notifications received while waiting for a reply
        self.sock = self._connect()

    def _remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ClientError(
                f"timed out after {self.timeout:g} s waiting for ovs-runtimed at {self.target} "
                "(is the daemon wedged? see its log; raise --timeout to wait longer)"
            )
        return remaining

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._remaining())
        try:
            sock.connect(self.path)
        except FileNotFoundError:
            sock.close()
            raise ClientError(
                f"cannot connect to {self.target}: no such socket (is ovs-runtimed running? "
                "try: systemctl status ovs-runtime)"
            ) from None
        except PermissionError:
            sock.close()
            raise ClientError(
                f"cannot connect to {self.target}: permission denied (run as root or as a "
                "member of the ovs-runtime group)"
            ) from None
        except OSError as exc:
            sock.close()
            raise ClientError(f"cannot connect to {self.target}: {exc.strerror or exc}") from None
        return sock

    def close(self) -> None:
        self.sock.close()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        self.sock.settimeout(self._remaining())
        try:
            self.sock.sendall(data)
        except TimeoutError:
            self._remaining()
            raise ClientError(f"timed out sending to {self.target}") from None
        except OSError as exc:
            raise ClientError(f"lost the connection to {self.target}: {exc}") from None

    def receive(self) -> Any:
        """The next message from the server, within the deadline."""
        while not self.pending:
            self.sock.settimeout(self._remaining())
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                self._remaining()
                continue
            except OSError as exc:
                raise ClientError(f"lost the connection to {self.target}: {exc}") from None
            if not data:
                raise ClientError(f"ovs-runtimed at {self.target} closed the connection")
            try:
                self.pending.extend(self.framer.feed(data))
            except FramingError as exc:
                raise ClientError(f"garbled reply from {self.target}: {exc}") from None
        return self.pending.pop(0)

    def call(self, method: str, params: list[Any]) -> Any:
        msg_id = next(self.ids)
        self.send({"method": method, "params": params, "id": msg_id})
        held: list[Any] = []
        try:
            while True:
                message = self.receive()
                if (
                    isinstance(message, dict)
                    and message.get("id") == msg_id
                    and "method" not in message
                ):
                    if message.get("error") is not None:
                        err = message["error"]
                        text = (
                            err.get("details") or err.get("error") if isinstance(err, dict) else err
                        )
                        raise ClientError(f"{method} failed: {text}")
                    return message.get("result")
                if isinstance(message, dict) and message.get("method") == "echo":
                    self.send(
                        {"result": message.get("params"), "error": None, "id": message.get("id")}
                    )
                    continue
                held.append(message)
        finally:
            self.pending[:0] = held


def default_target() -> str:
    return os.environ.get("OVSR_DB", DEFAULT_DB)
