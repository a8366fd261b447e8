"""Build an in-process Database on a temporary directory (no daemon, no root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ovs_runtime.db.database import Database, open_database
from ovs_runtime.db.schema import load_schema

_SCHEMA = load_schema()


def new_db(path: Path) -> Database:
    db = open_database(load_schema(), str(path))
    assert db.transact([{"op": "insert", "table": "Open_vSwitch", "row": {}}])[0]["uuid"]
    return db


def uuid_of(result: dict[str, Any]) -> str:
    return str(result["uuid"][1])


def coltype(table: str, column: str) -> Any:
    """A column's ``ovs.db.types.Type`` in the packaged schema."""
    return _SCHEMA.tables[table].columns[column].type


def errors(results: list[Any]) -> list[dict[str, Any]]:
    return [r for r in results if isinstance(r, dict) and "error" in r]


def add_bridge_ops(name: str, ports: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Ops that create a bridge with ports the way ovs-vsctl does (one interface each)."""
    ops: list[dict[str, Any]] = []
    port_refs = []
    for port in (name, *ports):
        safe = port.replace("-", "_")
        ops.append(
            {"op": "insert", "table": "Interface", "uuid-name": f"i_{safe}", "row": {"name": port}}
        )
        ops.append(
            {
                "op": "insert",
                "table": "Port",
                "uuid-name": f"p_{safe}",
                "row": {"name": port, "interfaces": ["named-uuid", f"i_{safe}"]},
            }
        )
        port_refs.append(["named-uuid", f"p_{safe}"])
    ops.append(
        {
            "op": "insert",
            "table": "Bridge",
            "uuid-name": "br",
            "row": {"name": name, "ports": ["set", port_refs]},
        }
    )
    ops.append(
        {
            "op": "mutate",
            "table": "Open_vSwitch",
            "where": [],
            "mutations": [["bridges", "insert", ["set", [["named-uuid", "br"]]]]],
        }
    )
    return ops


def add_bond_ops(bridge: str, port: str, members: tuple[str, ...]) -> list[dict[str, Any]]:
    """Ops that add a bond to a bridge the way ``ovs-vsctl add-bond`` does."""
    ops: list[dict[str, Any]] = [
        {"op": "insert", "table": "Interface", "uuid-name": f"i_{m}", "row": {"name": m}}
        for m in members
    ]
    refs = [["named-uuid", f"i_{m}"] for m in members]
    ops.append(
        {
            "op": "insert",
            "table": "Port",
            "uuid-name": "bond",
            "row": {"name": port, "interfaces": ["set", refs]},
        }
    )
    ops.append(
        {
            "op": "mutate",
            "table": "Bridge",
            "where": [["name", "==", bridge]],
            "mutations": [["ports", "insert", ["named-uuid", "bond"]]],
        }
    )
    return ops


def select(
    db: Database, table: str, where: list[Any] | None = None, columns: list[str] | None = None
) -> list[dict[str, Any]]:
    op: dict[str, Any] = {"op": "select", "table": table, "where": where or []}
    if columns:
        op["columns"] = columns
    rows: list[dict[str, Any]] = db.transact([op])[0]["rows"]
    return rows
