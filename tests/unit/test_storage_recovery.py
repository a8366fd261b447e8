"""Storage: torn write-ahead-log tails are detected and dropped; newer schemas refused;
older schemas converted."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from ovs_runtime.db import wal_check
from ovs_runtime.db.database import open_database
from ovs_runtime.db.migrate import NewerSchemaError
from ovs_runtime.db.schema import load_schema, schema_json
from ovs_runtime.db.storage import database_path
from tests.unit.db_helpers import add_bridge_ops, new_db, select


def _crash_copy(tmp_path: Path) -> Path:
    """A database directory as a crash leaves it: conf.db plus an un-checkpointed WAL."""
    src = tmp_path / "live"
    db = new_db(src)
    db.transact(add_bridge_ops("br0", ("p1",)))
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in os.listdir(src):
        (crashed / name).write_bytes((src / name).read_bytes())  # copied while still open
    db.close()
    return crashed


def test_clean_wal_reports_nothing(tmp_path: Path) -> None:
    crashed = _crash_copy(tmp_path)
    report = wal_check.inspect_wal(str(crashed / "conf.db-wal"))
    assert report is not None and report.committed_frames > 0 and not report.torn


@pytest.mark.parametrize("damage", ["partial-frame", "garbage-frames", "truncate-mid-frame"])
def test_torn_tail_is_dropped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    crashed = _crash_copy(tmp_path)
    wal = crashed / "conf.db-wal"
    data = wal.read_bytes()
    page = int.from_bytes(data[8:12], "big")
    frame = 24 + page
    if damage == "partial-frame":
        data += data[32 : 32 + frame // 2]
    elif damage == "garbage-frames":
        # A frame header with the right salts but a wrong checksum: an interrupted write.
        header = bytearray(data[32:56])
        header[16:24] = b"\xde\xad\xbe\xef" * 2
        data += bytes(header) + os.urandom(page)
    else:
        data = data[: len(data) - frame // 3]
    wal.write_bytes(data)
    assert wal_check.inspect_wal(str(wal)).torn  # type: ignore[union-attr]
    caplog.set_level(logging.WARNING)
    db = open_database(load_schema(), str(crashed))
    assert "torn tail" in caplog.text
    # The database opens, and every committed transaction before the damage is there.
    names = {r["name"] for r in select(db, "Bridge")}
    if damage != "truncate-mid-frame":
        assert names == {"br0"}
    assert select(db, "Open_vSwitch")


def test_newer_schema_is_refused_and_file_untouched(tmp_path: Path) -> None:
    db = new_db(tmp_path)
    db.close()
    path = database_path(str(tmp_path))
    conn = sqlite3.connect(path)
    newer = dict(schema_json(), version="99.0.0")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (json.dumps(newer),))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = Path(path).read_bytes()
    with pytest.raises(NewerSchemaError, match="99.0.0"):
        open_database(load_schema(), str(tmp_path))
    assert Path(path).read_bytes() == before


def test_older_schema_is_converted_without_loss(tmp_path: Path) -> None:
    """Write with an older schema (no 'protected' column on Port, an extra legacy column),
    then open with the current one."""
    old = schema_json()
    old["version"] = "0.9.0"
    del old["tables"]["Port"]["columns"]["protected"]
    old["tables"]["Port"]["columns"]["legacy_flag"] = {"type": "boolean"}
    from ovs_runtime.db.schema import parse_schema

    old_db = open_database(parse_schema(old), str(tmp_path))
    old_db.transact([{"op": "insert", "table": "Open_vSwitch", "row": {}}])
    old_db.transact(add_bridge_ops("br0", ("p1",)))
    old_db.transact(
        [
            {
                "op": "update",
                "table": "Port",
                "where": [["name", "==", "p1"]],
                "row": {"tag": 10, "legacy_flag": True},
            }
        ]
    )
    old_db.close()
    db = open_database(load_schema(), str(tmp_path))
    port = select(db, "Port", [["name", "==", "p1"]])[0]
    assert port["tag"] == 10 and port["protected"] is False
    assert {r["name"] for r in select(db, "Interface")} == {"br0", "p1"}
    assert os.path.exists(database_path(str(tmp_path)) + ".pre-0.9.0")
    db.close()
    # Converting is done once: the next open finds the current schema.
    again = open_database(load_schema(), str(tmp_path))
    assert select(again, "Port", [["name", "==", "p1"]])[0]["tag"] == 10


def test_rows_a_conversion_orphans_are_collected(tmp_path: Path) -> None:
    """An older schema held a Port only through a column that no longer exists: after the
    conversion nothing references it (nor its Interface), so both are deleted, once."""
    old = schema_json()
    old["version"] = "0.9.0"
    old["tables"]["Bridge"]["columns"]["legacy_ports"] = {
        "type": {"key": {"type": "uuid", "refTable": "Port"}, "min": 0, "max": "unlimited"}
    }
    from ovs_runtime.db.schema import parse_schema

    old_db = open_database(parse_schema(old), str(tmp_path))
    old_db.transact([{"op": "insert", "table": "Open_vSwitch", "row": {}}])
    old_db.transact(add_bridge_ops("br0", ("p1",)))
    old_db.transact(
        [
            {"op": "insert", "table": "Interface", "row": {"name": "old"}, "uuid-name": "i"},
            {
                "op": "insert",
                "table": "Port",
                "row": {"name": "old", "interfaces": ["named-uuid", "i"]},
                "uuid-name": "p",
            },
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["name", "==", "br0"]],
                "mutations": [["legacy_ports", "insert", ["named-uuid", "p"]]],
            },
        ]
    )
    assert {r["name"] for r in select(old_db, "Port")} == {"br0", "p1", "old"}
    old_db.close()
    db = open_database(load_schema(), str(tmp_path))
    assert {r["name"] for r in select(db, "Port")} == {"br0", "p1"}
    assert {r["name"] for r in select(db, "Interface")} == {"br0", "p1"}
    db.close()
    again = open_database(load_schema(), str(tmp_path))
    assert {r["name"] for r in select(again, "Port")} == {"br0", "p1"}, "and on disk"
    again.close()
