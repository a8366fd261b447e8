"""``where`` clauses (RFC 7047 section 5.1, "Notation": <condition>).

A condition is ``[column, function, value]``. ``==``/``!=`` work on any column;
``<``/``<=``/``>``/``>=`` on integer or real columns (an empty optional value never
compares true); ``includes``/``excludes`` test subset relations on sets and maps.
``monitor_cond`` also allows the bare booleans ``true`` and ``false``.
"""

from __future__ import annotations

import copy
import operator
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ovs.db.types

from ovs_runtime.db.datum import Datum, Row, Type, column_type, datum_from_json
from ovs_runtime.db.errors import OvsdbError, syntax_error
from ovs_runtime.db.schema import TableSchema

ORDERING = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
FUNCTIONS = ("==", "!=", "includes", "excludes", *ORDERING)


@dataclass(frozen=True)
class Clause:
    column: str
    function: str
    value: Datum | bool  # bool only for the literal true/false clauses of monitor_cond

    def matches(self, row: Row) -> bool:
        if isinstance(self.value, bool):
            return self.value
        have = row[self.column]
        want = self.value
        if self.function == "==":
            return have.values == want.values
        if self.function == "!=":
            return have.values != want.values
        if self.function == "includes":
            return _includes(have, want)
        if self.function == "excludes":
            return _excludes(have, want)
        if not have.values:
            return False
        compare: Callable[[Any, Any], bool] = ORDERING[self.function]
        a = next(iter(have.values)).value
        b = next(iter(want.values)).value
        return compare(a, b)


def _includes(have: Datum, want: Datum) -> bool:
    if have.type.is_map():
        return all(k in have.values and have.values[k] == v for k, v in want.values.items())
    return all(k in have.values for k in want.values)


def _excludes(have: Datum, want: Datum) -> bool:
    if have.type.is_map():
        return all(not (k in have.values and have.values[k] == v) for k, v in want.values.items())
    return all(k not in have.values for k in want.values)


def _relaxed(type_: Type, function: str) -> Type:
    """The type a condition's value is parsed as, as ovsdb-server has it: the column's
    own for ``==``/``!=``; exactly one number for the orderings; for a column that is
    not a scalar, ``includes`` takes fewer elements than the column needs and
    ``excludes`` any number."""
    relaxed = copy.copy(type_)
    scalar = type_.n_min == 1 and type_.n_max == 1
    if function in ORDERING:
        relaxed.n_min = relaxed.n_max = 1
    elif function == "includes" and not scalar:
        relaxed.n_min = 0
    elif function == "excludes" and not scalar:
        relaxed.n_min = 0
        relaxed.n_max = max(type_.n_max, 2**31)
    return relaxed


def parse_clause(table: TableSchema, json: Any, symtab: dict[str, uuid.UUID] | None) -> Clause:
    if isinstance(json, bool):
        return Clause("", "==", json)
    if not (isinstance(json, list) and len(json) == 3 and isinstance(json[0], str)):
        raise syntax_error(f"condition must be [column, function, value], got {json!r}")
    column, function, value = json
    if function not in FUNCTIONS:
        raise syntax_error(
            f'unknown condition function "{function}"; accepted: {", ".join(FUNCTIONS)}'
        )
    type_ = column_type(table, column)
    if function in ORDERING:
        if type_.n_max != 1 or type_.key.type not in (
            ovs.db.types.IntegerType,
            ovs.db.types.RealType,
        ):
            raise OvsdbError(
                "syntax error",
                f'"{function}" applies only to integer or real columns, not "{column}"',
            )
    datum = datum_from_json(_relaxed(type_, function), value, symtab, f'condition on "{column}"')
    return Clause(column, function, datum)


def parse_where(
    table: TableSchema, json: Any, symtab: dict[str, uuid.UUID] | None = None
) -> list[Clause]:
    if not isinstance(json, list):
        raise syntax_error(f'"where" must be an array of conditions, got {json!r}')
    return [parse_clause(table, clause, symtab) for clause in json]


def matches_all(clauses: list[Clause], row: Row) -> bool:
    return all(clause.matches(row) for clause in clauses)


def select_rows(
    clauses: list[Clause], rows: Iterable[tuple[uuid.UUID, Row]]
) -> list[tuple[uuid.UUID, Row]]:
    """The rows every clause matches, in their given order. Equality clauses go first,
    string ones before the rest (usually the most selective: ``add-flow`` looks for one
    rule's match among 100,000), each as one filtering pass."""
    equal: list[tuple[bool, str, Datum]] = []
    rest: list[Clause] = []
    for clause in clauses:
        if clause.function == "==" and isinstance(clause.value, Datum):
            not_string = clause.value.type.key.type is not ovs.db.types.StringType
            equal.append((not_string, clause.column, clause.value))
        else:
            rest.append(clause)
    equal.sort(key=lambda entry: entry[0])
    selected: Iterable[tuple[uuid.UUID, Row]] = rows
    for _not_string, column, wanted in equal:
        values = wanted.values
        selected = [(u, r) for u, r in selected if r[column].values == values]
        if not selected:
            return selected
    if rest:
        selected = [(u, r) for u, r in selected if matches_all(rest, r)]
    return selected if isinstance(selected, list) else list(selected)


def uuid_lookup(clauses: list[Clause]) -> uuid.UUID | None:
    """The row UUID a where clause pins down with ``_uuid == X``, for a direct lookup."""
    for clause in clauses:
        if clause.column == "_uuid" and clause.function == "==" and isinstance(clause.value, Datum):
            values = clause.value.values
            if len(values) == 1:
                found: uuid.UUID = next(iter(values)).value
                return found
    return None
