"""A transaction's private view of the database: committed rows plus its own changes.

Rows are copied on first write, so the committed state is untouched until the commit
succeeds; an aborted or failed transaction simply drops its view (all-or-nothing).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from ovs_runtime.db.datum import Row

Tables = dict[str, dict[uuid.UUID, Row]]


class TxnView:
    def __init__(self, committed: Tables) -> None:
        self.committed = committed
        # table -> uuid -> new row, or None for a deleted row
        self.changes: dict[str, dict[uuid.UUID, Row | None]] = {name: {} for name in committed}
        self.inserted: set[tuple[str, uuid.UUID]] = set()
        # Set by the database: this transaction's serial (unique, never reused, 0 for
        # none) and, per table, the serial of the last committed transaction that
        # changed it. Checks may cache what they derive from a table under its serial.
        self.serial = 0
        self.table_serials: dict[str, int] = {}

    def get(self, table: str, row_uuid: uuid.UUID) -> Row | None:
        changed = self.changes[table]
        if row_uuid in changed:
            return changed[row_uuid]
        return self.committed[table].get(row_uuid)

    def exists(self, table: str, row_uuid: uuid.UUID) -> bool:
        return self.get(table, row_uuid) is not None

    def rows(self, table: str) -> Iterable[tuple[uuid.UUID, Row]]:
        """The table's rows as this transaction sees them. Iterate at once: for a table
        the transaction has not changed, this is the committed dictionary's own items
        view, which rows the transaction adds afterwards do not join."""
        changed = self.changes[table]
        if not changed:
            return self.committed[table].items()  # (iterated in C: 100,000 Flow_Rule rows)
        return self._merged_rows(table, changed)

    def _merged_rows(
        self, table: str, changed: dict[uuid.UUID, Row | None]
    ) -> Iterator[tuple[uuid.UUID, Row]]:
        for row_uuid, row in self.committed[table].items():
            if row_uuid not in changed:
                yield row_uuid, row
        for row_uuid, maybe_row in changed.items():
            if maybe_row is not None:
                yield row_uuid, maybe_row

    def changed_rows(self, table: str, columns: tuple[str, ...]) -> Iterator[tuple[uuid.UUID, Row]]:
        """Rows this transaction inserts, or in which it changes any of ``columns``: a
        commit check that reads only these lets rows written before the check existed
        live on (the daemon's own status updates touch them too)."""
        committed = self.committed[table]
        for row_uuid, row in self.changes[table].items():
            if row is None:
                continue
            old = committed.get(row_uuid)
            if old is None or any(old[c].values != row[c].values for c in columns):
                yield row_uuid, row

    def count(self, table: str) -> int:
        """The table's rows, counted from the committed size and this view's changes."""
        committed = self.committed[table]
        n = len(committed)
        for row_uuid, row in self.changes[table].items():
            if row is None:
                n -= row_uuid in committed
            else:
                n += row_uuid not in committed
        return n

    def writable(self, table: str, row_uuid: uuid.UUID) -> Row:
        """The row, copied into this view so it may be modified in place."""
        changed = self.changes[table]
        row = changed.get(row_uuid)
        if row is None:
            base = self.committed[table][row_uuid]
            row = {name: datum.copy() for name, datum in base.items()}
            changed[row_uuid] = row
        return row

    def insert(self, table: str, row_uuid: uuid.UUID, row: Row) -> None:
        self.changes[table][row_uuid] = row
        self.inserted.add((table, row_uuid))

    def delete(self, table: str, row_uuid: uuid.UUID) -> None:
        if (table, row_uuid) in self.inserted:
            del self.changes[table][row_uuid]
            self.inserted.discard((table, row_uuid))
        else:
            self.changes[table][row_uuid] = None

    def changed_tables(self) -> list[str]:
        return [name for name, changed in self.changes.items() if changed]
