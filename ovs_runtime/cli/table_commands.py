"""ovs-vsctl's generic database commands: ``set``, ``get``, ``list``, ``find``, ``clear``,
``add``, ``remove``, ``create`` and ``destroy``, on any table."""

from __future__ import annotations

import json
import re
from typing import Any

import ovs.db.types

from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.bridge_commands import assign, find_record
from ovs_runtime.cli.command_registry import CommandContext, NotYet, command
from ovs_runtime.cli.model import Model, ModelError
from ovs_runtime.cli.table_output import Table

# -- generic database commands ------------------------------------------------------------


@command("set", 3, 1000, "set TABLE RECORD COLUMN[:KEY]=VALUE...", ("if-exists",))
def cmd_set(ctx: CommandContext, args: list[str]) -> None:
    key = find_record(ctx, args[0], args[1])
    if key is None:
        return
    for assignment in args[2:]:
        assign(ctx.model, args[0], key, assignment)


@command(
    "get",
    2,
    1000,
    "[--id=@NAME] get TABLE RECORD [COLUMN[:KEY]]...",
    ("if-exists", "id"),
    writes=False,
)
def cmd_get(ctx: CommandContext, args: list[str]) -> None:
    """With ``--id=@NAME`` the record is also named for the commands after it
    (``-- --id=@p get Port p2 -- --id=@m create Mirror ... output_port=@p``)."""
    m, table = ctx.model, args[0]
    name = ctx.opts.get("id")
    if name is None and len(args) < 3:
        raise ModelError("get: name at least one COLUMN, or give --id=@NAME")
    key = find_record(ctx, table, args[1])
    if key is None:
        return
    if name is not None:
        m.alias(table, name, key)
    for spec in args[2:]:
        column, _, map_key = spec.partition(":")
        if column == "_uuid" and not map_key:
            ctx.emit(key, key)
            continue
        type_ = m.column_type(table, column)
        value = m.rows[table][key][column]
        if map_key:
            k = vs.parse_atom(type_.key, map_key, what=f"{table} column {column}")
            if k not in value:
                if ctx.opts.get("if-exists"):
                    ctx.emit("", None)  # an empty line, as ovs-vsctl prints
                    continue
                raise ModelError(
                    f'no key "{map_key}" in {table} record "{args[1]}" column {column}'
                )
            ctx.emit(vs.format_atom(value[k]), vs.to_plain(value[k]))
        else:
            ctx.emit(vs.format_value(type_, value), vs.to_plain(value))


def _row_columns(ctx: CommandContext, table: str) -> list[str]:
    names = ["_uuid"] + sorted(ctx.model.schema.tables[table].columns)
    wanted = ctx.opts.get("columns")
    if wanted:
        for name in wanted:
            if name != "_uuid":
                ctx.model.column_type(table, name)
        return list(wanted)
    return names


def _print_rows(ctx: CommandContext, table: str, keys: list[str]) -> None:
    """The rows as a table (printed in ovs-vsctl's style by ``table_output``) and as
    records for ``--format json``."""
    m = ctx.model
    columns = _row_columns(ctx, table)
    types = [None if col == "_uuid" else m.column_type(table, col) for col in columns]
    out = Table(columns)
    records: list[dict[str, Any]] = []
    for key in keys:
        row = m.rows[table][key]
        values = [key if col == "_uuid" else row[col] for col in columns]
        out.rows.append(list(zip(types, values, strict=True)))
        records.append({col: vs.to_plain(v) for col, v in zip(columns, values, strict=True)})
    ctx.table = out
    ctx.data.append(records)


@command("list", 1, 1000, "list TABLE [RECORD]...", ("columns", "if-exists"), writes=False)
def cmd_list(ctx: CommandContext, args: list[str]) -> None:
    table = args[0]
    rows = ctx.model.table_rows(table)
    if len(args) > 1:
        keys = [k for k in (find_record(ctx, table, r) for r in args[1:]) if k is not None]
    else:
        keys = sorted(rows, key=lambda k: str(rows[k].get("name", k)))
    _print_rows(ctx, table, keys)


# COLUMN[:KEY]OP VALUE; the operator is the first after the column and key, so an
# operator inside the value is part of the value.
_CONDITION = re.compile(
    r'([A-Za-z_][A-Za-z0-9_]*)(?::("(?:[^"\\]|\\.)*"|[^=!<>{}]*))?'
    r"(\{>=\}|\{<=\}|\{!=\}|\{=\}|\{>\}|\{<\}|!=|<=|>=|=|<|>)(.*)",
    re.S,
)
_UUID_TYPE = vs.Type(vs.BaseType(ovs.db.types.UuidType))


def _find_matches(m: Model, table: str, condition: str, key: str, row: dict[str, Any]) -> bool:
    """ovs-vsctl's ``find`` condition. ``=``/``!=`` compare whole values; ``<``,
    ``>``, ``<=``, ``>=`` compare them as OVSDB orders values (fewer elements first,
    then element by element), so an empty optional column is less than any value; the
    ``{OP}`` forms compare as sets. With ``:KEY``, a row without the key matches only
    a set comparison, as an empty set."""
    match = _CONDITION.fullmatch(condition)
    if match is None:
        raise ModelError(
            f"{condition!r}: expected COLUMN[:KEY]OP VALUE, OP one of "
            "= != < > <= >= {=} {!=} {<} {>} {<=} {>=}"
        )
    column, key_text, op, rhs = match.groups()
    what = f"{table} column {column}"
    set_op = op.startswith("{")
    have: Any
    if column == "_uuid":
        type_, have = _UUID_TYPE, ("uuid", key)
    else:
        type_, have = m.column_type(table, column), row[column]
    if key_text is not None:
        if not type_.is_map():
            raise ModelError(f"{what} is not a map, so {column}:{key_text} cannot name a key")
        quoted = key_text.startswith('"')
        try:
            key_value = json.loads(key_text) if quoted else key_text
        except ValueError:
            raise ModelError(f"{condition!r}: {key_text} is not a valid quoted key") from None
        k = vs.parse_atom(type_.key, key_value, quoted, what)
        if k not in have and not set_op:
            return False
        have = [have[k]] if k in have else []
        if set_op:
            want = vs.parse_value(vs.Type(type_.value, None, 0, 2**31), rhs, what=what)
        else:
            want = [vs.parse_single_atom(type_.value, rhs, what=f"{what}:{key_text}")]
    else:
        relaxed = vs.Type(type_.key, type_.value, 0, 2**31) if set_op else type_
        want = vs.parse_value(relaxed, rhs, what=what)
    h, w = _ordered(have), _ordered(want)
    if set_op:
        hs, ws = set(h), set(w)
        return {
            "{=}": hs == ws,
            "{!=}": hs != ws,
            "{>=}": hs >= ws,
            "{<=}": hs <= ws,
            "{>}": hs > ws,
            "{<}": hs < ws,
        }[op]
    if isinstance(have, dict) or isinstance(want, dict):  # keys first, then values
        order = _compare([k for k, _ in h], [k for k, _ in w]) or _compare(
            [v for _, v in h], [v for _, v in w]
        )
    else:
        order = _compare(h, w)
    return {
        "=": order == 0,
        "!=": order != 0,
        "<": order < 0,
        ">": order > 0,
        "<=": order <= 0,
        ">=": order >= 0,
    }[op]


def _ordered(value: Any) -> list[Any]:
    """A column value as its sorted elements (a map's as (key, value) pairs)."""
    if isinstance(value, dict):
        return sorted(value.items(), key=lambda kv: (vs._sort_key(kv[0]), vs._sort_key(kv[1])))
    atoms = value if isinstance(value, list) else [value]
    return sorted(atoms, key=vs._sort_key)


def _compare(have: list[Any], want: list[Any]) -> int:
    """OVSDB's order of two values: by element count, then element by element."""
    if len(have) != len(want):
        return -1 if len(have) < len(want) else 1
    for a, b in zip(have, want, strict=True):
        ka, kb = vs._sort_key(a), vs._sort_key(b)
        if ka != kb:
            return -1 if ka < kb else 1
    return 0


@command("find", 1, 1000, "find TABLE [COLUMN[:KEY]=VALUE]...", ("columns",), writes=False)
def cmd_find(ctx: CommandContext, args: list[str]) -> None:
    m, table = ctx.model, args[0]
    rows = m.table_rows(table)
    keys = [
        key
        for key, row in sorted(rows.items(), key=lambda kv: str(kv[1].get("name", kv[0])))
        if all(_find_matches(m, table, cond, key, row) for cond in args[1:])
    ]
    _print_rows(ctx, table, keys)


@command("wait-until", 2, 1000, "wait-until TABLE RECORD [COLUMN[:KEY]=VALUE]...", writes=False)
def cmd_wait_until(ctx: CommandContext, args: list[str]) -> None:
    """Wait until RECORD exists and every condition holds (``find``'s operators)."""
    m, table = ctx.model, args[0]
    key = m.lookup(table, args[1], must_exist=False)
    if key is None or not all(
        _find_matches(m, table, cond, key, m.rows[table][key]) for cond in args[2:]
    ):
        raise NotYet(f"{table} {args[1]} {' '.join(args[2:])}".strip())


@command("clear", 3, 1000, "clear TABLE RECORD COLUMN...", ("if-exists",))
def cmd_clear(ctx: CommandContext, args: list[str]) -> None:
    m, table = ctx.model, args[0]
    key = find_record(ctx, table, args[1])
    if key is None:
        return
    for column in args[2:]:
        type_ = m.column_type(table, column)
        if type_.n_min > 0:
            raise ModelError(f"{table} column {column} cannot be cleared: it must hold a value")
        m.set(table, key, column, vs.default_value(type_))


def _column_of_record(ctx: CommandContext, args: list[str]) -> tuple[str, vs.Type, Any] | None:
    """For ``add``/``remove``: (record key, column type, current value), or None when
    ``--if-exists`` lets a missing record pass."""
    table, column = args[0], args[2]
    key = find_record(ctx, table, args[1])
    if key is None:
        return None
    return key, ctx.model.column_type(table, column), ctx.model.rows[table][key][column]


@command("add", 4, 1000, "add TABLE RECORD COLUMN VALUE...", ("if-exists",))
def cmd_add(ctx: CommandContext, args: list[str]) -> None:
    m, table, column = ctx.model, args[0], args[2]
    target = _column_of_record(ctx, args)
    if target is None:
        return
    key, type_, current = target
    what = f"{table} column {column}"
    relaxed = vs.Type(type_.key, type_.value, 0, 2**31)
    for text in args[3:]:
        added = vs.parse_value(relaxed, text, what=what)
        if type_.is_map():
            current = {**added, **current}  # like ovs-vsctl: existing keys win
        elif vs.is_scalar(type_):
            current = added[0] if added else current
        else:
            current = sorted(set(current) | set(added), key=vs._sort_key)
    if not vs.is_scalar(type_) and not type_.is_map() and len(current) > type_.n_max:
        raise ModelError(f"{what} may hold at most {type_.n_max} values")
    m.set(table, key, column, current)


@command("remove", 4, 1000, "remove TABLE RECORD COLUMN VALUE...", ("if-exists",))
def cmd_remove(ctx: CommandContext, args: list[str]) -> None:
    m, table, column = ctx.model, args[0], args[2]
    target = _column_of_record(ctx, args)
    if target is None:
        return
    key, type_, current = target
    what = f"{table} column {column}"
    for text in args[3:]:
        if type_.is_map():
            current = dict(current)
            if "=" in text and not text.startswith("{"):
                k_text, v_text = text.split("=", 1)
                k = vs.parse_atom(type_.key, k_text, what=what)
                v = vs.parse_atom(type_.value, v_text, what=what)
                if current.get(k) == v:
                    del current[k]
            elif text.startswith("{"):
                for k, v in vs.parse_value(type_, text, what=what).items():
                    if current.get(k) == v:
                        del current[k]
            else:
                current.pop(vs.parse_atom(type_.key, text, what=what), None)
        else:
            relaxed = vs.Type(type_.key, None, 0, 2**31)
            gone = set(vs.parse_value(relaxed, text, what=what))
            values = current if isinstance(current, list) else [current]
            current = [v for v in values if v not in gone]
    if not type_.is_map() and len(current) < type_.n_min:
        raise ModelError(f"{what} must keep at least {type_.n_min} value(s)")
    if vs.is_scalar(type_):
        current = current[0]
    m.set(table, key, column, current)


@command("create", 1, 1000, "[--id=@NAME] create TABLE COLUMN[:KEY]=VALUE...", ("id",))
def cmd_create(ctx: CommandContext, args: list[str]) -> None:
    m, table = ctx.model, args[0]
    m.table_rows(table)
    name = ctx.opts.get("id")
    key = m.insert(table, {}, name=vs.symbol(name) if name else None)
    for assignment in args[1:]:
        assign(m, table, key, assignment)
    ctx.emit(f"@{key}", key)  # the new row's UUID, once the transaction has given it one


@command("destroy", 1, 1000, "destroy TABLE RECORD...", ("if-exists", "all"))
def cmd_destroy(ctx: CommandContext, args: list[str]) -> None:
    m, table = ctx.model, args[0]
    keys = (
        list(m.table_rows(table))
        if ctx.opts.get("all")
        else [k for k in (find_record(ctx, table, r) for r in args[1:]) if k is not None]
    )
    for key in keys:
        m.delete(table, key)
