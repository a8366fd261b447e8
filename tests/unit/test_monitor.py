"""Monitor updates: the right rows, columns and kinds of change, in both formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ovs_runtime.db.database import RowChange
from ovs_runtime.db.monitor import Monitor, parse_monitor_requests
from tests.unit.db_helpers import add_bridge_ops, new_db


def capture(db: Any) -> list[list[RowChange]]:
    seen: list[list[RowChange]] = []
    db.listeners.append(lambda changes, txn: seen.append(changes))
    return seen


def test_monitor_v1_insert_modify_delete(tmp_path: Path) -> None:
    db = new_db(tmp_path)
    tables = parse_monitor_requests(db.schema, {"Port": {"columns": ["name", "tag"]}}, False)
    mon = Monitor("m", 1, tables)
    seen = capture(db)
    db.transact(add_bridge_ops("br0", ("p1",)))
    ins = mon.updates_for(seen[-1])["Port"]
    assert sorted(u["new"]["name"] for u in ins.values()) == ["br0", "p1"]
    assert all("old" not in u for u in ins.values())
    db.transact(
        [{"op": "update", "table": "Port", "where": [["name", "==", "p1"]], "row": {"tag": 7}}]
    )
    (mod,) = mon.updates_for(seen[-1])["Port"].values()
    assert mod == {"old": {"tag": ["set", []]}, "new": {"name": "p1", "tag": 7}}
    # A change to a column we do not watch is not reported.
    db.transact(
        [
            {
                "op": "update",
                "table": "Port",
                "where": [["name", "==", "p1"]],
                "row": {"other_config": ["map", [["k", "v"]]]},
            }
        ]
    )
    assert mon.updates_for(seen[-1]) == {}
    db.transact([{"op": "update", "table": "Bridge", "where": [], "row": {"ports": ["set", []]}}])
    dels = mon.updates_for(seen[-1])["Port"]
    assert sorted(u["old"]["name"] for u in dels.values()) == ["br0", "p1"]


def test_monitor_initial_and_select(tmp_path: Path) -> None:
    db = new_db(tmp_path)
    db.transact(add_bridge_ops("br0", ("p1",)))
    req = {"Bridge": {"columns": ["name"], "select": {"initial": True, "modify": False}}}
    mon = Monitor("m", 1, parse_monitor_requests(db.schema, req, False))
    initial = mon.initial(db.tables)
    assert [u["new"]["name"] for u in initial["Bridge"].values()] == ["br0"]
    seen = capture(db)
    db.transact([{"op": "update", "table": "Bridge", "where": [], "row": {"fail_mode": "secure"}}])
    assert mon.updates_for(seen[-1]) == {}


def test_monitor_cond_update2_diff_and_condition(tmp_path: Path) -> None:
    db = new_db(tmp_path)
    db.transact(add_bridge_ops("br0", ("p1", "p2")))
    req = {
        "Port": {"columns": ["name", "tag", "trunks", "other_config"], "where": [["tag", "==", 10]]}
    }
    mon = Monitor("m", 2, parse_monitor_requests(db.schema, req, True))
    assert mon.initial(db.tables) == {}
    seen = capture(db)
    db.transact(
        [
            {
                "op": "update",
                "table": "Port",
                "where": [["name", "==", "p1"]],
                "row": {
                    "tag": 10,
                    "trunks": ["set", [1, 2]],
                    "other_config": ["map", [["a", "1"], ["b", "2"]]],
                },
            }
        ]
    )
    (ins,) = mon.updates_for(seen[-1])["Port"].values()
    assert ins["insert"]["name"] == "p1"
    db.transact(
        [
            {
                "op": "update",
                "table": "Port",
                "where": [["name", "==", "p1"]],
                "row": {
                    "trunks": ["set", [2, 3]],
                    "other_config": ["map", [["a", "9"], ["c", "3"]]],
                },
            }
        ]
    )
    (mod,) = mon.updates_for(seen[-1])["Port"].values()
    assert mod["modify"]["trunks"] == ["set", [1, 3]]  # symmetric difference
    assert mod["modify"]["other_config"] == ["map", [["a", "9"], ["b", "2"], ["c", "3"]]]
    db.transact(
        [{"op": "update", "table": "Port", "where": [["name", "==", "p1"]], "row": {"tag": 11}}]
    )
    (gone,) = mon.updates_for(seen[-1])["Port"].values()
    assert gone == {"delete": None}  # no longer matches the condition
    changed = mon.change_conditions(
        db.schema, {"Port": [{"where": [["name", "==", "p2"]]}]}, db.tables
    )
    assert [u["insert"]["name"] for u in changed["Port"].values()] == ["p2"]
