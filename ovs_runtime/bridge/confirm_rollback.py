"""Confirm-or-rollback for risky changes (``ovsr apply --confirm-timeout N``).

Before applying, ``ovsr`` hands the daemon a snapshot of the switch configuration
(the Open_vSwitch row and the ``RESTORED_TABLES``: bridges, ports, interfaces, QoS and
queues, mirrors, NetFlow, sFlow and IPFIX) under a token. Unless ``ovsr confirm
TOKEN`` arrives within N seconds, over a fresh connection, the daemon restores the
snapshot in one transaction: so a change that cuts the host off the network (an uplink
moved into a bridge, say) undoes itself. The pending rollback lives in the daemon's
memory: a daemon restart inside the window cancels it (logged at start-up as lost).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from ovs_runtime.db.database import Database

log = logging.getLogger(__name__)

# Everything ``ovsr apply`` and the ovs-vsctl commands change, flow rules apart.
RESTORED_TABLES = (
    "Queue",
    "QoS",
    "Interface",
    "Port",
    "Mirror",
    "NetFlow",
    "sFlow",
    "IPFIX",
    "Bridge",
)
MAX_TIMEOUT = 3600


class SnapshotError(ValueError):
    pass


def restore_operations(db: Database, snapshot: dict[str, list[dict[str, Any]]]) -> list[Any]:
    """Ops that make the configuration tables what ``snapshot`` says they were."""
    ops: list[Any] = []
    for table in RESTORED_TABLES:
        if table not in db.schema.tables or table not in snapshot:
            continue
        schema = db.schema.tables[table]
        if schema.is_root:  # (rows of other tables go when nothing refers to them)
            kept = {row["_uuid"][1] for row in snapshot[table]}
            for row_uuid in db.tables[table]:
                if str(row_uuid) not in kept:
                    ops.append(
                        {
                            "op": "delete",
                            "table": table,
                            "where": [["_uuid", "==", ["uuid", str(row_uuid)]]],
                        }
                    )
        for row in snapshot.get(table, []):
            row_uuid = row["_uuid"][1]
            columns = {
                name: value
                for name, value in row.items()
                if name in schema.columns and schema.columns[name].persistent
            }
            if uuid.UUID(row_uuid) in db.tables[table]:
                mutable = {n: v for n, v in columns.items() if schema.columns[n].mutable}
                ops.append(
                    {
                        "op": "update",
                        "table": table,
                        "where": [["_uuid", "==", ["uuid", row_uuid]]],
                        "row": mutable,
                    }
                )
            else:
                ops.append({"op": "insert", "table": table, "uuid": row_uuid, "row": columns})
    roots = snapshot.get("Open_vSwitch", [])
    if roots:
        ops.append(
            {
                "op": "update",
                "table": "Open_vSwitch",
                "where": [],
                "row": {"bridges": roots[0]["bridges"]},
            }
        )
        ops.append(
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [["next_cfg", "+=", 1]],
            }
        )
    ops.append({"op": "comment", "comment": "ovs-runtimed: rollback of an unconfirmed change"})
    return ops


class PendingRollbacks:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.pending: dict[str, asyncio.TimerHandle] = {}

    def arm(self, params: list[Any]) -> dict[str, Any]:
        if len(params) != 3 or not isinstance(params[0], str):
            raise SnapshotError("expected [token, seconds, snapshot]")
        token, seconds, snapshot = params
        if (
            not isinstance(seconds, (int, float))
            or isinstance(seconds, bool)
            or not (0 < seconds <= MAX_TIMEOUT)
        ):
            raise SnapshotError(f"the confirm timeout must be 1 to {MAX_TIMEOUT} seconds")
        if not isinstance(snapshot, dict):
            raise SnapshotError("the snapshot must be an object of table rows")
        if token in self.pending:
            raise SnapshotError(f"token {token} is already pending")
        loop = asyncio.get_running_loop()
        self.pending[token] = loop.call_later(seconds, self._roll_back, token, snapshot)
        log.info(
            "change %s applied on probation: rolled back in %g s unless confirmed", token, seconds
        )
        return {"token": token, "seconds": seconds}

    def confirm(self, params: list[Any]) -> dict[str, Any]:
        token = params[0] if params else None
        handle = self.pending.pop(token, None) if isinstance(token, str) else None
        if handle is None:
            raise SnapshotError(f"no change pending confirmation with token {token}")
        handle.cancel()
        log.info("change %s confirmed", token)
        return {"confirmed": token}

    def _roll_back(self, token: str, snapshot: dict[str, list[dict[str, Any]]]) -> None:
        self.pending.pop(token, None)
        results = self.db.transact(restore_operations(self.db, snapshot))
        errors = [r for r in results if isinstance(r, dict) and "error" in r]
        if errors:
            log.error("rollback of change %s failed: %s", token, errors[0])
        else:
            log.warning("change %s was not confirmed in time: rolled back", token)
