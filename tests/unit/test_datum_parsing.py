"""Parsed scalar datums are shared between rows, without ever changing what a value
means or letting a bad value through (no root)."""

from __future__ import annotations

import json
import random
import sys
import uuid
from pathlib import Path

import ovs.db.types
import pytest

from ovs_runtime.db.datum import (
    Atom,
    BaseType,
    Datum,
    Type,
    datum_from_json,
    datum_json,
    default_datum,
    entries_not_in,
    row_to_json,
    stored_json,
)
from ovs_runtime.db.errors import OvsdbError
from ovs_runtime.db.storage import row_text
from tests.unit.db_helpers import add_bridge_ops, errors, new_db, select


def column_type(json: object) -> ovs.db.types.Type:
    return ovs.db.types.Type.from_json(json)


def test_repeated_scalars_parse_once_and_keep_their_meaning() -> None:
    integer = column_type({"key": {"type": "integer", "minInteger": 0, "maxInteger": 10}})
    boolean = column_type("boolean")
    first = datum_from_json(integer, 5)
    assert datum_from_json(integer, 5) is first  # shared: datums are never changed in place
    assert datum_from_json(boolean, True).to_json() is True
    assert datum_from_json(integer, 1).to_json() == 1  # not the cached boolean true
    with pytest.raises(OvsdbError, match="syntax error|constraint"):
        datum_from_json(integer, True)  # a boolean is not an integer, cached or not
    with pytest.raises(OvsdbError, match="constraint violation"):
        datum_from_json(integer, 11)
    with pytest.raises(OvsdbError, match="constraint violation"):
        datum_from_json(integer, 11)  # refused again: failures are never cached


def test_the_same_value_in_another_column_type_is_checked_for_that_type() -> None:
    short = column_type({"key": {"type": "string", "maxLength": 3}})
    long = column_type({"key": {"type": "string", "maxLength": 10}})
    assert datum_from_json(long, "abcdef").to_json() == "abcdef"
    with pytest.raises(OvsdbError, match="constraint violation"):
        datum_from_json(short, "abcdef")


def test_defaults_are_built_once_per_type() -> None:
    optional = column_type({"key": "string", "min": 0, "max": 1})
    required = column_type("integer")
    assert default_datum(optional) is default_datum(optional)
    assert default_datum(optional).values == {}
    assert default_datum(required).to_json() == 0


def random_uuid_set(size: int) -> Datum:
    """A set of ``size`` random UUIDs (seeded by its size)."""
    rng = random.Random(size)
    type_ = Type(BaseType(ovs.db.types.UuidType), n_min=0, n_max=sys.maxsize)
    atoms = {
        Atom(ovs.db.types.UuidType, uuid.UUID(int=rng.getrandbits(128))): None for _ in range(size)
    }
    return Datum(type_, atoms)


@pytest.mark.parametrize("size", [0, 1, 2, 300])
def test_uuid_sets_print_as_the_ovs_library_prints_them(size: int) -> None:
    datum = random_uuid_set(size)
    assert datum_json(datum) == datum.to_json()


@pytest.mark.parametrize("seed", range(5))
def test_entries_not_in_agrees_with_a_plain_comparison(seed: int) -> None:
    """Sets (by stored hashes) and maps (by value) against a per-entry comparison, with
    atoms shared between the two datums (a copied row) and atoms that are equal but not
    the same objects (a parsed one)."""
    rng = random.Random(seed)
    uuids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(40)]

    def atom(value: uuid.UUID) -> Atom:
        return Atom(ovs.db.types.UuidType, value)

    set_type = Type(BaseType(ovs.db.types.UuidType), n_min=0, n_max=sys.maxsize)
    map_type = Type(
        BaseType(ovs.db.types.StringType), BaseType(ovs.db.types.UuidType), 0, sys.maxsize
    )
    for _ in range(50):
        before = {atom(u): None for u in rng.sample(uuids, rng.randint(0, 30))}
        after = {k: None for k in before if rng.random() < 0.7}
        after.update({atom(u): None for u in rng.sample(uuids, rng.randint(0, 10))})
        for a, b in ((before, after), (after, before)):
            got = entries_not_in(Datum(set_type, a), Datum(set_type, b)).values
            assert set(got) == {k for k in a if k not in b}
            assert all(v is None for v in got.values())
        keys = [Atom(ovs.db.types.StringType, f"k{i}") for i in range(12)]
        old_map = {k: atom(rng.choice(uuids[:4])) for k in rng.sample(keys, 8)}
        new_map = {k: atom(rng.choice(uuids[:4])) for k in rng.sample(keys, 8)}
        got = entries_not_in(Datum(map_type, new_map), Datum(map_type, old_map)).values
        assert got == {k: v for k, v in new_map.items() if old_map.get(k) != v}
    same = Datum(set_type, {atom(uuids[0]): None})
    assert entries_not_in(same, same).values == {}


def test_large_uuid_sets_print_by_difference_as_the_ovs_library_prints_them() -> None:
    """A set a few members away from one printed before is printed from that one's
    text; each step must still print exactly what python-ovs prints."""
    rng = random.Random(7)
    type_ = Type(BaseType(ovs.db.types.UuidType), n_min=0, n_max=sys.maxsize)

    def atom() -> Atom:
        return Atom(ovs.db.types.UuidType, uuid.UUID(int=rng.getrandbits(128)))

    values = {atom(): None for _ in range(3000)}
    first = datum_json(Datum(type_, values))
    assert first == Datum(type_, values).to_json()
    for _step in range(40):
        values = dict(values)
        for gone in rng.sample(list(values), rng.randint(0, 20)):
            del values[gone]
        values.update({atom(): None for _ in range(rng.randint(0, 20))})
        assert datum_json(Datum(type_, values)) == Datum(type_, values).to_json()
    assert first == Datum(type_, {a: None for a in first_atoms(first)}).to_json()


def first_atoms(printed: list) -> list[Atom]:
    return [Atom(ovs.db.types.UuidType, uuid.UUID(text)) for _kind, text in printed[1]]


def test_rows_print_as_the_ovs_library_prints_them(tmp_path: Path) -> None:
    """Every row of a database with bridges, ports, interfaces and flow rules (UUIDs,
    strings, integers, reals, booleans, sets and maps) prints as python-ovs prints it,
    whole and by column list."""
    db = new_db(tmp_path)
    assert errors(db.transact(add_bridge_ops("br0", ("p1", "p2")))) == []
    ops = [
        {
            "op": "update",
            "table": "Port",
            "where": [["name", "==", "p1"]],
            "row": {"tag": 10, "trunks": ["set", [20, 30]], "other_config": ["map", [["a", "b"]]]},
        },
        {
            "op": "update",
            "table": "Interface",
            "where": [["name", "==", "p2"]],
            "row": {"options": ["map", [["peer", "x"], ["key", "5"]]], "mtu_request": 1400},
        },
        {
            "op": "insert",
            "table": "Flow_Rule",
            "uuid-name": "r",
            "row": {"priority": 5, "match": "ip", "actions": "drop", "created": 1.5},
        },
        {
            "op": "mutate",
            "table": "Bridge",
            "where": [["name", "==", "br0"]],
            "mutations": [["flow_rules", "insert", ["named-uuid", "r"]]],
        },
    ]
    assert errors(db.transact(ops)) == []
    checked = 0
    for rows in db.tables.values():
        for row in rows.values():
            want = {name: datum.to_json() for name, datum in row.items()}
            assert row_to_json(row) == want
            some = sorted(row)[::2] + ["no_such_column"]
            assert row_to_json(row, some) == {n: want[n] for n in some if n in want}
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 3000])
def test_stored_uuid_sets_are_the_json_of_the_set(size: int) -> None:
    """Large UUID sets go to storage as pre-built text: the same JSON, whatever its size."""
    datum = random_uuid_set(size)
    row = {
        "flow_rules": stored_json(datum),
        "name": "br0",
        "_version": ["uuid", str(uuid.UUID(int=1))],
    }
    assert json.loads(row_text(row)) == {
        "flow_rules": datum.to_json(),
        "name": "br0",
        "_version": ["uuid", str(uuid.UUID(int=1))],
    }


def test_a_bridge_with_thousands_of_rules_survives_a_restart(tmp_path: Path) -> None:
    from ovs_runtime.db.database import open_database
    from ovs_runtime.db.schema import load_schema

    db = new_db(tmp_path)
    db.transact(add_bridge_ops("br0"))
    inserts = [
        {
            "op": "insert",
            "table": "Flow_Rule",
            "uuid-name": f"r{n}",
            "row": {"priority": n, "match": "ip", "actions": "drop"},
        }
        for n in range(1500)
    ]
    mutate = {
        "op": "mutate",
        "table": "Bridge",
        "where": [["name", "==", "br0"]],
        "mutations": [
            ["flow_rules", "insert", ["set", [["named-uuid", f"r{n}"] for n in range(1500)]]]
        ],
    }
    assert not errors(db.transact([*inserts, mutate]))
    # One rule more and one fewer: the stored text is then built by difference from the
    # one printed before.
    first = select(db, "Bridge", columns=["flow_rules"])[0]["flow_rules"][1][0]
    swap = [
        {"op": "insert", "table": "Flow_Rule", "uuid-name": "extra", "row": {"priority": 9}},
        dict(mutate, mutations=[["flow_rules", "insert", ["named-uuid", "extra"]]]),
        dict(mutate, mutations=[["flow_rules", "delete", first]]),
    ]
    assert not errors(db.transact(swap))
    before = select(db, "Bridge", columns=["flow_rules", "ports"])
    db.close()
    reopened = open_database(load_schema(), str(tmp_path))
    after = select(reopened, "Bridge", columns=["flow_rules", "ports"])
    reopened.close()
    assert after == before and len(after[0]["flow_rules"][1]) == 1500
