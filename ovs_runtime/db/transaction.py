"""The operations of an RFC 7047 ``transact`` request (section 5.2).

``execute_operations`` runs every operation against a private ``TxnView`` and returns
the per-operation results. It never touches committed state: the ``database`` module runs
the commit-time checks (``integrity``) and commits the view only if everything passed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import ovs.db.parser
import ovs.ovsuuid

from ovs_runtime.db import condition, mutation
from ovs_runtime.db.datum import (
    IMPLICIT_COLUMNS,
    Row,
    column_type,
    datum_from_json,
    default_row,
    row_to_json,
    uuid_datum,
)
from ovs_runtime.db.errors import OvsdbError, constraint_violation, syntax_error
from ovs_runtime.db.schema import DbSchema, TableSchema
from ovs_runtime.db.txn_view import Tables, TxnView


class WaitBlocked(Exception):
    """A ``wait`` with a non-zero timeout is not yet satisfied; retry after a commit."""

    def __init__(self, timeout_ms: float) -> None:
        super().__init__(f"wait blocked for up to {timeout_ms} ms")
        self.timeout_ms = timeout_ms


@dataclass
class TxnContext:
    """What a transaction may know about the session that sent it."""

    locks_held: frozenset[str] = frozenset()
    wait_expired: bool = False  # set when a blocked transaction is retried after its timeout


@dataclass
class Outcome:
    results: list[Any]
    view: TxnView
    failed: bool
    comments: list[str] = field(default_factory=list)


def _member(
    op: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True
) -> Any:
    if name not in op:
        if required:
            raise syntax_error(f'"{op.get("op")}" operation needs a "{name}" member')
        return None
    value = op[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise syntax_error(f'"{name}" member of "{op.get("op")}" has the wrong type: {value!r}')
    return value


class _SymbolTable(dict[str, uuid.UUID]):
    """Named UUIDs of this transaction.

    Always truthy, so the ``ovs`` parser accepts a named-uuid even before its insert
    (ovsdb-server allows forward references); undefined names are rejected at the end.
    """

    def __bool__(self) -> bool:
        return True


class _Executor:
    def __init__(self, schema: DbSchema, view: TxnView, ctx: TxnContext) -> None:
        self.schema = schema
        self.view = view
        self.ctx = ctx
        self.symtab: dict[str, uuid.UUID] = _SymbolTable()
        self.defined_names: set[str] = set()
        self.comments: list[str] = []

    # -- helpers ---------------------------------------------------------------------

    def table(self, op: dict[str, Any]) -> TableSchema:
        name = _member(op, "table", str)
        table = self.schema.tables.get(name)
        if table is None:
            raise syntax_error(
                f'unknown table "{name}"; tables are: {", ".join(sorted(self.schema.tables))}'
            )
        result: TableSchema = table
        return result

    def matching(self, table: TableSchema, where_json: Any) -> list[tuple[uuid.UUID, Row]]:
        clauses = condition.parse_where(table, where_json, self.symtab)
        pinned = condition.uuid_lookup(clauses)
        if pinned is not None:
            row = self.view.get(table.name, pinned)
            return condition.select_rows(clauses, [(pinned, row)] if row is not None else [])
        return condition.select_rows(clauses, self.view.rows(table.name))

    def parse_row(self, table: TableSchema, row_json: Any, for_update: bool) -> Row:
        if not isinstance(row_json, dict):
            raise syntax_error(f'"row" must be a JSON object, got {row_json!r}')
        parsed: Row = {}
        for name, value in row_json.items():
            if name in IMPLICIT_COLUMNS:
                raise constraint_violation(f'column "{name}" is read-only')
            type_ = column_type(table, name)
            if for_update and not table.columns[name].mutable:
                raise constraint_violation(
                    f'cannot modify immutable column "{name}" in table "{table.name}"'
                )
            parsed[name] = datum_from_json(type_, value, self.symtab, f'column "{name}"')
        return parsed

    def select_columns(self, table: TableSchema, op: dict[str, Any]) -> list[str] | None:
        columns = _member(op, "columns", list, required=False)
        if columns is None:
            return None
        for name in columns:
            if not isinstance(name, str):
                raise syntax_error(f'"columns" must list column names, got {name!r}')
            column_type(table, name)
        return list(columns)

    # -- operations (RFC 7047 section 5.2.x) ------------------------------------------

    def op_insert(self, op: dict[str, Any]) -> Any:
        table = self.table(op)
        name = _member(op, "uuid-name", str, required=False)
        wanted = _member(op, "uuid", str, required=False)  # ovsdb-server extension
        if name is not None:
            if name in self.defined_names:
                raise OvsdbError("duplicate uuid-name", f'"{name}" is used by two inserts')
            if not ovs.db.parser.is_identifier(name):
                raise syntax_error(f'uuid-name "{name}" is not a valid identifier')
        if wanted is not None:
            if not ovs.ovsuuid.is_valid_string(wanted):
                raise syntax_error(f'"uuid" member "{wanted}" is not a UUID')
            row_uuid = uuid.UUID(wanted)
            if any(self.view.exists(t, row_uuid) for t in self.schema.tables):
                raise OvsdbError("duplicate uuid", f"a row with UUID {wanted} already exists")
        elif name is not None and name in self.symtab:
            row_uuid = self.symtab[name]  # referenced before this insert: keep that UUID
        else:
            row_uuid = uuid.uuid4()
        if name is not None:
            self.symtab[name] = row_uuid
            self.defined_names.add(name)
        row = default_row(table)
        row.update(self.parse_row(table, op.get("row", {}), for_update=False))
        row["_uuid"] = uuid_datum(row_uuid)
        row["_version"] = uuid_datum(uuid.uuid4())
        self.view.insert(table.name, row_uuid, row)
        return {"uuid": ["uuid", str(row_uuid)]}

    def op_select(self, op: dict[str, Any]) -> Any:
        table = self.table(op)
        columns = self.select_columns(table, op)
        rows = self.matching(table, _member(op, "where", list))
        selected = [row_to_json(row, columns) for _, row in rows]
        if columns is not None and "_uuid" not in columns and len(selected) > 1:
            # As ovsdb-server: rows that are equal in the columns asked for come once.
            distinct = {json.dumps(r, sort_keys=True): r for r in selected}
            selected = list(distinct.values())
        return {"rows": selected}

    def op_update(self, op: dict[str, Any]) -> Any:
        table = self.table(op)
        changes = self.parse_row(table, _member(op, "row", dict), for_update=True)
        rows = self.matching(table, _member(op, "where", list))
        for row_uuid, _ in rows:
            writable = self.view.writable(table.name, row_uuid)
            for name, datum in changes.items():
                writable[name] = datum.copy()
        return {"count": len(rows)}

    def op_mutate(self, op: dict[str, Any]) -> Any:
        table = self.table(op)
        mutations_json = _member(op, "mutations", list)
        mutations = [mutation.parse_mutation(table, m, self.symtab) for m in mutations_json]
        rows = self.matching(table, _member(op, "where", list))
        for row_uuid, _ in rows:
            writable = self.view.writable(table.name, row_uuid)
            for m in mutations:
                writable[m.column] = mutation.apply_mutation(table, writable[m.column], m)
        return {"count": len(rows)}

    def op_delete(self, op: dict[str, Any]) -> Any:
        table = self.table(op)
        rows = self.matching(table, _member(op, "where", list))
        for row_uuid, _ in rows:
            self.view.delete(table.name, row_uuid)
        return {"count": len(rows)}

    def op_wait(self, op: dict[str, Any]) -> Any:
        table = self.table(op)
        timeout = op.get("timeout")
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0
        ):
            raise syntax_error(f'"timeout" must be a non-negative number, got {timeout!r}')
        until = _member(op, "until", str)
        if until not in ("==", "!="):
            raise syntax_error(f'"until" must be "==" or "!=", got "{until}"')
        columns = self.select_columns(table, op)
        if columns is None:
            raise syntax_error('"wait" operation needs a "columns" member')
        expected_json = _member(op, "rows", list)
        expected = []
        for row_json in expected_json:
            if not isinstance(row_json, dict) or set(row_json) != set(columns):
                raise syntax_error(f'each row of "wait" must have exactly the columns {columns}')
            parsed = {
                name: datum_from_json(column_type(table, name), value, self.symtab, name)
                for name, value in row_json.items()
            }
            expected.append(_projection(parsed, columns))
        actual = {_projection(row, columns) for _, row in self.matching(table, op.get("where"))}
        equal = actual == set(expected)  # as sets of distinct rows, as ovsdb-server compares
        if equal == (until == "=="):
            return {}
        if timeout == 0 or self.ctx.wait_expired:
            raise OvsdbError("timed out", f'"wait" on table "{table.name}" was not satisfied')
        raise WaitBlocked(float("inf") if timeout is None else float(timeout))

    def op_commit(self, op: dict[str, Any]) -> Any:
        _member(op, "durable", bool)  # every commit is durable: fsync'd before the reply
        return {}

    def op_abort(self, op: dict[str, Any]) -> Any:
        raise OvsdbError("aborted", "aborted by request")

    def op_comment(self, op: dict[str, Any]) -> Any:
        self.comments.append(_member(op, "comment", str))
        return {}

    def op_assert(self, op: dict[str, Any]) -> Any:
        lock = _member(op, "lock", str)
        if lock not in self.ctx.locks_held:
            raise OvsdbError("not owner", f'this session does not own lock "{lock}"')
        return {}


def _projection(row: Row, columns: list[str]) -> tuple[str, ...]:
    """A row reduced to ``columns``, in a hashable form for ``wait``."""
    return tuple(json.dumps(row[name].to_json(), sort_keys=True) for name in columns)


OPERATIONS = (
    "insert",
    "select",
    "update",
    "mutate",
    "delete",
    "wait",
    "commit",
    "abort",
    "comment",
    "assert",
)


def execute_operations(
    schema: DbSchema, committed: Tables, ops: list[Any], ctx: TxnContext
) -> Outcome:
    """Run ``ops``; stop at the first error, as RFC 7047 section 4.1.3 requires.

    Raises ``WaitBlocked`` if a ``wait`` operation has to wait for another commit.
    """
    view = TxnView(committed)
    executor = _Executor(schema, view, ctx)
    results: list[Any] = []
    failed = False
    for op in ops:
        try:
            if not isinstance(op, dict) or not isinstance(op.get("op"), str):
                raise syntax_error(f'each operation must be an object with an "op", got {op!r}')
            if op["op"] not in OPERATIONS:
                raise syntax_error(
                    f'unknown operation "{op["op"]}"; accepted: {", ".join(OPERATIONS)}'
                )
            handler = getattr(executor, "op_" + op["op"])
            results.append(handler(op))
        except OvsdbError as exc:
            results.append(exc.to_json())
            failed = True
            break
    if not failed:
        undefined = set(executor.symtab) - executor.defined_names
        if undefined:
            names = ", ".join(sorted(undefined))
            results.append(
                OvsdbError("syntax error", f"named-uuid never inserted: {names}").to_json()
            )
            failed = True
    results.extend([None] * (len(ops) - len(results)))
    return Outcome(results, view, failed, executor.comments)
