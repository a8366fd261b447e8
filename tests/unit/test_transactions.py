"""RFC 7047 transaction semantics: every operation, rollback, references, GC, indexes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ovs_runtime.db import integrity
from ovs_runtime.db.database import Database
from ovs_runtime.db.transaction import WaitBlocked
from ovs_runtime.db.txn_view import TxnView
from tests.unit.db_helpers import add_bridge_ops, errors, new_db, select, uuid_of


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return new_db(tmp_path)


def by_name(db: Database, table: str, name: str) -> dict:
    rows = select(db, table, [["name", "==", name]])
    assert len(rows) == 1, rows
    return rows[0]


def test_insert_with_uuid_name_and_references(db: Database) -> None:
    results = db.transact(add_bridge_ops("br0", ("p1",)))
    assert errors(results) == []
    bridge = by_name(db, "Bridge", "br0")
    port = by_name(db, "Port", "p1")
    iface = by_name(db, "Interface", "p1")
    assert ["uuid", port["_uuid"][1]] in bridge["ports"][1]
    assert port["interfaces"] == ["uuid", iface["_uuid"][1]]
    # Inserts report the real UUIDs chosen for the named rows.
    assert uuid_of(results[-2]) == bridge["_uuid"][1]


def test_select_columns_and_conditions(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1", "p2", "p3")))
    db.transact(
        [{"op": "update", "table": "Port", "where": [["name", "==", "p2"]], "row": {"tag": 20}}]
    )
    db.transact(
        [
            {
                "op": "update",
                "table": "Port",
                "where": [["name", "==", "p3"]],
                "row": {"tag": 30, "trunks": ["set", [1, 2, 3]]},
            }
        ]
    )
    rows = select(db, "Port", [["tag", ">=", 20]], ["name"])
    assert sorted(r["name"] for r in rows) == ["p2", "p3"]
    assert rows[0].keys() == {"name"}
    assert [r["name"] for r in select(db, "Port", [["tag", "<", 25]])] == ["p2"]
    assert [r["name"] for r in select(db, "Port", [["trunks", "includes", 2]])] == ["p3"]
    excl = select(db, "Port", [["trunks", "excludes", ["set", [2]]]], ["name"])
    assert sorted(r["name"] for r in excl) == ["br0", "p1", "p2"]
    assert [r["name"] for r in select(db, "Port", [["name", "!=", "p1"], ["tag", "==", 30]])] == [
        "p3"
    ]


def test_update_and_immutable_column(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1",)))
    result = db.transact(
        [
            {
                "op": "update",
                "table": "Port",
                "where": [["name", "==", "p1"]],
                "row": {"tag": 10, "vlan_mode": "access"},
            }
        ]
    )
    assert result == [{"count": 1}]
    assert by_name(db, "Port", "p1")["tag"] == 10
    bad = db.transact([{"op": "update", "table": "Port", "where": [], "row": {"name": "x"}}])
    assert bad[0]["error"] == "constraint violation"
    assert "immutable" in bad[0]["details"]


def test_mutate_arithmetic_sets_and_maps(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1",)))
    where = [["name", "==", "p1"]]
    ops = [
        {
            "op": "mutate",
            "table": "Port",
            "where": where,
            "mutations": [
                ["trunks", "insert", ["set", [10, 20, 30]]],
                ["other_config", "insert", ["map", [["a", "1"], ["b", "2"]]]],
            ],
        },
        {
            "op": "mutate",
            "table": "Port",
            "where": where,
            "mutations": [
                ["trunks", "delete", 20],
                ["other_config", "delete", ["set", ["a"]]],
                ["trunks", "+=", 1],
            ],
        },
    ]
    assert errors(db.transact(ops)) == []
    port = by_name(db, "Port", "p1")
    assert port["trunks"] == ["set", [11, 31]]
    assert port["other_config"] == ["map", [["b", "2"]]]
    # Delete a map pair only when the value matches too.
    db.transact(
        [
            {
                "op": "mutate",
                "table": "Port",
                "where": where,
                "mutations": [["other_config", "delete", ["map", [["b", "wrong"]]]]],
            }
        ]
    )
    assert by_name(db, "Port", "p1")["other_config"] == ["map", [["b", "2"]]]
    root = select(db, "Open_vSwitch")[0]
    db.transact(
        [
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [
                    ["next_cfg", "+=", 5],
                    ["next_cfg", "*=", 3],
                    ["next_cfg", "-=", 1],
                    ["next_cfg", "/=", 2],
                    ["next_cfg", "%=", 4],
                ],
            }
        ]
    )
    assert select(db, "Open_vSwitch")[0]["next_cfg"] == (((root["next_cfg"] + 5) * 3 - 1) // 2) % 4


def test_mutate_errors(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1",)))
    where = [["name", "==", "p1"]]
    div0 = db.transact(
        [
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [["next_cfg", "/=", 0]],
            }
        ]
    )
    assert div0[0]["error"] == "domain error"
    overflow = db.transact(
        [
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [["next_cfg", "+=", 2**63 - 1], ["next_cfg", "+=", 1]],
            }
        ]
    )
    assert overflow[0]["error"] == "range error"
    out_of_range = db.transact(
        [
            {
                "op": "mutate",
                "table": "Port",
                "where": where,
                "mutations": [["trunks", "insert", 4096]],
            }
        ]
    )
    assert out_of_range[0]["error"] == "constraint violation"
    empty = db.transact(
        [
            {
                "op": "mutate",
                "table": "Port",
                "where": where,
                "mutations": [
                    ["interfaces", "delete", ["set", []]],
                    ["interfaces", "delete", by_name(db, "Port", "p1")["interfaces"]],
                ],
            }
        ]
    )
    assert empty[0]["error"] == "constraint violation"


def test_delete_and_garbage_collection(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1", "p2")))
    port = by_name(db, "Port", "p1")
    bridge = by_name(db, "Bridge", "br0")
    # Removing p1 from the bridge's ports orphans Port p1 and its Interface: both collected.
    result = db.transact(
        [
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["name", "==", "br0"]],
                "mutations": [["ports", "delete", ["set", [port["_uuid"]]]]],
            }
        ]
    )
    assert errors(result) == []
    assert select(db, "Port", [["name", "==", "p1"]]) == []
    assert select(db, "Interface", [["name", "==", "p1"]]) == []
    # Removing the bridge from the root collects the whole tree.
    db.transact(
        [
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [["bridges", "delete", ["set", [bridge["_uuid"]]]]],
            }
        ]
    )
    assert select(db, "Bridge") == [] and select(db, "Port") == [] and select(db, "Interface") == []


@pytest.mark.parametrize("bulk_from", [0, 10**9], ids=["counted", "one-by-one"])
def test_collecting_many_rows_spares_those_still_referenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk_from: int
) -> None:
    """Both ways of collecting garbage (references counted once, or looked up per
    candidate) agree: a port another bridge still holds survives with its interface;
    every other port and its interface goes."""
    monkeypatch.setattr(integrity, "BULK_CANDIDATES", bulk_from)
    db = new_db(tmp_path)
    ports = tuple(f"p{n}" for n in range(100))
    assert errors(db.transact(add_bridge_ops("br0", ports))) == []
    assert errors(db.transact(add_bridge_ops("br1"))) == []
    shared = by_name(db, "Port", "p5")["_uuid"]
    share = {
        "op": "mutate",
        "table": "Bridge",
        "where": [["name", "==", "br1"]],
        "mutations": [["ports", "insert", ["set", [shared]]]],
    }
    assert errors(db.transact([share])) == []
    clear = {
        "op": "update",
        "table": "Bridge",
        "where": [["name", "==", "br0"]],
        "row": {"ports": ["set", []]},
    }
    assert errors(db.transact([clear])) == []
    assert sorted(r["name"] for r in select(db, "Port")) == ["br1", "p5"]
    assert sorted(r["name"] for r in select(db, "Interface")) == ["br1", "p5"]


def test_unreferenced_insert_is_collected(db: Database) -> None:
    result = db.transact([{"op": "insert", "table": "Interface", "row": {"name": "lonely"}}])
    assert "uuid" in result[0]
    assert select(db, "Interface") == []


def test_delete_of_strongly_referenced_row_fails_and_rolls_back(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1",)))
    before = select(db, "Port")
    result = db.transact(
        [
            {"op": "update", "table": "Port", "where": [["name", "==", "p1"]], "row": {"tag": 5}},
            {"op": "delete", "table": "Interface", "where": [["name", "==", "p1"]]},
        ]
    )
    assert result[-1]["error"] == "referential integrity violation"
    assert select(db, "Port") == before  # the update before it was rolled back too


def test_dangling_reference_rejected(db: Database) -> None:
    ghost = "5d9c1b4e-0000-4000-8000-000000000001"
    result = db.transact(
        [
            {
                "op": "insert",
                "table": "Port",
                "uuid-name": "p",
                "row": {"name": "p", "interfaces": ["uuid", ghost]},
            },
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [],
                "mutations": [["ports", "insert", ["named-uuid", "p"]]],
            },
        ]
    )
    assert errors(result)[0]["error"] == "referential integrity violation"


def test_index_uniqueness(db: Database) -> None:
    db.transact(add_bridge_ops("br0"))
    result = db.transact(add_bridge_ops("br0"))
    err = errors(result)[0]
    assert err["error"] == "constraint violation"
    assert "identical values" in err["details"] and "name" in err["details"]
    assert len(select(db, "Bridge")) == 1


def test_max_rows(db: Database) -> None:
    result = db.transact([{"op": "insert", "table": "Open_vSwitch", "row": {}}])
    assert errors(result)[0]["error"] == "constraint violation"
    assert len(select(db, "Open_vSwitch")) == 1


def test_type_violations(db: Database) -> None:
    bad_rows = [
        {"name": 5},
        {"name": "x", "tag": "ten"},
        {"name": "x", "tag": 4096},
        {"name": "x", "vlan_mode": "sideways"},
        {"name": "x", "trunks": ["set", [1, True]]},
        {"name": "x", "nonexistent": 1},
    ]
    for row in bad_rows:
        result = db.transact([{"op": "insert", "table": "Port", "row": row}])
        assert result[0]["error"] in ("syntax error", "constraint violation", "unknown column"), row


def test_wait_commit_abort_comment_assert(db: Database) -> None:
    db.transact(add_bridge_ops("br0"))
    where = [["name", "==", "br0"]]
    ok = db.transact(
        [
            {
                "op": "wait",
                "table": "Bridge",
                "where": where,
                "columns": ["name"],
                "until": "==",
                "rows": [{"name": "br0"}],
                "timeout": 0,
            },
            {"op": "comment", "comment": "hello"},
            {"op": "commit", "durable": True},
        ]
    )
    assert ok == [{}, {}, {}]
    timed_out = db.transact(
        [
            {
                "op": "wait",
                "table": "Bridge",
                "where": where,
                "columns": ["name"],
                "until": "!=",
                "rows": [{"name": "br0"}],
                "timeout": 0,
            }
        ]
    )
    assert timed_out[0]["error"] == "timed out"
    with pytest.raises(WaitBlocked):
        db.transact(
            [
                {
                    "op": "wait",
                    "table": "Bridge",
                    "where": where,
                    "columns": ["name"],
                    "until": "!=",
                    "rows": [{"name": "br0"}],
                    "timeout": 1000,
                }
            ]
        )
    aborted = db.transact(
        [
            {"op": "update", "table": "Bridge", "where": where, "row": {"fail_mode": "secure"}},
            {"op": "abort"},
            {"op": "comment", "comment": "never reached"},
        ]
    )
    assert aborted == [{"count": 1}, {"error": "aborted", "details": "aborted by request"}, None]
    assert by_name(db, "Bridge", "br0")["fail_mode"] == ["set", []]
    not_owner = db.transact([{"op": "assert", "lock": "mylock"}])
    assert not_owner[0]["error"] == "not owner"


def test_unknown_operation_table_and_named_uuid(db: Database) -> None:
    assert db.transact([{"op": "frobnicate"}])[0]["error"] == "syntax error"
    assert (
        db.transact([{"op": "select", "table": "Nope", "where": []}])[0]["error"] == "syntax error"
    )
    result = db.transact(
        [
            {
                "op": "insert",
                "table": "Port",
                "row": {"name": "p", "interfaces": ["named-uuid", "never"]},
            }
        ]
    )
    assert errors(result)[0]["error"] == "syntax error"
    dup = db.transact(
        [
            {"op": "insert", "table": "Interface", "uuid-name": "a", "row": {"name": "a"}},
            {"op": "insert", "table": "Interface", "uuid-name": "a", "row": {"name": "b"}},
        ]
    )
    assert dup[1]["error"] == "duplicate uuid-name"


def test_version_changes_only_on_real_change(db: Database) -> None:
    db.transact(add_bridge_ops("br0"))
    v1 = by_name(db, "Bridge", "br0")["_version"]
    db.transact(
        [{"op": "update", "table": "Bridge", "where": [], "row": {"fail_mode": ["set", []]}}]
    )
    assert by_name(db, "Bridge", "br0")["_version"] == v1
    db.transact([{"op": "update", "table": "Bridge", "where": [], "row": {"fail_mode": "secure"}}])
    assert by_name(db, "Bridge", "br0")["_version"] != v1


def test_committed_state_survives_reopen(tmp_path: Path) -> None:
    db = new_db(tmp_path)
    db.transact(add_bridge_ops("br0", ("p1",)))
    db.transact(
        [
            {
                "op": "update",
                "table": "Port",
                "where": [["name", "==", "p1"]],
                "row": {"tag": 42, "statistics": ["map", [["rx_packets", 5]]]},
            }
        ]
    )
    db.close()
    from ovs_runtime.db.database import open_database
    from ovs_runtime.db.schema import load_schema

    again = open_database(load_schema(), str(tmp_path))
    port = by_name(again, "Port", "p1")
    assert port["tag"] == 42
    assert port["statistics"] == ["map", []]  # ephemeral columns are not persisted


def test_mutations_check_the_atoms_they_add(db: Database) -> None:
    """Insert checks the atoms it adds (the ones already there were checked when they
    were written); arithmetic checks every result; delete adds nothing to check."""
    db.transact(add_bridge_ops("br0", ("p1",)))
    where = [["name", "==", "p1"]]

    def mutate(*mutations: list[object]) -> list[dict]:
        return db.transact(
            [{"op": "mutate", "table": "Port", "where": where, "mutations": list(mutations)}]
        )

    assert errors(mutate(["trunks", "insert", ["set", [100, 4000]]])) == []
    refused = errors(mutate(["trunks", "+=", 100]))  # 4000 + 100 is not a VLAN
    assert refused[0]["error"] == "constraint violation"
    assert "4100" in refused[0]["details"]
    refused = errors(mutate(["trunks", "insert", ["set", [5, 4096]]]))
    assert refused[0]["error"] == "constraint violation"
    assert errors(mutate(["trunks", "delete", 4000], ["trunks", "+=", 1])) == []
    assert by_name(db, "Port", "p1")["trunks"] == 101
    txn = TxnView(db.tables)
    n = txn.count("Port")
    for row_uuid in list(db.tables["Port"])[:1]:
        txn.delete("Port", row_uuid)
    txn.insert("Port", uuid.uuid4(), dict(next(iter(db.tables["Port"].values()))))
    txn.insert("Port", uuid.uuid4(), dict(next(iter(db.tables["Port"].values()))))
    assert txn.count("Port") == n + 1 == sum(1 for _ in txn.rows("Port"))


# -- found by a differential run against ovsdb-server on the same schema ---------------


def tx(db: Database, *ops: dict) -> list:
    return db.transact(list(ops))


def mutate(db: Database, table: str, column: str, mutator: str, value: object) -> list:
    return tx(
        db, {"op": "mutate", "table": table, "where": [], "mutations": [[column, mutator, value]]}
    )


def test_set_arithmetic_that_would_merge_elements_is_refused(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1",)))
    tx(
        db,
        {
            "op": "update",
            "table": "Port",
            "where": [["name", "==", "p1"]],
            "row": {"trunks": ["set", [1, 2, 3, 10]]},
        },
    )
    for mutator, operand in (("/=", 2), ("*=", 0), ("%=", 2)):
        result = tx(
            db,
            {
                "op": "mutate",
                "table": "Port",
                "where": [["name", "==", "p1"]],
                "mutations": [["trunks", mutator, operand]],
            },
        )
        assert errors(result)[0]["error"] == "constraint violation", (mutator, result)
    assert by_name(db, "Port", "p1")["trunks"] == ["set", [1, 2, 3, 10]]


def test_numbers_beyond_what_ovsdb_holds_are_refused(db: Database) -> None:
    for row in (
        {"next_cfg": 2**63},
        {"next_cfg": -(2**63) - 1},
        {"next_cfg": True},
    ):
        result = tx(db, {"op": "update", "table": "Open_vSwitch", "where": [], "row": row})
        assert errors(result)[0]["error"] == "syntax error", (row, result)
    result = mutate(db, "Open_vSwitch", "next_cfg", "-=", 2**63 + 1)
    assert errors(result)[0]["error"] == "syntax error"
    tx(db, {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"next_cfg": -(2**63)}})
    assert errors(mutate(db, "Open_vSwitch", "next_cfg", "%=", -1))[0]["error"] == "range error"
    # Integer division is exact, not through a float.
    tx(
        db,
        {
            "op": "update",
            "table": "Open_vSwitch",
            "where": [],
            "row": {"next_cfg": 9007199254740993},
        },
    )
    assert errors(mutate(db, "Open_vSwitch", "next_cfg", "/=", 1)) == []
    assert errors(mutate(db, "Open_vSwitch", "next_cfg", "/=", -3)) == []
    assert (
        select(db, "Open_vSwitch", [])[0]["next_cfg"] == -3002399751580331
    )  # 9007199254740993 // -3, exactly


def test_reals_stay_finite_and_strings_hold_no_nul(db: Database) -> None:
    db.transact(add_bridge_ops("br0"))
    rule = tx(
        db,
        {
            "op": "insert",
            "table": "Flow_Rule",
            "uuid-name": "r",
            "row": {"match": "", "actions": "drop", "created": 2.5},
        },
        {
            "op": "mutate",
            "table": "Bridge",
            "where": [],
            "mutations": [["flow_rules", "insert", ["set", [["named-uuid", "r"]]]]],
        },
    )
    assert errors(rule) == [], rule
    assert errors(mutate(db, "Flow_Rule", "created", "*=", 1e308))[0]["error"] == "range error"
    result = tx(
        db, {"op": "update", "table": "Flow_Rule", "where": [], "row": {"created": float("inf")}}
    )
    assert errors(result)[0]["error"] == "syntax error"
    assert select(db, "Flow_Rule", [])[0]["created"] == 2.5
    for value in ("x\x00y", ["map", [["a\x00", "b"]]]):
        column = "datapath_type" if isinstance(value, str) else "external_ids"
        result = tx(db, {"op": "update", "table": "Bridge", "where": [], "row": {column: value}})
        assert errors(result)[0]["error"] == "syntax error", result


def test_select_of_columns_gives_distinct_rows_and_wait_compares_sets(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1", "p2")))
    rows = tx(db, {"op": "select", "table": "Interface", "where": [], "columns": ["type"]})[0][
        "rows"
    ]
    assert rows == [{"type": ""}]  # three interfaces, one distinct projection
    assert len(select(db, "Interface", [])) == 3
    wait = {
        "op": "wait",
        "table": "Interface",
        "timeout": 0,
        "where": [],
        "columns": ["type"],
        "until": "==",
        "rows": [{"type": ""}],
    }
    assert errors(tx(db, wait)) == []
    assert errors(tx(db, {**wait, "until": "!="}))[0]["error"] == "timed out"


def test_condition_values_have_the_shape_ovsdb_server_wants(db: Database) -> None:
    db.transact(add_bridge_ops("br0", ("p1",)))
    tx(db, {"op": "update", "table": "Port", "where": [["name", "==", "p1"]], "row": {"tag": 5}})
    for where in (
        [["tag", "<", ["set", []]]],  # an ordering needs exactly one number
        [["tag", ">", ["set", [1, 2]]]],
        [["interfaces", "==", ["set", []]]],  # the column needs at least one
    ):
        result = tx(db, {"op": "select", "table": "Port", "where": where})
        assert errors(result)[0]["error"] == "syntax error", (where, result)
    found = tx(
        db, {"op": "select", "table": "Port", "where": [["tag", "<", 10]], "columns": ["name"]}
    )[0]["rows"]
    assert found == [{"name": "p1"}]
    empty = [["trunks", "excludes", ["set", [1, 2, 3]]], ["tag", "includes", ["set", []]]]
    assert len(tx(db, {"op": "select", "table": "Port", "where": empty})[0]["rows"]) == 2
