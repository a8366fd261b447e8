"""Durable storage of committed rows in SQLite, in WAL mode with ``synchronous=FULL``.

Why SQLite rather than an OVSDB-style hand-written journal: it is in the standard
library, its WAL commit is atomic and fsync'd before we acknowledge a transaction, and
its recovery after ``kill -9`` or power loss is among the most tested code there is.
What it does silently (dropping a torn WAL tail) ``wal_check`` reports in the log.

Layout: ``meta(key, value)`` holds the schema name, version and JSON; ``rows(tbl, uuid,
data)`` holds one JSON object per row with its persistent columns and ``_version``.
Ephemeral columns (RFC 7047 "ephemeral": status, statistics...) are never written.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ovs_runtime.db import wal_check
from ovs_runtime.db.datum import JsonText
from ovs_runtime.db.schema import DbSchema

log = logging.getLogger(__name__)

DB_FILENAME = "conf.db"


class StorageError(Exception):
    """The database file cannot be used; the message says which file and why."""


@dataclass
class StoredDatabase:
    schema_json: dict[str, Any] | None
    rows: dict[str, dict[str, dict[str, Any]]]  # table -> uuid -> row JSON


# One row change for ``Storage.commit``: (table, uuid, row JSON or None for a delete).
RowWrite = tuple[str, uuid.UUID, dict[str, Any] | None]


def row_text(data: dict[str, Any]) -> str:
    """A row's JSON text; values that are ``JsonText`` (a large UUID set, serialized by
    ``datum.stored_json``) go in as they are."""
    if not any(isinstance(value, JsonText) for value in data.values()):
        return json.dumps(data, sort_keys=True)
    members = (
        f"{json.dumps(name)}: "
        + (value if isinstance(value, JsonText) else json.dumps(value, sort_keys=True))
        for name, value in sorted(data.items())
    )
    return "{" + ", ".join(members) + "}"


class Storage:
    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def open(self) -> StoredDatabase:
        report = wal_check.inspect_wal(wal_check.wal_path(self.path))
        if report is not None and report.torn:
            log.warning(
                "database %s: the write-ahead log ends in a torn tail (%d uncommitted frame(s), "
                "%d stray byte(s)) from an interrupted write; dropping it and keeping the "
                "%d committed frame(s)",
                self.path,
                report.dropped_frames,
                report.dropped_bytes,
                report.committed_frames,
            )
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StorageError(f"database {self.path} is corrupt: {check}")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS rows (tbl TEXT NOT NULL, uuid TEXT NOT NULL, "
                "data TEXT NOT NULL, PRIMARY KEY (tbl, uuid)) WITHOUT ROWID"
            )
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"database {self.path} cannot be opened: {exc}") from exc
        self.conn = conn
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        schema = json.loads(meta["schema"]) if "schema" in meta else None
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for table, row_uuid, data in conn.execute("SELECT tbl, uuid, data FROM rows"):
            rows.setdefault(table, {})[row_uuid] = json.loads(data)
        return StoredDatabase(schema, rows)

    def _require_conn(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StorageError(f"database {self.path} is not open")
        return self.conn

    def replace_all(self, schema: DbSchema, rows: Iterable[RowWrite]) -> None:
        """Write a whole database (first start, or after a schema conversion) atomically."""
        conn = self._require_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM rows")
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                (json.dumps(schema.to_json(), sort_keys=True),),
            )
            self._write_rows(conn, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def commit(self, writes: list[RowWrite]) -> None:
        """Make ``writes`` durable; returns only after SQLite has fsync'd the WAL."""
        if not writes:
            return
        conn = self._require_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._write_rows(conn, writes)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _write_rows(conn: sqlite3.Connection, writes: Iterable[RowWrite]) -> None:
        """Each row is written once per commit, so deletions and writes can go in two
        batches (``del-flows`` of 100,000 rules: one statement, not 100,000)."""
        deleted, written = [], []
        for table, row_uuid, data in writes:
            if data is None:
                deleted.append((table, str(row_uuid)))
            else:
                written.append((table, str(row_uuid), row_text(data)))
        conn.executemany("DELETE FROM rows WHERE tbl = ? AND uuid = ?", deleted)
        conn.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)", written)

    def backup_to(self, target: str) -> None:
        conn = self._require_conn()
        dest = sqlite3.connect(target)
        try:
            conn.backup(dest)
        finally:
            dest.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def database_path(state_dir: str) -> str:
    return os.path.join(state_dir, DB_FILENAME)
