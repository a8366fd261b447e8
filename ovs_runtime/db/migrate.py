"""Converting rows written under an older schema version to the current schema.

Runs on start, before anything is served. New columns get their defaults; values whose
type changed are re-parsed under the new type. Anything that cannot be carried over
(a dropped table or column, a value the new type rejects) is logged by name, and the
untouched pre-conversion database is kept as ``conf.db.pre-<old version>`` beside the
new one. A database written by a *newer* schema is refused and left untouched.
"""

from __future__ import annotations

import logging
from typing import Any

from ovs_runtime.db.datum import datum_from_json
from ovs_runtime.db.errors import OvsdbError
from ovs_runtime.db.schema import DbSchema, version_tuple

log = logging.getLogger(__name__)

StoredRows = dict[str, dict[str, dict[str, Any]]]


class NewerSchemaError(Exception):
    pass


def needs_conversion(stored_schema: dict[str, Any], current: DbSchema) -> bool:
    stored_version = str(stored_schema.get("version", "0.0.0"))
    if version_tuple(stored_version) > version_tuple(current.version):
        raise NewerSchemaError(
            f"the database was written by schema {stored_schema.get('name')} "
            f"{stored_version}, newer than this ovs-runtime's {current.version}; "
            "refusing to start and leaving the file untouched (install the newer ovs-runtime, "
            "or restore a backup)"
        )
    return stored_version != current.version or stored_schema != current.to_json()


def convert_rows(stored: StoredRows, current: DbSchema) -> tuple[StoredRows, list[str]]:
    """Return the rows re-expressed under ``current`` and a list of what was lost."""
    converted: StoredRows = {}
    losses: list[str] = []
    for table_name, rows in stored.items():
        table = current.tables.get(table_name)
        if table is None:
            losses.append(f"table {table_name} ({len(rows)} rows) no longer exists")
            continue
        out = converted.setdefault(table_name, {})
        for row_uuid, row in rows.items():
            new_row: dict[str, Any] = {}
            for column, value in row.items():
                if column == "_version":
                    new_row[column] = value
                    continue
                col = table.columns.get(column)
                if col is None:
                    losses.append(f"{table_name} {row_uuid}: column {column} no longer exists")
                    continue
                if not col.persistent:
                    continue
                try:
                    datum_from_json(col.type, value, None, column)
                except OvsdbError as exc:
                    losses.append(f"{table_name} {row_uuid}: column {column}: {exc.details}")
                    continue
                new_row[column] = value
            out[row_uuid] = new_row
    return converted, losses
