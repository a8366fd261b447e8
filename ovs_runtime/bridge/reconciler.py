"""The reconciler: bring the running bridges in line with the database, then ack cur_cfg.

It listens to commits, and on any change to the Open_vSwitch/Bridge/Port/Interface
tables schedules one reconciliation on the event loop (never inside the commit, so a
burst of commits costs one pass). Each pass diffs the desired specs against what runs,
logs one line per bridge or port added, changed or removed, hands the changes to the
datapath backend, and finally sets ``cur_cfg = next_cfg``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from ovs_runtime.bridge import ofport_allocator
from ovs_runtime.bridge.desired_state import BridgeSpec, PortSpec, read_bridges, scalar
from ovs_runtime.db.database import Database, RowChange

log = logging.getLogger(__name__)

WATCHED_TABLES = frozenset({"Open_vSwitch", "Bridge", "Port", "Interface"})


class BridgeBackend(Protocol):
    """What the reconciler drives; the datapath layer implements it."""

    def add_bridge(self, spec: BridgeSpec) -> None: ...
    def remove_bridge(self, name: str) -> None: ...
    def add_port(self, bridge: str, spec: PortSpec) -> None: ...
    def update_port(self, bridge: str, spec: PortSpec) -> None: ...
    def remove_port(self, bridge: str, name: str) -> None: ...


class Reconciler:
    def __init__(self, db: Database, backend: BridgeBackend | None = None) -> None:
        self.db = db
        self.backend = backend
        self.running: dict[str, BridgeSpec] = {}
        self._scheduled = False
        self.on_applied: list[Callable[[int], None]] = []
        db.listeners.append(self._on_commit)

    def _on_commit(self, changes: list[RowChange], txn_id: str) -> None:
        if self._scheduled:
            return
        relevant = [c for c in changes if c.table in WATCHED_TABLES]
        # Our own cur_cfg write changes only Open_vSwitch.cur_cfg: no new work.
        if not relevant or all(_only_status(c) for c in relevant):
            return
        self._scheduled = True
        asyncio.get_running_loop().call_soon(self.reconcile)

    def reconcile(self) -> None:
        self._scheduled = False
        desired = read_bridges(self.db.tables)
        self._apply(desired)
        self._ack_cfg()

    def _apply(self, desired: dict[str, BridgeSpec]) -> None:
        for name in sorted(set(self.running) - set(desired)):
            log.info("bridge %s: removed", name)
            if self.backend:
                self.backend.remove_bridge(name)
            del self.running[name]
        for name, spec in sorted(desired.items()):
            current = self.running.get(name)
            if current is None:
                log.info("bridge %s: created (fail_mode %s)", name, spec.fail_mode)
                if self.backend:
                    self.backend.add_bridge(spec)
                old_ports: dict[str, PortSpec] = {}
            else:
                old_ports = {p.name: p for p in current.ports}
            new_ports = {p.name: p for p in spec.ports}
            for port in sorted(set(old_ports) - set(new_ports)):
                log.info("bridge %s: port %s removed", name, port)
                if self.backend:
                    self.backend.remove_port(name, port)
            for port, pspec in sorted(new_ports.items()):
                if port not in old_ports:
                    log.info("bridge %s: port %s added%s", name, port, _vlan_text(pspec))
                    if self.backend:
                        self.backend.add_port(name, pspec)
                elif old_ports[port] != pspec:
                    log.info("bridge %s: port %s changed%s", name, port, _vlan_text(pspec))
                    if self.backend:
                        self.backend.update_port(name, pspec)
            self.running[name] = spec

    def _status_ops(self) -> list[dict[str, object]]:
        """Interface.ofport for every interface of every running bridge."""
        ops: list[dict[str, object]] = []
        interfaces = self.db.tables["Interface"]
        for bridge in self.running.values():
            members = [(i, p) for p in bridge.ports for i in p.interfaces]
            current = {
                i.name: scalar(interfaces[i.uuid]["ofport"]) if i.uuid in interfaces else None
                for i, _ in members
            }
            numbers = ofport_allocator.allocate(
                bridge.name, [(i.name, i.ofport_request, current[i.name]) for i, _ in members]
            )
            for iface, _ in members:
                if current[iface.name] != numbers[iface.name]:
                    ops.append(
                        {
                            "op": "update",
                            "table": "Interface",
                            "where": [["_uuid", "==", ["uuid", str(iface.uuid)]]],
                            "row": {"ofport": numbers[iface.name]},
                        }
                    )
        return ops

    def _ack_cfg(self) -> None:
        ops = self._status_ops()
        acked = None
        for root_uuid, root in self.db.tables["Open_vSwitch"].items():
            next_cfg = scalar(root["next_cfg"], 0)
            if scalar(root["cur_cfg"], 0) != next_cfg:
                acked = next_cfg
                ops.append(
                    {
                        "op": "update",
                        "table": "Open_vSwitch",
                        "where": [["_uuid", "==", ["uuid", str(root_uuid)]]],
                        "row": {"cur_cfg": next_cfg},
                    }
                )
        if not ops:
            return
        results = self.db.transact(ops)
        failed = [r for r in results if isinstance(r, dict) and "error" in r]
        if failed:
            log.error("cannot write bridge status: %s", failed[0])
            return
        if acked is not None:
            for callback in self.on_applied:
                callback(acked)


STATUS_COLUMNS = frozenset(
    {
        "_version",
        "cur_cfg",
        "statistics",
        "status",
        "ofport",
        "link_state",
        "admin_state",
        "link_speed",
        "link_resets",
        "duplex",
        "mtu",
        "error",
        "ifindex",
        "mac_in_use",
        "datapath_id",
    }
)


def _only_status(change: RowChange) -> bool:
    """True for a change the daemon itself writes back (status), which needs no pass."""
    if change.old is None or change.new is None:
        return False
    differing = {c for c in change.new if change.old[c].values != change.new[c].values}
    return differing <= STATUS_COLUMNS


def _vlan_text(spec: PortSpec) -> str:
    parts = []
    if spec.tag is not None:
        parts.append(f"tag={spec.tag}")
    if spec.trunks:
        parts.append("trunks=" + ",".join(map(str, spec.trunks)))
    if spec.vlan_mode:
        parts.append(f"vlan_mode={spec.vlan_mode}")
    return " (" + " ".join(parts) + ")" if parts else ""
