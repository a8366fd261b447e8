"""OVSDB managers: the database served on the targets of ``Open_vSwitch.manager_options``,
as ovsdb-server does with ``--remote=db:Open_vSwitch,Open_vSwitch,manager_options``
(``ovsr set-manager ptcp:6640:127.0.0.1``; OpenStack and OVN tools connect this way).

Passive targets are served: ``ptcp:PORT[:IP]`` (IPv4 on every address without an IP,
as OVS; an IPv6 one in brackets, ``ptcp:6640:[::1]``; port 0 picks a free port) and
``punix:PATH`` (never the daemon's own socket, never over a file that is not a socket;
removed again when the target goes). Each Manager row reports, with OVS's keys,
``is_connected`` and ``status``: ``bound_port``, ``sec_since_connect``,
``sec_since_disconnect``, ``n_connections`` (from 2)
and ``last_error`` when the target cannot be opened; such a target is tried again every
second. TCP clients that stay silent get an echo request after ``inactivity_probe`` ms
(default 5000, 0 for never) and are dropped if still silent after as long again (unix
socket clients are not probed, as in OVS). A target
removed from ``manager_options`` stops listening and its clients are disconnected.
``max_backoff`` and ``connection_mode`` concern active connections and are only stored.

Not supported, and refused when written, naming the row: SSL (``ssl:``, ``pssl:``) and
active targets (``tcp:``, ``unix:``), with which the switch would connect out to a
manager. Like ovsdb-server's, a ``ptcp:`` listener has no authentication: bind it to
loopback or a management network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.db.database import Database, RowChange
from ovs_runtime.db.datum import as_list, scalar
from ovs_runtime.db.server import OvsdbServer

log = logging.getLogger(__name__)

DEFAULT_PROBE_MS = 5000  # ovsdb-server's default inactivity probe
AGE_REFRESH = 5.0  # seconds between rewrites of status that changed only by its clocks
AGE_KEYS = ("sec_since_connect", "sec_since_disconnect")


class ManagerTargetError(ValueError):
    pass


@dataclass(frozen=True)
class ManagerTarget:
    text: str
    host: str | None = None  # ptcp
    port: int = 0
    path: str | None = None  # punix


@dataclass
class Listener:
    server: asyncio.base_events.Server
    target: ManagerTarget
    probe_ms: int = DEFAULT_PROBE_MS
    last_connect: float | None = None
    last_disconnect: float | None = None
    known: set[Any] = field(default_factory=set)  # sessions seen, to notice departures


def canonical_path(path: str) -> str:
    """``path`` with its directory's symlinks resolved (``/var/run`` is ``/run``), so
    two spellings of one socket are recognised as one."""
    directory, name = os.path.split(os.path.normpath(path))
    return os.path.join(os.path.realpath(directory), name)


def parse_target(text: str) -> ManagerTarget:
    kind, _, rest = text.partition(":")
    if kind == "punix":
        if not rest.startswith("/"):
            raise ManagerTargetError(f"target {text!r}: punix needs an absolute path")
        return ManagerTarget(text, path=canonical_path(rest))
    if kind == "ptcp":
        port_text, _, host = rest.partition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            port = int(port_text)
            if not 0 <= port <= 65535:
                raise ValueError
            if host:
                ipaddress.ip_address(host)
        except ValueError:
            raise ManagerTargetError(
                f"target {text!r} is not ptcp:PORT[:IP] (like ptcp:6640:127.0.0.1 or "
                "ptcp:6640:[::1])"
            ) from None
        return ManagerTarget(text, host=host or "0.0.0.0", port=port)
    if kind in ("ssl", "pssl"):
        raise ManagerTargetError(f"target {text!r}: SSL managers are not supported")
    if kind in ("tcp", "unix"):
        raise ManagerTargetError(
            f"target {text!r}: active managers (the switch connecting out) are not "
            "supported; use a passive target, ptcp:PORT[:IP] or punix:PATH"
        )
    raise ManagerTargetError(
        f"target {text!r} is not a manager target; expected ptcp:PORT[:IP] or punix:PATH"
    )


def manager_check(reserved_paths: set[str]) -> Callable[[Any], None]:
    """The commit check for Manager rows; ``reserved_paths``: the daemon's own sockets,
    which a ``punix:`` target must not replace."""
    reserved = {canonical_path(p) for p in reserved_paths}

    def check_managers(view: Any) -> None:
        from ovs_runtime.db.errors import OvsdbError

        for row_uuid, row in view.changed_rows("Manager", ("target",)):
            try:
                target = parse_target(scalar(row["target"], ""))
            except ManagerTargetError as exc:
                raise OvsdbError("constraint violation", f"Manager {row_uuid}: {exc}") from None
            if target.path in reserved:
                raise OvsdbError(
                    "constraint violation",
                    f"Manager {row_uuid}: target {target.text!r} is the daemon's own socket, "
                    "already served; choose another path",
                )

    return check_managers


class ManagerListeners:
    """Keeps one listener per target of ``manager_options`` and writes Manager status."""

    def __init__(self, db: Database, server: OvsdbServer) -> None:
        self.db = db
        self.server = server
        self.listening: dict[str, Listener] = {}
        self.errors: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # (asyncio keeps only weak references)
        self._socket_ids: dict[str, tuple[int, int]] = {}  # punix path -> (st_dev, st_ino)
        self._lock = asyncio.Lock()
        self._ages_written = 0.0
        self._pending = False  # a change arrived: reconcile (again)
        db.listeners.append(self._on_commit)

    def _on_commit(self, changes: list[RowChange], _txn_id: str) -> None:
        if not any(c.table in ("Manager", "Open_vSwitch") for c in changes):
            return
        if not self._pending:
            self._pending = True
            task = asyncio.get_running_loop().create_task(self.reconcile())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def wanted(self) -> dict[str, tuple[ManagerTarget, int]]:
        """target text -> (target, inactivity probe in ms)"""
        managers = self.db.tables["Manager"]
        wanted = {}
        for root in self.db.tables["Open_vSwitch"].values():
            for ref in as_list(root["manager_options"]):
                row = managers.get(ref)
                if row is None:
                    continue
                text = scalar(row["target"], "")
                try:
                    target = parse_target(text)
                except ManagerTargetError:
                    continue  # written before the commit check existed
                probe = scalar(row["inactivity_probe"], DEFAULT_PROBE_MS)
                if target.path is not None:
                    probe = 0  # as OVS: no probes over unix sockets
                wanted[text] = (target, max(0, int(probe)))
        return wanted

    async def reconcile(self) -> None:
        """One pass at a time; a change during a pass causes another."""
        async with self._lock:
            self._pending = False
            wanted = self.wanted()
            for text in set(self.listening) - set(wanted):
                self._close(text)
                log.info("manager %s: no longer listening", text)
            for text in set(self.errors) - set(wanted):
                del self.errors[text]
            paths = {held.target.path for held in self.listening.values() if held.target.path}
            for text, (target, probe_ms) in sorted(wanted.items()):
                listener = self.listening.get(text)
                if listener is not None:
                    listener.probe_ms = probe_ms
                    continue
                if target.path is not None and target.path in paths:
                    self.errors[text] = f"{target.path} is already served by another target"
                    continue
                try:
                    server = await self._open(target)
                except OSError as exc:
                    if self.errors.get(text) != str(exc):
                        log.warning("manager %s: cannot listen: %s", text, exc)
                    self.errors[text] = str(exc)
                    continue
                self.errors.pop(text, None)
                self.listening[text] = Listener(server, target, probe_ms)
        self.write_status()

    async def _open(self, target: ManagerTarget) -> asyncio.base_events.Server:
        path = target.path
        if path is not None and os.path.lexists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise OSError(f"{path} exists and is not a socket; not replacing it")
            if _answers(path):
                raise OSError(f"{path} is a socket some program listens on; not replacing it")
        server = await self.server.listen_remote(
            target.text, host=target.host, port=target.port, path=path
        )
        if path is not None:
            info = os.lstat(path)
            self._socket_ids[path] = (info.st_dev, info.st_ino)
        return server

    def _close(self, text: str) -> None:
        listener = self.listening.pop(text)
        listener.server.close()
        self.server.close_sessions_from(text)
        path = listener.target.path
        if path is not None:
            ours = self._socket_ids.pop(path, None)
            try:
                info = os.lstat(path)
                if (info.st_dev, info.st_ino) == ours:  # still the socket we made
                    os.unlink(path)
            except OSError:
                pass

    async def tick(self) -> None:
        """Every second: retry targets that failed, probe silent clients, write status."""
        if self.errors:
            await self.reconcile()
        now = time.monotonic()
        for text, listener in self.listening.items():
            if listener.probe_ms:
                for session in self.server.sessions_from(text):
                    _probe(session, listener.probe_ms / 1000, now)
        self.write_status()

    def status(self, text: str) -> tuple[bool, dict[str, str]]:
        listener = self.listening.get(text)
        if listener is None:
            error = self.errors.get(text)
            return False, ({"last_error": error} if error else {})
        sessions = self.server.sessions_from(text)
        now = time.monotonic()
        current = set(sessions)
        if current - listener.known:
            listener.last_connect = max(s.connected_at for s in current - listener.known)
        if listener.known - current:
            listener.last_disconnect = now
        listener.known = current
        status: dict[str, str] = {}
        sockets = listener.server.sockets
        if sockets and isinstance(sockets[0].getsockname(), tuple):
            status["bound_port"] = str(sockets[0].getsockname()[1])
        if len(sessions) > 1:
            status["n_connections"] = str(len(sessions))
        if listener.last_connect is not None:
            status["sec_since_connect"] = str(int(now - listener.last_connect))
        if listener.last_disconnect is not None:
            status["sec_since_disconnect"] = str(int(now - listener.last_disconnect))
        return bool(sessions), status

    def write_status(self) -> None:
        """Manager.is_connected and status, for rows whose values changed (the ages only
        every ``AGE_REFRESH`` seconds, so an idle manager is not a commit a second)."""
        ops = []
        now = time.monotonic()
        ages_too = now - self._ages_written >= AGE_REFRESH
        if ages_too:
            self._ages_written = now
        for row_uuid, row in self.db.tables["Manager"].items():
            connected, status = self.status(scalar(row["target"], ""))
            pairs = sorted([k, v] for k, v in status.items())
            current = sorted([k, v] for k, v in row["status"].to_json()[1])
            same_connection = row["is_connected"].to_json() == connected
            if same_connection and current == pairs:
                continue
            if same_connection and not ages_too and _without_ages(current) == _without_ages(pairs):
                continue  # only the clocks moved: written every AGE_REFRESH seconds
            ops.append(
                {
                    "op": "update",
                    "table": "Manager",
                    "where": [["_uuid", "==", ["uuid", str(row_uuid)]]],
                    "row": {"is_connected": connected, "status": ["map", pairs]},
                }
            )
        if ops:
            failed = [r for r in self.db.transact(ops) if isinstance(r, dict) and "error" in r]
            if failed:
                log.error("cannot write manager status: %s", failed[0])

    async def close(self) -> None:
        async with self._lock:  # (not while a pass is opening a listener)
            for text in list(self.listening):
                self._close(text)


def _without_ages(pairs: list[list[str]]) -> list[list[str]]:
    return [p for p in pairs if p[0] not in AGE_KEYS]


def _probe(session: Any, interval: float, now: float) -> None:
    """RFC 7047 echo as an inactivity probe: after ``interval`` s of silence, ask; after
    as long again, give up on the client."""
    idle = now - session.last_activity
    if idle >= 2 * interval and session.probe_sent:
        if not session.closed:
            log.info("client %s: no answer to an inactivity probe; disconnecting", session.peer)
        session.closed = True
        session.writer.transport.abort()  # (close() would wait for a reader that is gone)
    elif idle >= interval and not session.probe_sent:
        session.probe_sent = True
        session.send({"method": "echo", "params": [], "id": "echo"})


def _answers(path: str) -> bool:
    """Whether a program accepts connections on the unix socket at ``path``."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True
