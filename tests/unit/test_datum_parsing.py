"""Parsed scalar datums are shared between rows, without ever changing what a value
means or letting a bad value through (no root)."""

from __future__ import annotations

import random
import sys
import uuid

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
)
from ovs_runtime.db.errors import OvsdbError


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


@pytest.mark.parametrize("size", [0, 1, 2, 300])
def test_uuid_sets_print_as_the_ovs_library_prints_them(size: int) -> None:
    rng = random.Random(size)
    type_ = Type(BaseType(ovs.db.types.UuidType), n_min=0, n_max=sys.maxsize)
    atoms = {
        Atom(ovs.db.types.UuidType, uuid.UUID(int=rng.getrandbits(128))): None for _ in range(size)
    }
    datum = Datum(type_, atoms)
    assert datum_json(datum) == datum.to_json()
