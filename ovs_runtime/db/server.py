"""The OVSDB server: RFC 7047 over JSON-RPC on unix sockets (and TCP for managers),
with asyncio.

One event loop serves every client. Each connection is a ``Session`` with its own
monitors and locks. Requests are handled one at a time per server, so transactions are
serialised without further locking; a ``wait`` that must block is parked and retried
after each later commit, until it succeeds or its timeout expires.

Bad input never reaches the database: a message that is not JSON, or larger than the
limit, gets an error reply and the connection is closed (the byte stream cannot be
resynchronised); a well-formed message of the wrong shape gets an error reply and the
session continues.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ovs_runtime.db import jsonrpc
from ovs_runtime.db.database import Database, RowChange
from ovs_runtime.db.errors import OvsdbError
from ovs_runtime.db.locks import LockTable
from ovs_runtime.db.monitor import Monitor, parse_monitor_requests
from ovs_runtime.db.transaction import TxnContext, WaitBlocked

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
READ_CHUNK = 256 * 1024
LARGE_REQUEST_BYTES = 1 << 20  # a request this big calls ``large_request_hook``


class RpcError(Exception):
    """A JSON-RPC level error (the reply's ``error`` member)."""

    def __init__(self, error: str, details: str = "") -> None:
        super().__init__(f"{error}: {details}")
        self.error = error
        self.details = details


@dataclass
class ParkedTransaction:
    session: Session
    msg_id: Any
    ops: list[Any]
    deadline: float


class Session:
    def __init__(
        self, server: OvsdbServer, writer: asyncio.StreamWriter, peer: str, origin: str = ""
    ) -> None:
        self.server = server
        self.writer = writer
        self.peer = peer
        self.origin = origin  # the listener it came in on ("" for the daemon's own socket)
        self.connected_at = self.last_activity = time.monotonic()
        self.probe_sent = False  # an inactivity probe (echo) awaits any answer
        self.monitors: dict[str, Monitor] = {}
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        if self.closed or self.writer.is_closing():
            return
        try:
            data = jsonrpc.encode(message)
        except (TypeError, ValueError):
            log.exception("cannot encode a reply to %s", self.peer)
            data = jsonrpc.encode(
                jsonrpc.error_reply(message.get("id"), "internal error", "unencodable reply")
            )
        self.writer.write(data)

    def notify(self, method: str, params: list[Any]) -> None:
        self.send({"method": method, "params": params, "id": None})


class OvsdbServer:
    def __init__(self, db: Database, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.db = db
        self.max_message_bytes = max_message_bytes
        self.sessions: set[Session] = set()
        self.locks = LockTable(lambda s, m, p: s.notify(m, p))
        self.parked: list[ParkedTransaction] = []
        self.servers: list[asyncio.base_events.Server] = []
        # Daemon-specific methods beyond RFC 7047 (like ovs-appctl's), e.g. "ovsr/fdb-show".
        self.extra_methods: dict[str, Callable[[list[Any]], Any]] = {
            "ovsr/check-transaction": self._check_transaction,
        }
        # Called (repeatedly) while a request of LARGE_REQUEST_BYTES or more arrives.
        self.large_request_hook: Callable[[], None] | None = None
        db.listeners.append(self._on_commit)

    # -- sockets --------------------------------------------------------------------

    async def listen_unix(self, path: str, mode: int = 0o660, group: str | None = None) -> None:
        if os.path.exists(path):
            os.unlink(path)  # stale: the run-dir lock (daemon) guarantees no live owner
        old_umask = os.umask(0o117)
        try:
            server = await asyncio.start_unix_server(self._serve, path=path, limit=READ_CHUNK)
        finally:
            os.umask(old_umask)
        os.chmod(path, mode)
        if group:
            import grp

            try:
                os.chown(path, -1, grp.getgrnam(group).gr_gid)
            except KeyError:
                log.info("group %s does not exist; socket %s stays root-only", group, path)
        self.servers.append(server)
        log.info("listening on unix:%s", path)

    async def listen_remote(
        self, origin: str, host: str | None = None, port: int = 0, path: str | None = None
    ) -> asyncio.base_events.Server:
        """Another listener (a manager's ``ptcp:`` or ``punix:`` target): TCP on
        ``host``:``port``, or a unix socket at ``path``. Its sessions carry ``origin``."""
        serve = functools.partial(self._serve, origin=origin)
        if path is not None:
            if os.path.lexists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # a stale socket (anything else makes the bind fail)
            server = await asyncio.start_unix_server(serve, path=path, limit=READ_CHUNK)
        else:
            server = await asyncio.start_server(
                serve, host=host, port=port, limit=READ_CHUNK, reuse_address=True
            )
        log.info("listening on %s", origin)
        return server

    def sessions_from(self, origin: str) -> list[Session]:
        return [s for s in self.sessions if s.origin == origin]

    def close_sessions_from(self, origin: str) -> None:
        for session in self.sessions_from(origin):
            session.closed = True
            session.writer.transport.abort()  # at once, even with unsent replies queued

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for session in list(self.sessions):
            session.closed = True
            session.writer.close()
        for server in self.servers:
            await server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, origin: str = ""
    ) -> None:
        peername = writer.get_extra_info("peername")
        if isinstance(peername, tuple) and peername:
            peer = f"tcp:{peername[0]}:{peername[1]}"
        else:
            peer = f"fd{writer.get_extra_info('socket').fileno()}"
        session = Session(self, writer, peer, origin)
        self.sessions.add(session)
        framer = jsonrpc.MessageFramer(self.max_message_bytes, check_text=True)
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                session.last_activity = time.monotonic()
                session.probe_sent = False
                if (
                    self.large_request_hook
                    and len(framer.buffer) + len(data) >= LARGE_REQUEST_BYTES
                ):
                    self.large_request_hook()
                try:
                    messages = framer.feed(data)
                except jsonrpc.FramingError as exc:
                    log.warning("client %s: %s; closing the connection", session.peer, exc)
                    session.send(jsonrpc.error_reply(None, "syntax error", str(exc)))
                    break
                for message in messages:
                    self._handle(session, message)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("client %s: %s", session.peer, exc)
        finally:
            self._drop_session(session)
            try:
                await writer.drain()
            except ConnectionError:
                pass
            writer.close()

    def _drop_session(self, session: Session) -> None:
        session.closed = True
        self.sessions.discard(session)
        self.locks.release_all(session)
        self.parked = [p for p in self.parked if p.session is not session]

    # -- dispatch -------------------------------------------------------------------

    def _handle(self, session: Session, message: Any) -> None:
        if isinstance(message, jsonrpc.InvalidText):
            details = (
                f"string {ascii(message.text)[:80]} is not valid Unicode (it holds a lone "
                "UTF-16 surrogate); OVSDB strings must be valid UTF-8"
            )
            session.send(jsonrpc.error_reply(message.msg_id, "syntax error", details))
            return
        try:
            kind = jsonrpc.classify(message)
        except jsonrpc.ShapeError as exc:
            session.send(jsonrpc.error_reply(exc.msg_id, "syntax error", str(exc)))
            return
        if isinstance(kind, jsonrpc.Response):
            return  # replies to our own requests (none yet) or to echo probes
        handler = getattr(self, "rpc_" + kind.method, None)
        extra = self.extra_methods.get(kind.method)
        if extra is not None:
            handler = lambda _session, _id, params: extra(params)  # noqa: E731
        if handler is None:
            if kind.id is not None:
                session.send(jsonrpc.error_reply(kind.id, "unknown method", kind.method))
            return
        try:
            result = handler(session, kind.id, kind.params)
        except RpcError as exc:
            if kind.id is not None:
                session.send(jsonrpc.error_reply(kind.id, exc.error, exc.details))
            return
        except OvsdbError as exc:
            if kind.id is not None:
                session.send({"result": None, "error": exc.to_json(), "id": kind.id})
            return
        except Exception:  # a bug must cost one reply, never the server
            log.exception("internal error handling %s", kind.method)
            if kind.id is not None:
                session.send(jsonrpc.error_reply(kind.id, "internal error", kind.method))
            return
        if kind.id is not None and result is not _DEFERRED:
            session.send({"result": result, "error": None, "id": kind.id})

    def _check_db(self, params: list[Any], position: int = 0) -> None:
        if len(params) <= position or not isinstance(params[position], str):
            raise RpcError("syntax error", "the first parameter must be a database name")
        if params[position] != self.db.name:
            raise RpcError(
                "unknown database",
                f'no database "{params[position]}"; this server has "{self.db.name}"',
            )

    # -- RFC 7047 methods ------------------------------------------------------------

    def rpc_list_dbs(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        return [self.db.name]

    def rpc_get_schema(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        self._check_db(params)
        return self.db.schema.to_json()

    def rpc_echo(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        return params

    def rpc_set_db_change_aware(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        return {}

    def rpc_transact(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        self._check_db(params)
        ops = params[1:]
        try:
            return self._run_transaction(session, ops, wait_expired=False)
        except WaitBlocked as blocked:
            deadline = time.monotonic() + blocked.timeout_ms / 1000.0
            self.parked.append(ParkedTransaction(session, msg_id, ops, deadline))
            if blocked.timeout_ms != float("inf"):
                asyncio.get_running_loop().call_later(
                    blocked.timeout_ms / 1000.0 + 0.001, self._retry_parked
                )
            return _DEFERRED

    def _check_transaction(self, params: list[Any]) -> Any:
        """``transact``'s params, run to the commit and not committed: what the real
        transaction would answer now, with the commit checks, changing nothing. A
        ``wait`` that is not satisfied answers "timed out" instead of blocking."""
        self._check_db(params)
        return self.db.transact(params[1:], TxnContext(wait_expired=True), dry_run=True)

    def _run_transaction(self, session: Session, ops: list[Any], wait_expired: bool) -> Any:
        ctx = TxnContext(self.locks.held_by(session), wait_expired)
        return self.db.transact(ops, ctx)

    def _retry_parked(self) -> None:
        parked, self.parked = self.parked, []
        now = time.monotonic()
        for p in parked:
            if p.session.closed:
                continue
            try:
                result = self._run_transaction(p.session, p.ops, wait_expired=now >= p.deadline)
            except WaitBlocked:
                self.parked.append(p)
                continue
            p.session.send({"result": result, "error": None, "id": p.msg_id})

    def _register_monitor(
        self, session: Session, params: list[Any], version: int
    ) -> tuple[Monitor, str]:
        self._check_db(params)
        if len(params) < 3:
            raise RpcError("syntax error", "monitor needs [db, monitor-id, requests]")
        key = json.dumps(params[1], sort_keys=True)
        if key in session.monitors:
            raise RpcError("duplicate monitor ID", f"monitor {params[1]!r} already exists")
        tables = parse_monitor_requests(self.db.schema, params[2], conditional=version > 1)
        monitor = Monitor(params[1], version, tables)
        session.monitors[key] = monitor
        return monitor, key

    def rpc_monitor(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        monitor, _ = self._register_monitor(session, params, 1)
        return monitor.initial(self.db.tables)

    def rpc_monitor_cond(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        monitor, _ = self._register_monitor(session, params, 2)
        return monitor.initial(self.db.tables)

    def rpc_monitor_cond_since(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        # No transaction history is kept, so the answer is always "not found": the
        # client receives the full current contents, which is always correct.
        monitor, _ = self._register_monitor(session, params, 3)
        return [False, self.db.last_txn_id, monitor.initial(self.db.tables)]

    def rpc_monitor_cond_change(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        if len(params) != 3:
            raise RpcError("syntax error", "monitor_cond_change needs [old-id, new-id, requests]")
        old_key = json.dumps(params[0], sort_keys=True)
        monitor = session.monitors.pop(old_key, None)
        if monitor is None:
            raise RpcError("unknown monitor", f"no monitor {params[0]!r}")
        new_key = json.dumps(params[1], sort_keys=True)
        monitor.monitor_id = params[1]
        session.monitors[new_key] = monitor
        updates = monitor.change_conditions(self.db.schema, params[2], self.db.tables)
        if updates:
            self._send_updates(session, monitor, updates)
        return {}

    def rpc_monitor_cancel(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        if len(params) != 1:
            raise RpcError("syntax error", "monitor_cancel needs [monitor-id]")
        if session.monitors.pop(json.dumps(params[0], sort_keys=True), None) is None:
            raise RpcError("unknown monitor", f"no monitor {params[0]!r}")
        return {}

    def _lock_name(self, params: list[Any]) -> str:
        if len(params) != 1 or not isinstance(params[0], str):
            raise RpcError("syntax error", "lock methods take [lock-name]")
        name: str = params[0]
        return name

    def rpc_lock(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        return {"locked": self.locks.lock(session, self._lock_name(params))}

    def rpc_steal(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        self.locks.steal(session, self._lock_name(params))
        return {"locked": True}

    def rpc_unlock(self, session: Session, msg_id: Any, params: list[Any]) -> Any:
        self.locks.unlock(session, self._lock_name(params))
        return {}

    # -- change notification ---------------------------------------------------------

    def _on_commit(self, changes: list[RowChange], txn_id: str) -> None:
        for session in list(self.sessions):
            for monitor in list(session.monitors.values()):
                updates = monitor.updates_for(changes)
                if updates:
                    self._send_updates(session, monitor, updates, txn_id)
        if self.parked:
            asyncio.get_running_loop().call_soon(self._retry_parked)

    def _send_updates(
        self, session: Session, monitor: Monitor, updates: dict[str, Any], txn_id: str = ""
    ) -> None:
        if monitor.version == 1:
            session.notify("update", [monitor.monitor_id, updates])
        elif monitor.version == 2:
            session.notify("update2", [monitor.monitor_id, updates])
        else:
            session.notify("update3", [monitor.monitor_id, txn_id or self.db.last_txn_id, updates])


_DEFERRED = object()
