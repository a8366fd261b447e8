"""Monitors: ``monitor`` (RFC 7047 4.1.5), ``monitor_cond`` and ``monitor_cond_since``.

A ``Monitor`` remembers, per table, which columns a client watches, which kinds of
change it wants (``initial``/``insert``/``delete``/``modify``) and, for the conditional
forms, which rows (``where``). After each commit it turns the list of ``RowChange`` into
the client's ``<table-updates>`` (version 1) or ``<table-updates2>`` (versions 2 and 3).
In version 2 a row that starts or stops matching the condition appears as an insert or
delete, as ovsdb-server does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.db import condition
from ovs_runtime.db.datum import Datum, Row, column_type, datum_json
from ovs_runtime.db.errors import syntax_error
from ovs_runtime.db.schema import DbSchema, TableSchema

SELECT_KINDS = ("initial", "insert", "delete", "modify")


@dataclass
class TableMonitor:
    table: TableSchema
    columns: list[str]
    select: dict[str, bool]
    where: list[condition.Clause] = field(default_factory=list)

    def matches(self, row: Row | None) -> bool:
        return row is not None and condition.matches_all(self.where, row)

    def project(self, row: Row) -> dict[str, Any]:
        return {name: datum_json(row[name]) for name in self.columns}


def _parse_request(table: TableSchema, req: Any, conditional: bool) -> TableMonitor:
    if not isinstance(req, dict):
        raise syntax_error(f'monitor request for "{table.name}" must be an object, got {req!r}')
    columns = req.get("columns")
    if columns is None:
        columns = sorted(table.columns)
    elif not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise syntax_error(f'"columns" for "{table.name}" must be a list of names')
    for name in columns:
        column_type(table, name)
    select_json = req.get("select", {})
    if not isinstance(select_json, dict) or any(k not in SELECT_KINDS for k in select_json):
        raise syntax_error(f'"select" for "{table.name}" may only have {", ".join(SELECT_KINDS)}')
    select = {kind: bool(select_json.get(kind, True)) for kind in SELECT_KINDS}
    where = condition.parse_where(table, req.get("where", []), None) if conditional else []
    return TableMonitor(table, list(dict.fromkeys(columns)), select, where)


def parse_monitor_requests(
    schema: DbSchema, requests: Any, conditional: bool
) -> dict[str, TableMonitor]:
    if not isinstance(requests, dict):
        raise syntax_error(f"monitor requests must be an object keyed by table, got {requests!r}")
    monitors: dict[str, TableMonitor] = {}
    for table_name, req in requests.items():
        table = schema.tables.get(table_name)
        if table is None:
            raise syntax_error(f'unknown table "{table_name}" in monitor request')
        reqs = req if isinstance(req, list) else [req]
        parsed = [_parse_request(table, r, conditional) for r in reqs]
        merged = parsed[0]
        for extra in parsed[1:]:
            merged.columns.extend(c for c in extra.columns if c not in merged.columns)
            for kind in SELECT_KINDS:
                merged.select[kind] = merged.select[kind] or extra.select[kind]
        monitors[table_name] = merged
    return monitors


def _column_diff(old: Datum, new: Datum) -> Any:
    """The <row-diff> value of one column (ovsdb-server(7), "update2")."""
    if not (old.type.is_map() or old.type.n_max > 1):
        return datum_json(new)
    diff: dict[Any, Any] = {}
    for key, value in old.values.items():
        if key not in new.values:
            diff[key] = value  # removed: the client toggles it out
    for key, value in new.values.items():
        if key not in old.values or old.values[key] != value:
            diff[key] = value  # added or changed: the client sets it
    return datum_json(Datum(old.type, diff))


class Monitor:
    def __init__(self, monitor_id: Any, version: int, tables: dict[str, TableMonitor]) -> None:
        self.monitor_id = monitor_id
        self.version = version  # 1 = monitor, 2 = monitor_cond, 3 = monitor_cond_since
        self.tables = tables

    def initial(self, db_tables: dict[str, dict[uuid.UUID, Row]]) -> dict[str, Any]:
        updates: dict[str, Any] = {}
        for name, tm in self.tables.items():
            if not tm.select["initial"]:
                continue
            for row_uuid, row in db_tables[name].items():
                if not tm.matches(row):
                    continue
                entry = (
                    {"new": tm.project(row)} if self.version == 1 else {"initial": tm.project(row)}
                )
                updates.setdefault(name, {})[str(row_uuid)] = entry
        return updates

    def updates_for(self, changes: list[Any]) -> dict[str, Any]:
        """Table updates for a committed list of ``RowChange``; empty if none concern us."""
        updates: dict[str, Any] = {}
        for change in changes:
            tm = self.tables.get(change.table)
            if tm is None:
                continue
            entry = self._row_update(tm, change.old, change.new)
            if entry is not None:
                updates.setdefault(change.table, {})[str(change.uuid)] = entry
        return updates

    def _row_update(self, tm: TableMonitor, old: Row | None, new: Row | None) -> Any:
        was, now = tm.matches(old), tm.matches(new)
        if not was and not now:
            return None
        if not was:
            assert new is not None
            if not tm.select["insert"]:
                return None
            return {"new": tm.project(new)} if self.version == 1 else {"insert": tm.project(new)}
        if not now:
            assert old is not None
            if not tm.select["delete"]:
                return None
            return {"old": tm.project(old)} if self.version == 1 else {"delete": None}
        assert old is not None and new is not None
        changed = [c for c in tm.columns if old[c].values != new[c].values]
        if not changed or not tm.select["modify"]:
            return None
        if self.version == 1:
            return {
                "old": {c: datum_json(old[c]) for c in changed},
                "new": tm.project(new),
            }
        return {"modify": {c: _column_diff(old[c], new[c]) for c in changed}}

    def change_conditions(
        self, schema: DbSchema, requests: Any, db_tables: dict[str, dict[uuid.UUID, Row]]
    ) -> dict[str, Any]:
        """Apply ``monitor_cond_change``; returns the inserts/deletes it causes."""
        if not isinstance(requests, dict):
            raise syntax_error("monitor_cond_change requests must be an object keyed by table")
        updates: dict[str, Any] = {}
        new_wheres: dict[str, list[condition.Clause]] = {}
        for name, req in requests.items():
            if name not in self.tables:
                raise syntax_error(f'table "{name}" is not monitored by this monitor')
            reqs = req if isinstance(req, list) else [req]
            if not reqs or not isinstance(reqs[0], dict):
                raise syntax_error(f'condition change for "{name}" must be an object')
            new_wheres[name] = condition.parse_where(
                schema.tables[name], reqs[0].get("where", []), None
            )
        for name, where in new_wheres.items():
            tm = self.tables[name]
            old_where = tm.where
            for row_uuid, row in db_tables[name].items():
                was = condition.matches_all(old_where, row)
                now = condition.matches_all(where, row)
                if was and not now:
                    updates.setdefault(name, {})[str(row_uuid)] = {"delete": None}
                elif now and not was:
                    updates.setdefault(name, {})[str(row_uuid)] = {"insert": tm.project(row)}
            tm.where = where
        return updates
