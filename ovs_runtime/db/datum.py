"""Typed column values: JSON <-> ``ovs.db.data.Datum``, with RFC 7047 errors.

A row in memory is a ``dict`` from column name to ``Datum``. The two implicit columns
``_uuid`` and ``_version`` are stored the same way, so conditions, ``select`` and monitors
treat them like any other column.
"""

from __future__ import annotations

import bisect
import math
import uuid
from typing import Any

import ovs.db.data
import ovs.db.error
import ovs.db.types
from ovs.db.data import Atom as Atom  # noqa: E402  (re-exported)
from ovs.db.data import Datum as Datum  # noqa: E402
from ovs.db.types import BaseType as BaseType  # noqa: E402
from ovs.db.types import Type as Type  # noqa: E402

from ovs_runtime.db.errors import OvsdbError
from ovs_runtime.db.schema import ColumnSchema, TableSchema

Row = dict[str, Datum]

UUID_TYPE = Type(BaseType(ovs.db.types.UuidType))
IMPLICIT_COLUMNS = ("_uuid", "_version")


def column_type(table: TableSchema, column: str) -> Type:
    if column in IMPLICIT_COLUMNS:
        return UUID_TYPE
    col = table.columns.get(column)
    if col is None:
        raise OvsdbError(
            "unknown column",
            f'table "{table.name}" has no column "{column}"; columns are: '
            + ", ".join(sorted(table.columns)),
        )
    type_: Type = col.type
    return type_


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_NUMERIC = (ovs.db.types.IntegerType, ovs.db.types.RealType)
_WALKED = (*_NUMERIC, ovs.db.types.StringType)


def _check_json_atoms(type_: Type, json: Any) -> None:
    """What ``ovs.db.data`` lets through and OVSDB does not (ovsdb-server refuses all of
    them): JSON true/false as numbers (Python's ``bool`` is an ``int``), integers beyond
    64 bits, reals that are not finite (Python's JSON reads ``NaN`` and ``Infinity``),
    and strings holding NUL."""
    kinds = (type_.key.type, type_.value.type if type_.value is not None else None)
    cls = json.__class__
    if cls is str:
        if "\x00" in json:
            raise OvsdbError("syntax error", f"string {json[:40]!r} contains a NUL character")
        return
    if cls is not list and cls not in (bool, int, float):
        return
    if cls is list and not any(kind in _WALKED for kind in kinds):
        return  # (a set of 100,000 UUIDs is not walked)
    numeric = any(kind in _NUMERIC for kind in kinds)
    stack = [json]
    while stack:
        node = stack.pop()
        node_class = node.__class__
        if node_class is list:
            stack.extend(node)
        elif node_class is bool:
            if numeric:
                raise OvsdbError("syntax error", f"expected a number, got {str(node).lower()}")
        elif node_class is int:
            if not INT64_MIN <= node <= INT64_MAX:
                raise OvsdbError("syntax error", f"integer {node} does not fit in 64 bits")
        elif node_class is float:
            if not math.isfinite(node):
                raise OvsdbError("syntax error", f"real {node} is not a finite number")
        elif node_class is str and "\x00" in node:
            raise OvsdbError("syntax error", f"string {node[:40]!r} contains a NUL character")


# Parsed scalar values by (column type, JSON type, JSON value): a transaction inserting
# 100,000 rows repeats the same few priorities, flags and names, and parsing each again
# through ``ovs.db.data`` dominated its cost. Datums are never changed in place (updates
# and mutations build new ones), so sharing them is safe. Bounded; the type is kept in
# the entry so that a recycled ``id`` can never match another type.
_SCALARS: dict[tuple[int, type, Any], tuple[Type, Datum]] = {}
_SCALARS_MAX = 4096
_SCALAR_JSON = (str, int, float, bool)


def datum_from_json(
    type_: Type, json: Any, symtab: dict[str, uuid.UUID] | None = None, what: str = "value"
) -> Datum:
    """Parse ``json`` as a datum of ``type_``, checking every RFC 7047 constraint."""
    scalar_json = json.__class__ in _SCALAR_JSON
    if scalar_json:
        cached = _SCALARS.get((id(type_), json.__class__, json))
        if cached is not None and cached[0] is type_:
            return cached[1]
    datum = _parse_datum(type_, json, symtab, what)
    if scalar_json:
        if len(_SCALARS) >= _SCALARS_MAX:
            _SCALARS.clear()
        _SCALARS[(id(type_), json.__class__, json)] = (type_, datum)
    return datum


def _parse_datum(type_: Type, json: Any, symtab: dict[str, uuid.UUID] | None, what: str) -> Datum:
    _check_json_atoms(type_, json)
    try:
        datum: Datum = Datum.from_json(type_, json, symtab)
    except ovs.db.data.ConstraintViolation as exc:
        raise OvsdbError("constraint violation", f"{what}: {exc}") from exc
    except ovs.db.error.Error as exc:
        raise OvsdbError("syntax error", f"{what}: {exc} (expected {type_.toEnglish()})") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise OvsdbError("syntax error", f"{what}: malformed {type_.toEnglish()}: {exc}") from exc
    return datum


def scalar(datum: Datum, default: Any = None) -> Any:
    """The value of a 0-or-1 column (``default`` when empty)."""
    if not datum.values:
        return default
    return next(iter(datum.values)).value


def as_list(datum: Datum) -> list[Any]:
    return sorted(atom.value for atom in datum.values)


def members(datum: Datum) -> list[Any]:
    """The values of a set column in no particular order (cheaper than ``as_list`` for
    the 100,000-member sets a bridge's flow rules make)."""
    return [atom.value for atom in datum.values]


def entries_not_in(datum: Datum, other: Datum) -> Datum:
    """The entries of ``datum`` that ``other`` lacks or maps to another value. For a set,
    the difference is taken with the hashes the dictionaries already store, so a
    100,000-member set costs no per-atom Python ``__hash__`` call."""
    values, others = datum.values, other.values
    if values is others or (len(values) == len(others) and values == others):
        return Datum(datum.type, {})  # (an unchanged column of a rewritten row)
    if datum.type.value is None:
        return Datum(datum.type, dict.fromkeys(set(values).difference(others)))
    return Datum(datum.type, {k: v for k, v in values.items() if others.get(k, 0) != v})


def _sort_key(atom: Any) -> Any:
    value = atom.value
    return value.int if isinstance(value, uuid.UUID) else value


def datum_json(datum: Datum) -> Any:
    """``Datum.to_json`` with the same output, sorting by plain values instead of by
    Atom comparisons (which cost seconds on a set of 100,000 UUIDs)."""
    values = datum.values
    if datum.type.is_map():
        items = sorted(values.items(), key=lambda kv: _sort_key(kv[0]))
        return ["map", [[k.to_json(), v.to_json()] for k, v in items]]
    if len(values) == 1:
        return next(iter(values)).to_json()
    if datum.type.key.type is ovs.db.types.UuidType:  # a bridge's flow_rules: 100,000
        return ["set", _uuid_set_json(values)]
    return ["set", [k.to_json() for k in sorted(values, key=_sort_key)]]


# The last large UUID sets printed, newest first: (the set's values, its UUIDs' texts
# in order; the canonical text sorts as the UUID's integer does). Committed sets are
# replaced, not changed in place, so a kept set is what it was when printed; a set a
# few members away from one (one more flow rule) is printed by difference. (The pairs
# themselves are built again each time: about 10 MB less to keep at 100,000 members.)
LARGE_SET = 1024
_printed: list[tuple[dict[Any, Any], list[str]]] = []
KEPT_PRINTS = 2


def stored_json(datum: Datum) -> Any:
    """``datum_json`` for storage: a large UUID set (a bridge's flow_rules) comes as its
    JSON text, built with one join instead of one ``["uuid", text]`` pair per member
    (which the storage would then serialize one by one)."""
    values = datum.values
    if len(values) < LARGE_SET or datum.type.is_map():
        return datum_json(datum)
    if datum.type.key.type is not ovs.db.types.UuidType:
        return datum_json(datum)
    return JsonText('["set",[["uuid","' + '"],["uuid","'.join(_sorted_texts(values)) + '"]]]')


class JsonText(str):
    """A value already serialized as JSON, which the storage writes as it is."""


def _uuid_set_json(values: dict[Any, Any]) -> list[list[str]]:
    """The ``["uuid", text]`` pairs of a set, in UUID order."""
    return [["uuid", text] for text in _sorted_texts(values)]


def _sorted_texts(values: dict[Any, Any]) -> list[str]:
    for kept, texts in _printed:
        if kept is values:
            return texts
    if len(values) < LARGE_SET:
        return sorted(str(atom.value) for atom in values)
    for kept, base in _printed:
        if abs(len(kept) - len(values)) > len(values) // 64:
            continue
        gone, added = set(kept).difference(values), set(values).difference(kept)
        if len(gone) + len(added) > len(values) // 64:
            continue
        texts = list(base)
        for atom in gone:
            del texts[bisect.bisect_left(texts, str(atom.value))]
        for atom in added:
            bisect.insort(texts, str(atom.value))
        break
    else:
        texts = sorted(str(atom.value) for atom in values)
    _printed.insert(0, (values, texts))
    del _printed[KEPT_PRINTS:]
    return texts


def as_map(datum: Datum) -> dict[Any, Any]:
    return {k.value: v.value for k, v in datum.values.items()}


def uuid_datum(value: uuid.UUID) -> Datum:
    return Datum(UUID_TYPE, {Atom(ovs.db.types.UuidType, value): None})


_DEFAULTS: dict[int, tuple[Type, Datum]] = {}  # by id(type), as _SCALARS


def default_datum(type_: Type) -> Datum:
    """The RFC 7047 default of a column: empty if optional, else 0/""/false/zero UUID.

    (``ovs.db.data.Datum.default`` double-wraps its atoms in ovs 3.1, so not used.)
    """
    cached = _DEFAULTS.get(id(type_))
    if cached is not None and cached[0] is type_:
        return cached[1]
    if len(_DEFAULTS) >= _SCALARS_MAX:
        _DEFAULTS.clear()
    datum = _build_default(type_)
    _DEFAULTS[id(type_)] = (type_, datum)
    return datum


def _build_default(type_: Type) -> Datum:
    if type_.n_min == 0:
        return Datum(type_, {})
    key = Atom(type_.key.type, type_.key.type.default)
    value = Atom(type_.value.type, type_.value.type.default) if type_.value else None
    return Datum(type_, {key: value})


def default_row(table: TableSchema) -> Row:
    return {name: default_datum(col.type) for name, col in table.columns.items()}


def row_to_json(row: Row, columns: list[str] | None = None) -> dict[str, Any]:
    """The row's columns as JSON; a column holding one scalar (most of them) is printed
    here without a call per column (``select`` of 100,000 rows prints 800,000)."""
    out: dict[str, Any] = {}
    for name in columns if columns is not None else row:
        datum = row.get(name)
        if datum is None:
            continue
        values = datum.values
        if len(values) == 1 and datum.type.value is None:
            [atom] = values
            out[name] = ["uuid", str(atom.value)] if atom.type == _UUID_ATOM else atom.value
        else:
            out[name] = datum_json(datum)
    return out


_UUID_ATOM = ovs.db.types.UuidType


def referenced_uuids(col: ColumnSchema, datum: Datum, strong: bool) -> list[tuple[str, uuid.UUID]]:
    """The (table, uuid) pairs that ``datum`` references through ``col``."""
    refs: list[tuple[str, uuid.UUID]] = []
    type_ = col.type
    for base, atoms in ((type_.key, datum.values.keys()), (type_.value, datum.values.values())):
        if base is None or base.ref_table_name is None:
            continue
        if base.is_strong_ref() != strong:
            continue
        refs.extend((base.ref_table_name, atom.value) for atom in atoms)
    return refs
