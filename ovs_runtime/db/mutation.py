"""``mutate`` operations (RFC 7047 section 5.2.4).

Arithmetic mutators (``+= -= *= /= %=``) apply to every element of an integer or real
column (set or scalar); ``insert``/``delete`` add or remove set elements or map pairs.
The result must still satisfy the column's type: ``constraint violation`` otherwise,
``domain error`` for a division by zero, ``range error`` for a 64-bit overflow.
"""

from __future__ import annotations

import copy
import math
import uuid
from dataclasses import dataclass
from typing import Any

import ovs.db.error
import ovs.db.types

from ovs_runtime.db.datum import (
    INT64_MAX,
    INT64_MIN,
    Atom,
    Datum,
    Type,
    column_type,
    datum_from_json,
)
from ovs_runtime.db.errors import OvsdbError, constraint_violation, syntax_error
from ovs_runtime.db.schema import TableSchema

ARITHMETIC = ("+=", "-=", "*=", "/=", "%=")
MUTATORS = (*ARITHMETIC, "insert", "delete")


@dataclass(frozen=True)
class Mutation:
    column: str
    mutator: str
    value: Datum


def _scalar_type(type_: Type) -> Type:
    return Type(copy.copy(type_.key))


def _set_type(type_: Type, keys_only: bool = False) -> Type:
    relaxed = Type(copy.copy(type_.key), None if keys_only else copy.copy(type_.value))
    relaxed.n_min = 0
    relaxed.n_max = 2**31
    return relaxed


def parse_mutation(table: TableSchema, json: Any, symtab: dict[str, uuid.UUID] | None) -> Mutation:
    if not (isinstance(json, list) and len(json) == 3 and isinstance(json[0], str)):
        raise syntax_error(f"mutation must be [column, mutator, value], got {json!r}")
    column, mutator, value = json
    if mutator not in MUTATORS:
        raise syntax_error(f'unknown mutator "{mutator}"; accepted: {", ".join(MUTATORS)}')
    if column in ("_uuid", "_version"):
        raise constraint_violation(f'cannot mutate the implicit column "{column}"')
    type_ = column_type(table, column)
    if not table.columns[column].mutable:
        raise constraint_violation(f'cannot mutate immutable column "{column}" of "{table.name}"')
    what = f'mutation of "{column}"'
    if mutator in ARITHMETIC:
        numeric = (ovs.db.types.IntegerType, ovs.db.types.RealType)
        if type_.is_map() or type_.key.type not in numeric:
            raise syntax_error(f'"{mutator}" needs an integer or real column; "{column}" is not')
        if mutator == "%=" and type_.key.type != ovs.db.types.IntegerType:
            raise syntax_error('"%=" needs an integer column')
        scalar = _scalar_type(type_)
        # The operand is checked only for its type; the result is checked for constraints.
        scalar.key.min = scalar.key.max = None
        scalar.key.enum = None
        return Mutation(column, mutator, datum_from_json(scalar, value, symtab, what))
    if mutator == "delete" and type_.is_map():
        # "delete" on a map takes either a map (pairs) or a set of keys.
        as_set = isinstance(value, list) and len(value) == 2 and value[0] == "set"
        keys_only = as_set or not (isinstance(value, list) and value and value[0] == "map")
        return Mutation(
            column, mutator, datum_from_json(_set_type(type_, keys_only), value, symtab, what)
        )
    return Mutation(column, mutator, datum_from_json(_set_type(type_), value, symtab, what))


def _arith(mutator: str, a: Any, b: Any, is_int: bool) -> Any:
    if mutator == "+=":
        result = a + b
    elif mutator == "-=":
        result = a - b
    elif mutator == "*=":
        result = a * b
    else:
        if b == 0:
            raise OvsdbError("domain error", "division by zero")
        if mutator == "/=" and is_int:
            # C semantics, exactly: truncate toward zero (never through a float, which
            # would lose the low bits of a large integer).
            result = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        elif mutator == "/=":
            result = a / b
        else:
            result = abs(a) % abs(b) * (1 if a >= 0 else -1)  # C's remainder sign
            if a == INT64_MIN and b == -1:  # INT64_MIN % -1 traps in C: OVS refuses it
                raise OvsdbError("range error", f"{a} % {b} overflows 64 bits")
    if is_int and not INT64_MIN <= result <= INT64_MAX:
        raise OvsdbError("range error", f"result {result} does not fit in 64 bits")
    if not is_int and not math.isfinite(result):
        raise OvsdbError("range error", f"result of {a} {mutator} {b} is not a finite real")
    return result


def apply_mutation(table: TableSchema, current: Datum, mutation: Mutation) -> Datum:
    """Return the mutated copy of ``current``; ``current`` itself is left alone."""
    type_: Type = table.columns[mutation.column].type
    values = dict(current.values)
    operand = mutation.value
    new_entries = values  # what the constraints must be checked on: the atoms it adds
    if mutation.mutator in ARITHMETIC:
        b = next(iter(operand.values)).value
        is_int = type_.key.type == ovs.db.types.IntegerType
        mutated: dict[Atom, Any] = {}
        for atom in values:
            new = Atom(type_.key.type, _arith(mutation.mutator, atom.value, b, is_int))
            mutated[new] = None
        if len(mutated) < len(values):  # e.g. {1, 2, 3} /= 2 makes 1 twice
            raise constraint_violation(
                f'mutation of "{mutation.column}": "{mutation.mutator} {b}" gives the same '
                "value for two elements of the set; a set cannot hold duplicates"
            )
        values = new_entries = mutated
    elif mutation.mutator == "insert":
        new_entries = {}
        for key, value in operand.values.items():
            if key not in values:
                values[key] = new_entries[key] = value
    else:  # delete
        new_entries = {}
        for key, value in operand.values.items():
            if key in values and (value is None or not type_.is_map() or values[key] == value):
                del values[key]
    result = Datum(type_, values)
    try:  # (the atoms already there were checked when they were written)
        Datum(type_, new_entries).check_constraints()
    except ovs.db.error.Error as exc:
        raise constraint_violation(f'mutation of "{mutation.column}": {exc}') from exc
    n = len(values)
    if not type_.n_min <= n <= type_.n_max:
        raise constraint_violation(
            f'mutation of "{mutation.column}" leaves {n} elements; '
            f"the column allows {type_.n_min} to {type_.n_max}"
        )
    return result
