"""The committed database: load, the commit pipeline, and change notification.

``Database.transact`` is the only way anything changes: the operations run against a
private view (``transaction``), the commit-time checks run (``integrity``), the changed
rows get new ``_version`` UUIDs, storage makes them durable, and only then are they
applied in memory and announced to listeners (monitors and the bridge reconciler).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ovs.db.error

from ovs_runtime.db import integrity, migrate
from ovs_runtime.db.datum import (
    Datum,
    Row,
    datum_from_json,
    default_datum,
    default_row,
    stored_json,
    uuid_datum,
)
from ovs_runtime.db.errors import OvsdbError
from ovs_runtime.db.schema import DbSchema, TableSchema
from ovs_runtime.db.storage import RowWrite, Storage, StorageError
from ovs_runtime.db.transaction import Outcome, TxnContext, execute_operations
from ovs_runtime.db.txn_view import Tables, TxnView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowChange:
    table: str
    uuid: uuid.UUID
    old: Row | None
    new: Row | None


ChangeListener = Callable[[list[RowChange], str], None]


def _row_from_stored(table: TableSchema, row_uuid: uuid.UUID, data: dict[str, Any]) -> Row:
    row = default_row(table)
    for name, value in data.items():
        if name == "_version":
            continue
        row[name] = datum_from_json(table.columns[name].type, value, None, name)
    row["_uuid"] = uuid_datum(row_uuid)
    version = data.get("_version")
    row["_version"] = uuid_datum(uuid.UUID(version[1]) if version else uuid.uuid4())
    return row


def _stored_form(table: TableSchema, row: Row) -> dict[str, Any]:
    data = {
        name: stored_json(datum)
        for name, datum in row.items()
        if name in table.columns
        and table.columns[name].persistent
        and datum.values != default_datum(table.columns[name].type).values
    }
    data["_version"] = row["_version"].to_json()
    return data


class Database:
    def __init__(self, schema: DbSchema, storage: Storage) -> None:
        self.schema = schema
        self.storage = storage
        self.tables: Tables = {name: {} for name in schema.tables}
        self.listeners: list[ChangeListener] = []
        # Checks of meaning beyond the schema (tunnel options, say), run with the
        # integrity checks: one that raises OvsdbError fails the whole transaction.
        self.commit_checks: list[Callable[[TxnView], None]] = []
        self.last_txn_id = str(uuid.UUID(int=0))
        self.n_transactions = 0
        self.table_serials: dict[str, int] = {}  # table -> serial of its last change
        self._serials = itertools.count(1)

    @property
    def name(self) -> str:
        name: str = self.schema.name
        return name

    # -- start-up -------------------------------------------------------------------

    def load(self) -> None:
        stored = self.storage.open()
        rows = stored.rows
        converted = False
        if stored.schema_json is None:
            if rows:
                raise StorageError(f"database {self.storage.path} has rows but no schema")
            self.storage.replace_all(self.schema, [])
            log.info("created new database %s (schema %s)", self.storage.path, self.schema.version)
        elif migrate.needs_conversion(stored.schema_json, self.schema):
            converted = True
            old_version = stored.schema_json.get("version", "unknown")
            backup = f"{self.storage.path}.pre-{old_version}"
            self.storage.backup_to(backup)
            rows, losses = migrate.convert_rows(rows, self.schema)
            for loss in losses:
                log.warning(
                    "schema conversion %s -> %s: %s", old_version, self.schema.version, loss
                )
            writes: list[RowWrite] = [
                (table, uuid.UUID(row_uuid), data)
                for table, table_rows in rows.items()
                for row_uuid, data in table_rows.items()
            ]
            self.storage.replace_all(self.schema, writes)
            log.info(
                "converted database %s from schema %s to %s (%d rows; copy of the original "
                "kept as %s)",
                self.storage.path,
                old_version,
                self.schema.version,
                len(writes),
                backup,
            )
        for table_name, table_rows in rows.items():
            table = self.schema.tables[table_name]
            for row_uuid, data in table_rows.items():
                u = uuid.UUID(row_uuid)
                try:
                    self.tables[table_name][u] = _row_from_stored(table, u, data)
                except (OvsdbError, ovs.db.error.Error, KeyError) as exc:
                    raise StorageError(
                        f"database {self.storage.path}: {table_name} row {row_uuid} "
                        f"cannot be read: {exc}"
                    ) from exc
        if converted:
            self._collect_orphans()
        log.info(
            "opened database %s: %s",
            self.storage.path,
            ", ".join(f"{len(r)} {t}" for t, r in self.tables.items() if r) or "empty",
        )

    def _collect_orphans(self) -> None:
        """After a conversion, which can drop a column that held the last reference to
        some rows, delete the rows of non-root tables nothing references any more.
        (Transactions only look at the rows they touch, so this is done here, once.)"""
        view = TxnView(self.tables)
        integrity.collect_all_garbage(self.schema, view)
        if view.changed_tables():
            gone = sum(len(changed) for changed in view.changes.values())
            self._commit(Outcome([], view, False))
            log.warning("schema conversion: deleted %d row(s) nothing references any more", gone)

    # -- transactions ---------------------------------------------------------------

    def transact(
        self, ops: list[Any], ctx: TxnContext | None = None, dry_run: bool = False
    ) -> list[Any]:
        """Execute and, if every operation succeeds, commit ``ops``; return the results.
        With ``dry_run``, everything but the commit: the results, and the error a commit
        check would give, with nothing changed (``ovsr apply --check``).

        Raises ``transaction.WaitBlocked`` when a ``wait`` must wait for another commit.
        """
        outcome = execute_operations(self.schema, self.tables, ops, ctx or TxnContext())
        outcome.view.serial = next(self._serials)
        outcome.view.table_serials = self.table_serials
        for comment in outcome.comments:
            log.info("transaction comment: %s", comment)
        if outcome.failed:
            return outcome.results
        try:
            integrity.run_commit_checks(self.schema, outcome.view)
            if outcome.view.changed_tables():
                for check in self.commit_checks:
                    check(outcome.view)
            if not dry_run:
                self._commit(outcome)
        except OvsdbError as exc:
            outcome.results.append(exc.to_json())
        return outcome.results

    def _commit(self, outcome: Outcome) -> None:
        changes = self._finalize(outcome.view)
        if not changes:
            return
        writes: list[RowWrite] = []
        for change in changes:
            table = self.schema.tables[change.table]
            if change.new is None:
                writes.append((change.table, change.uuid, None))
            elif change.old is None or _persistent_differs(table, change.old, change.new):
                writes.append((change.table, change.uuid, _stored_form(table, change.new)))
        try:
            self.storage.commit(writes)
        except Exception as exc:  # sqlite3 errors, a full disk...
            log.error("commit failed, transaction dropped: %s", exc)
            raise OvsdbError("I/O error", f"cannot write the database: {exc}") from exc
        serial = outcome.view.serial or next(self._serials)
        for change in changes:
            self.table_serials[change.table] = serial
            rows = self.tables[change.table]
            if change.new is None:
                del rows[change.uuid]
            else:
                rows[change.uuid] = change.new
        self.last_txn_id = str(uuid.uuid4())
        self.n_transactions += 1
        for listener in list(self.listeners):
            listener(changes, self.last_txn_id)

    def _finalize(self, view: TxnView) -> list[RowChange]:
        changes: list[RowChange] = []
        for table_name, changed in view.changes.items():
            committed = self.tables[table_name]
            for row_uuid, new in changed.items():
                old = committed.get(row_uuid)
                if old is None and new is None:
                    continue
                if old is not None and new is not None:
                    if all(old[c].values == new[c].values for c in new if c != "_version"):
                        continue
                if new is not None:
                    new["_version"] = uuid_datum(uuid.uuid4())
                changes.append(RowChange(table_name, row_uuid, old, new))
        return changes

    def close(self) -> None:
        self.storage.close()


def _persistent_differs(table: TableSchema, old: Row, new: Row) -> bool:
    return any(
        old[name].values != new[name].values
        for name, col in table.columns.items()
        if col.persistent
    )


def open_database(schema: DbSchema, state_dir: str) -> Database:
    from ovs_runtime.db.storage import database_path

    os.makedirs(state_dir, exist_ok=True)
    db = Database(schema, Storage(database_path(state_dir)))
    started = time.monotonic()
    db.load()
    log.debug("database loaded in %.3f s", time.monotonic() - started)
    return db


__all__ = ["Database", "Datum", "RowChange", "open_database"]
