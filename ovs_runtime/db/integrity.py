"""Commit-time checks of a transaction (RFC 7047 sections 3.2 and 4.1.3).

Run in this order on a ``TxnView`` whose operations all succeeded:

0. rows written by the transaction may not reference missing rows;
1. garbage collection: rows of non-root tables that no strong reference reaches any
   more are deleted, cascading (as ovsdb-server's ``collect_garbage`` does);
2. weak references to rows that no longer exist are removed, then the column's
   minimum size is checked again;
3. every remaining strong reference must point at an existing row;
4. ``indexes`` must stay unique, and ``maxRows`` must hold.

Any failure raises ``OvsdbError`` and the transaction is dropped whole.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import ovs.db.types
from ovs.db.data import Atom

from ovs_runtime.db.datum import Datum, Row, entries_not_in, referenced_uuids
from ovs_runtime.db.errors import OvsdbError, constraint_violation
from ovs_runtime.db.schema import ColumnSchema, DbSchema
from ovs_runtime.db.txn_view import TxnView

RowKey = tuple[str, uuid.UUID]
BULK_CANDIDATES = 64  # more garbage candidates than this: count references once


# Keyed by id(schema); the schema is kept in the value so its id cannot be reused.
_REF_COLUMNS: dict[tuple[int, str, bool], tuple[DbSchema, list[ColumnSchema]]] = {}


def _ref_columns(schema: DbSchema, table: str, strong: bool) -> list[ColumnSchema]:
    key = (id(schema), table, strong)
    cached = _REF_COLUMNS.get(key)
    if cached is None:
        cached = _REF_COLUMNS[key] = (schema, _find_ref_columns(schema, table, strong))
    return cached[1]


def _find_ref_columns(schema: DbSchema, table: str, strong: bool) -> list[ColumnSchema]:
    columns = []
    for col in schema.tables[table].columns.values():
        for base in (col.type.key, col.type.value):
            if base is not None and base.ref_table_name and base.is_strong_ref() == strong:
                columns.append(col)
                break
    return columns


def _strong_refs(schema: DbSchema, table: str, row: Row) -> Iterator[RowKey]:
    for col in _ref_columns(schema, table, strong=True):
        yield from referenced_uuids(col, row[col.name], strong=True)


def _removed_targets(schema: DbSchema, table: str, old: Row, new: Row | None) -> Iterator[RowKey]:
    """Strong references ``old`` holds and ``new`` (None: deleted) no longer does."""
    for col in _ref_columns(schema, table, strong=True):
        before = old[col.name]
        if new is None:
            yield from referenced_uuids(col, before, strong=True)
            continue
        yield from referenced_uuids(col, entries_not_in(before, new[col.name]), strong=True)


def _referenced(schema: DbSchema, view: TxnView, target: RowKey) -> bool:
    """Does any row of the view hold a strong reference to ``target``?"""
    table_name, row_uuid = target
    atom = Atom(ovs.db.types.UuidType, row_uuid)
    for table in schema.tables:
        for col in _ref_columns(schema, table, strong=True):
            key, value = col.type.key, col.type.value
            by_key = key.ref_table_name == table_name and key.is_strong_ref()
            by_value = (
                value is not None and value.ref_table_name == table_name and value.is_strong_ref()
            )
            if not (by_key or by_value):
                continue
            for _row_uuid, row in view.rows(table):
                values = row[col.name].values
                if by_key and atom in values:
                    return True
                if by_value and atom in values.values():
                    return True
    return False


def collect_garbage(schema: DbSchema, view: TxnView) -> None:
    """Delete non-root rows this transaction left unreferenced, cascading. Only rows it
    inserted or stopped referencing can have become garbage, so only those are looked
    at: a bridge with 100,000 flow rules costs nothing extra per transaction."""
    non_root = {name for name, table in schema.tables.items() if not table.is_root}
    if not non_root:
        return
    candidates: set[RowKey] = {key for key in view.inserted if key[0] in non_root}
    for table, changed in view.changes.items():
        if not _ref_columns(schema, table, strong=True):
            continue
        committed = view.committed[table]
        for row_uuid, new in changed.items():
            old = committed.get(row_uuid)
            if old is not None:
                candidates.update(
                    t for t in _removed_targets(schema, table, old, new) if t[0] in non_root
                )
    _collect(schema, view, candidates, non_root)


def collect_all_garbage(schema: DbSchema, view: TxnView) -> None:
    """Every non-root row is a candidate: once, after a schema conversion dropped
    columns that may have held the last reference to some rows."""
    non_root = {name for name, table in schema.tables.items() if not table.is_root}
    candidates = {(table, row_uuid) for table in non_root for row_uuid, _ in view.rows(table)}
    _collect(schema, view, candidates, non_root)


def _collect(schema: DbSchema, view: TxnView, candidates: set[RowKey], non_root: set[str]) -> None:
    """Delete the unreferenced candidates, cascading. With many candidates (``del-flows``
    of 100,000 rules) every strong reference is counted once and the counts follow the
    deletions, instead of looking through the referencing rows for each candidate."""
    counts = _reference_counts(schema, view) if len(candidates) > BULK_CANDIDATES else None

    def unreferenced(target: RowKey) -> bool:
        if counts is not None:
            return not counts[target]
        return not _referenced(schema, view, target)

    pending = [c for c in candidates if view.exists(*c) and unreferenced(c)]
    while pending:
        table, row_uuid = pending.pop()
        victim = view.get(table, row_uuid)
        if victim is None:
            continue
        view.delete(table, row_uuid)
        for target in _strong_refs(schema, table, victim):
            if counts is not None:
                counts[target] -= 1
            if target[0] in non_root and view.exists(*target) and unreferenced(target):
                pending.append(target)


def _reference_counts(schema: DbSchema, view: TxnView) -> Counter[RowKey]:
    counts: Counter[RowKey] = Counter()
    for table in schema.tables:
        for col in _ref_columns(schema, table, strong=True):
            for _row_uuid, row in view.rows(table):
                counts.update(referenced_uuids(col, row[col.name], strong=True))
    return counts


def remove_dangling_weak_refs(schema: DbSchema, view: TxnView) -> None:
    for table_name, _table in schema.tables.items():
        weak_columns = _ref_columns(schema, table_name, strong=False)
        if not weak_columns:
            continue
        for row_uuid, row in list(view.rows(table_name)):
            for col in weak_columns:
                datum = row[col.name]
                dangling = [
                    key for key, value in datum.values.items() if _dangles(view, col, key, value)
                ]
                if not dangling:
                    continue
                writable = view.writable(table_name, row_uuid)
                values = dict(datum.values)
                for key in dangling:
                    del values[key]
                writable[col.name] = Datum(col.type, values)
                if len(values) < col.type.n_min:
                    raise constraint_violation(
                        f'removing weak references leaves column "{col.name}" of '
                        f"{table_name} row {row_uuid} with {len(values)} elements; "
                        f"it needs at least {col.type.n_min}"
                    )


def _dangles(view: TxnView, col: ColumnSchema, key: object, value: object) -> bool:
    for base, atom in ((col.type.key, key), (col.type.value, value)):
        if base is not None and base.is_weak_ref() and atom is not None:
            if not view.exists(base.ref_table_name, atom.value):  # type: ignore[attr-defined]
                return True
    return False


def _check_row_refs(
    schema: DbSchema,
    view: TxnView,
    table: str,
    row_uuid: uuid.UUID,
    row: Row,
    old: Row | None = None,
) -> None:
    """Every strong reference of ``row`` must exist; with ``old`` (the committed row),
    only references this transaction added are looked up."""
    for col in _ref_columns(schema, table, strong=True):
        datum = row[col.name]
        if old is not None:
            datum = entries_not_in(datum, old[col.name])
        for target_table, target in referenced_uuids(col, datum, strong=True):
            if not view.exists(target_table, target):
                raise OvsdbError(
                    "referential integrity violation",
                    f"table {table} column {col.name} row {row_uuid} references "
                    f"nonexistent or deleted row {target} in table {target_table}",
                )


def check_changed_rows_refs(schema: DbSchema, view: TxnView) -> None:
    """Rows this transaction wrote may not point at missing rows (checked before GC,
    as ovsdb-server's ``update_ref_counts`` does, so even a row about to be collected
    cannot carry a dangling reference)."""
    for table, changed in view.changes.items():
        committed = view.committed[table]
        for row_uuid, row in changed.items():
            if row is not None:
                _check_row_refs(schema, view, table, row_uuid, row, committed.get(row_uuid))


def check_strong_refs(schema: DbSchema, view: TxnView) -> None:
    """After GC, no remaining row may point at a deleted row. (Only deletions can break
    a reference that was valid, so without any, there is nothing to look at.)"""
    deleted = {
        (table, row_uuid)
        for table, changed in view.changes.items()
        for row_uuid, row in changed.items()
        if row is None
    }
    if not deleted:
        return
    for table in schema.tables:
        if not _ref_columns(schema, table, strong=True):
            continue
        for row_uuid, row in view.rows(table):
            for col in _ref_columns(schema, table, strong=True):
                for target in referenced_uuids(col, row[col.name], strong=True):
                    if target in deleted:
                        raise OvsdbError(
                            "referential integrity violation",
                            f"table {table} column {col.name} row {row_uuid} references "
                            f"nonexistent or deleted row {target[1]} in table {target[0]}",
                        )


def check_indexes_and_limits(schema: DbSchema, view: TxnView) -> None:
    for table_name in view.changed_tables():
        table = schema.tables[table_name]
        if table.max_rows is not None and view.count(table_name) > table.max_rows:
            raise constraint_violation(
                f'table "{table_name}" may hold at most {table.max_rows} row(s)'
            )
        for index in table.indexes:
            names = [col.name for col in index]
            seen: dict[str, uuid.UUID] = {}
            for row_uuid, row in view.rows(table_name):
                key = repr([row[name].to_json() for name in names])
                if key in seen:
                    values = ", ".join(str(row[name].to_json()) for name in names)
                    raise constraint_violation(
                        f"transaction causes rows {seen[key]} and {row_uuid} in table "
                        f'"{table_name}" to have identical values ({values}) for the index '
                        f"on column(s) {', '.join(names)}"
                    )
                seen[key] = row_uuid


def run_commit_checks(schema: DbSchema, view: TxnView) -> None:
    if not view.changed_tables():
        return
    check_changed_rows_refs(schema, view)
    collect_garbage(schema, view)
    remove_dangling_weak_refs(schema, view)
    check_strong_refs(schema, view)
    check_indexes_and_limits(schema, view)
