"""A client-side copy of the database that commands read and change.

Commands chained with ``--`` run one after another against this model, so each sees
what the previous ones did (``add-br br0 -- add-port br0 p1``). At the end the model
turns its changes into one transaction: inserts (with ``uuid-name``), updates of just the
changed columns, deletes, and before them ``wait`` operations asserting that every
column we change still holds the value we read. If another client changed it first,
the server answers "timed out" and ``ovsr`` retries on a fresh copy, the same optimistic
scheme as ovs-vsctl's ``verify``.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.db.schema import DbSchema

NAMED_TABLES = {
    "Bridge": "name",
    "Port": "name",
    "Interface": "name",
    "Manager": "target",
    "Mirror": "name",
}
# Tables whose rows ovs-vsctl finds by the name of the row that refers to them:
# ``list QoS p1`` is the QoS of port p1, ``list sFlow br0`` that of bridge br0.
NAMED_BY_REFERRER = {
    "QoS": ("Port", "qos"),
    "sFlow": ("Bridge", "sflow"),
    "NetFlow": ("Bridge", "netflow"),
    "IPFIX": ("Bridge", "ipfix"),
    "Controller": ("Bridge", "controller"),
}
Row = dict[str, Any]


class ModelError(Exception):
    """A command asked for something the database does not allow or hold."""


def table_name(schema: DbSchema, text: str) -> str:
    """A table named as ovs-vsctl allows: any case, or a unique prefix."""
    if text in schema.tables:
        return text
    matches = [t for t in schema.tables if t.lower() == text.lower()]
    if not matches:
        matches = [t for t in schema.tables if t.lower().startswith(text.lower())]
    if len(matches) == 1:
        return matches[0]
    raise ModelError(
        f'unknown table "{text}"; tables are: {", ".join(sorted(schema.tables))}'
        if not matches
        else f'"{text}" matches several tables: {", ".join(sorted(matches))}'
    )


class Model:
    def __init__(self, schema: DbSchema, snapshot: dict[str, list[dict[str, Any]]]) -> None:
        self.schema = schema
        self.rows: dict[str, dict[str, Row]] = {name: {} for name in schema.tables}
        for table, rows in snapshot.items():
            tschema = schema.tables[table]
            for row_json in rows:
                key = row_json["_uuid"][1]
                row = {
                    col: vs.from_json(tschema.columns[col].type, value)
                    for col, value in row_json.items()
                    if col in tschema.columns
                }
                # A column left out of the snapshot (a bridge's flow_rules, for commands
                # that do not touch them) reads as its default and is never written.
                for col, column in tschema.columns.items():
                    if col not in row:
                        row[col] = vs.default_value(column.type)
                self.rows[table][key] = row
        self.original = copy.deepcopy(self.rows)
        self.inserted: dict[str, list[str]] = {name: [] for name in schema.tables}
        self.deleted: dict[str, set[str]] = {name: set() for name in schema.tables}
        self._names = itertools.count(1)
        # uuid-name -> existing row, from ``--id=@NAME get``: references to @NAME are
        # stored as that row's UUID.
        self.aliases: dict[str, tuple[str, str]] = {}  # uuid-name -> (table, row key)

    # -- reading --------------------------------------------------------------------

    def table_name(self, text: str) -> str:
        return table_name(self.schema, text)

    def column_type(self, table: str, column: str) -> vs.Type:
        tschema = self.schema.tables.get(table)
        if tschema is None:
            raise ModelError(
                f'unknown table "{table}"; tables are: {", ".join(sorted(self.schema.tables))}'
            )
        col = tschema.columns.get(column)
        if col is None:
            raise ModelError(
                f'table {table} has no column "{column}"; columns are: '
                + ", ".join(sorted(tschema.columns))
            )
        type_: vs.Type = col.type
        return type_

    def ref(self, table: str, key: str) -> tuple[str, str]:
        return ("named-uuid", key) if key in self.inserted[table] else ("uuid", key)

    def key_of(self, atom: Any) -> str:
        return str(atom[1])

    def table_rows(self, table: str) -> dict[str, Row]:
        if table not in self.rows:
            raise ModelError(
                f'unknown table "{table}"; tables are: {", ".join(sorted(self.schema.tables))}'
            )
        return self.rows[table]

    def find_by(self, table: str, column: str, value: Any) -> list[str]:
        return [key for key, row in self.table_rows(table).items() if row.get(column) == value]

    def lookup(self, table: str, record: str, must_exist: bool = True) -> str | None:
        """Find a record the way ovs-vsctl does: by name (or "."), else by UUID."""
        rows = self.table_rows(table)
        if table == "Open_vSwitch" and record == ".":
            if rows:
                return next(iter(rows))
        elif record in rows:
            return record
        else:
            column = NAMED_TABLES.get(table)
            if column:
                found = self.find_by(table, column, record)
                if found:
                    return found[0]
            referred = self._by_referrer(table, record)
            if referred is not None:
                return referred
            if vs.UUID_RE.match(record) and record.lower() in rows:
                return record.lower()
        if must_exist:
            how = f"{NAMED_TABLES[table]} or UUID" if table in NAMED_TABLES else "UUID"
            if table in NAMED_BY_REFERRER:
                how = f"the name of its {NAMED_BY_REFERRER[table][0]}, or UUID"
            if table == "Open_vSwitch":
                how = '"." (the single row; run "ovsr init" first)'
            raise ModelError(f'no row "{record}" in table {table} (look up by {how})')
        return None

    def _by_referrer(self, table: str, record: str) -> str | None:
        """The row of ``table`` that the row named ``record`` refers to, if the table
        is one of ``NAMED_BY_REFERRER`` and the reference is a single row."""
        referrer = NAMED_BY_REFERRER.get(table)
        if referrer is None or referrer[0] not in self.rows:
            return None
        ref_table, column = referrer
        for key in self.find_by(ref_table, "name", record):
            value = self.rows[ref_table][key].get(column)
            refs = value if isinstance(value, list) else [value]
            keys = [self.key_of(r) for r in refs if isinstance(r, tuple)]
            if len(keys) == 1 and keys[0] in self.rows[table]:
                return keys[0]
        return None

    def root(self) -> str:
        key = self.lookup("Open_vSwitch", ".", must_exist=False)
        if key is None:
            key = self.insert("Open_vSwitch", {})
        return key

    # -- changing -------------------------------------------------------------------

    def alias(self, table: str, name: str, key: str) -> None:
        """``--id=@NAME`` on an existing row of ``table``."""
        symbol = vs.symbol(name)
        if symbol in self.aliases or any(symbol in keys for keys in self.inserted.values()):
            raise ModelError(f"{name} is defined twice")
        self.aliases[symbol] = (table, key)

    def _resolved(self, value: Any) -> Any:
        """``value`` with references to an aliased @NAME made references to its row."""
        if not self.aliases:
            return value
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "named-uuid":
            alias = self.aliases.get(value[1])
            return self.ref(*alias) if alias is not None else value  # (a row this
            # command line inserts keeps its uuid-name)
        if isinstance(value, list):
            return [self._resolved(v) for v in value]
        if isinstance(value, dict):
            return {self._resolved(k): self._resolved(v) for k, v in value.items()}
        return value

    def insert(self, table: str, values: Row, name: str | None = None) -> str:
        key = name or f"row{next(self._names)}"
        if key in self.rows[table] or key in self.aliases:
            raise ModelError(f"@{key[4:] if name else key} is defined twice")
        row = {
            col: vs.default_value(c.type) for col, c in self.schema.tables[table].columns.items()
        }
        for col, value in values.items():
            self.column_type(table, col)
            row[col] = self._resolved(value)
        self.rows[table][key] = row
        self.inserted[table].append(key)
        return key

    def set(self, table: str, key: str, column: str, value: Any) -> None:
        col = self.schema.tables[table].columns[column]
        if not col.mutable and key not in self.inserted[table]:
            raise ModelError(f'column "{column}" of table {table} cannot be changed after creation')
        self.rows[table][key][column] = self._resolved(value)

    def delete(self, table: str, key: str) -> None:
        self.rows[table].pop(key, None)
        if key in self.inserted[table]:
            self.inserted[table].remove(key)
        else:
            self.deleted[table].add(key)

    # -- the transaction ----------------------------------------------------------------

    def changed(self) -> bool:
        return bool(self.operations(with_waits=False))

    def operations(self, with_waits: bool = True) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = []
        waits: list[dict[str, Any]] = []
        for table, keys in self.inserted.items():
            tschema = self.schema.tables[table]
            for key in keys:
                row = self.rows[table][key]
                values = {
                    col: vs.to_json(tschema.columns[col].type, value)
                    for col, value in row.items()
                    if value != vs.default_value(tschema.columns[col].type)
                }
                ops.append({"op": "insert", "table": table, "uuid-name": key, "row": values})
        for table, rows in self.rows.items():
            tschema = self.schema.tables[table]
            for key, row in rows.items():
                before = self.original[table].get(key)
                if before is None:
                    continue
                diff = [col for col in row if row[col] != before.get(col)]
                if not diff:
                    continue
                where = [["_uuid", "==", ["uuid", key]]]
                ops.append(
                    {
                        "op": "update",
                        "table": table,
                        "where": where,
                        "row": {c: vs.to_json(tschema.columns[c].type, row[c]) for c in diff},
                    }
                )
                waits.append(
                    {
                        "op": "wait",
                        "table": table,
                        "where": where,
                        "timeout": 0,
                        "columns": diff,
                        "until": "==",
                        "rows": [{c: vs.to_json(tschema.columns[c].type, before[c]) for c in diff}],
                    }
                )
        for table, gone in self.deleted.items():
            for key in sorted(gone):
                ops.append(
                    {"op": "delete", "table": table, "where": [["_uuid", "==", ["uuid", key]]]}
                )
        return (waits + ops) if with_waits else ops
