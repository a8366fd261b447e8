"""OVSDB managers: the database served on the targets of ``Open_vSwitch.manager_options``,
as ovsdb-server does with ``--remote=db:Open_vSwitch,Open_vSwitch,manager_options``
(``ovsr set-manager ptcp:6640:127.0.0.1``; OpenStack and OVN tools connect this way).

Passive targets are served: ``ptcp:PORT[:IP]`` (IP defaults to every address; an IPv6
one in brackets, ``ptcp:6640:[::1]``; port 0 picks a free port) and ``punix:PATH``.
Each Manager row reports, as OVS does, ``is_connected`` (any client connected) and
``status``: ``bound_port``, ``n_connections``, ``state`` and, when the target cannot be
opened, ``last_error``. A target removed from ``manager_options`` stops listening and
its clients are disconnected.

Not supported, and refused when written, naming the row: SSL (``ssl:``, ``pssl:``) and
active targets (``tcp:``, ``unix:``), with which the switch would connect out to a
manager. Like ovsdb-server's, a ``ptcp:`` listener has no authentication: bind it to
loopback or a management network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from ovs_runtime.db.database import Database, RowChange
from ovs_runtime.db.datum import as_list, scalar
from ovs_runtime.db.server import OvsdbServer

log = logging.getLogger(__name__)


class ManagerTargetError(ValueError):
    pass


@dataclass(frozen=True)
class ManagerTarget:
    text: str
    host: str | None = None  # ptcp
    port: int = 0
    path: str | None = None  # punix


def parse_target(text: str) -> ManagerTarget:
    kind, _, rest = text.partition(":")
    if kind == "punix":
        if not rest.startswith("/"):
            raise ManagerTargetError(f"target {text!r}: punix needs an absolute path")
        return ManagerTarget(text, path=rest)
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
        return ManagerTarget(text, host=host or None, port=port)
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


def check_managers(view: Any) -> None:
    from ovs_runtime.db.errors import OvsdbError

    for row_uuid, row in view.changes.get("Manager", {}).items():
        if row is not None:
            try:
                parse_target(scalar(row["target"], ""))
            except ManagerTargetError as exc:
                raise OvsdbError("constraint violation", f"Manager {row_uuid}: {exc}") from None


class ManagerListeners:
    """Keeps one listener per target of ``manager_options`` and writes Manager status."""

    def __init__(self, db: Database, server: OvsdbServer) -> None:
        self.db = db
        self.server = server
        self.listening: dict[str, asyncio.base_events.Server] = {}
        self.errors: dict[str, str] = {}
        self._scheduled = False
        db.listeners.append(self._on_commit)

    def _on_commit(self, changes: list[RowChange], _txn_id: str) -> None:
        if self._scheduled or not any(c.table in ("Manager", "Open_vSwitch") for c in changes):
            return
        self._scheduled = True
        asyncio.get_running_loop().create_task(self.reconcile())

    def wanted(self) -> dict[str, ManagerTarget]:
        managers = self.db.tables["Manager"]
        wanted = {}
        for root in self.db.tables["Open_vSwitch"].values():
            for ref in as_list(root["manager_options"]):
                row = managers.get(ref)
                if row is None:
                    continue
                text = scalar(row["target"], "")
                try:
                    wanted[text] = parse_target(text)
                except ManagerTargetError:
                    continue  # written before the commit check existed
        return wanted

    async def reconcile(self) -> None:
        self._scheduled = False
        wanted = self.wanted()
        for text in set(self.listening) - set(wanted):
            self.listening.pop(text).close()
            self.server.close_sessions_from(text)
            log.info("manager %s: no longer listening", text)
        for text in set(self.errors) - set(wanted):
            del self.errors[text]
        for text, target in sorted(wanted.items()):
            if text in self.listening:
                continue
            try:
                self.listening[text] = await self.server.listen_remote(
                    text, host=target.host, port=target.port, path=target.path
                )
                self.errors.pop(text, None)
            except OSError as exc:
                if self.errors.get(text) != str(exc):
                    log.warning("manager %s: cannot listen: %s", text, exc)
                self.errors[text] = str(exc)
        self.write_status()

    def status(self, text: str) -> tuple[bool, dict[str, str]]:
        clients = len(self.server.sessions_from(text))
        server = self.listening.get(text)
        if server is None:
            state = {"state": "BACKOFF" if text in self.errors else "VOID"}
            if text in self.errors:
                state["last_error"] = self.errors[text]
            return False, state
        status = {"state": "ACTIVE" if clients else "LISTEN", "n_connections": str(clients)}
        sockets = server.sockets
        if sockets and isinstance(sockets[0].getsockname(), tuple):
            status["bound_port"] = str(sockets[0].getsockname()[1])
        return clients > 0, status

    def write_status(self) -> None:
        """Manager.is_connected and status, for rows whose values changed."""
        ops = []
        for row_uuid, row in self.db.tables["Manager"].items():
            connected, status = self.status(scalar(row["target"], ""))
            pairs = sorted([k, v] for k, v in status.items())
            current = sorted([k, v] for k, v in row["status"].to_json()[1])
            if row["is_connected"].to_json() == connected and current == pairs:
                continue
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
        for server in self.listening.values():
            server.close()
        self.listening.clear()
