"""ovs-vsctl's generic database commands: ``set``, ``get``, ``list``, ``find``, ``clear``,
``add``, ``remove``, ``create`` and ``destroy``, on any table."""

from __future__ import annotations

from typing import Any

from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.bridge_commands import assign, find_record
from ovs_runtime.cli.command_registry import CommandContext, command
from ovs_runtime.cli.model import Model, ModelError

# -- generic database commands ------------------------------------------------------------


@command("set", 3, 1000, "set TABLE RECORD COLUMN[:KEY]=VALUE...", ("if-exists",))
def cmd_set(ctx: CommandContext, args: list[str]) -> None:
    key = find_record(ctx, args[0], args[1])
    if key is None:
        return
    for assignment in args[2:]:
        assign(ctx.model, args[0], key, assignment)


@command("get", 3, 1000, "get TABLE RECORD COLUMN[:KEY]...", ("if-exists", "id"), writes=False)
def cmd_get(ctx: CommandContext, args: list[str]) -> None:
    m, table = ctx.model, args[0]
    key = find_record(ctx, table, args[1])
    if key is None:
        return
    for spec in args[2:]:
        column, _, map_key = spec.partition(":")
        type_ = m.column_type(table, column)
        value = m.rows[table][key][column]
        if map_key:
            k = vs.parse_atom(type_.key, map_key, what=f"{table} column {column}")
            if k not in value:
                if ctx.opts.get("if-exists"):
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
    m = ctx.model
    columns = _row_columns(ctx, table)
    width = max(len(c) for c in columns)
    records: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        if i:
            ctx.out.append("")
        record: dict[str, Any] = {}
        for col in columns:
            if col == "_uuid":
                text, plain = key, key
            else:
                type_ = m.column_type(table, col)
                value = m.rows[table][key][col]
                text, plain = vs.format_value(type_, value), vs.to_plain(value)
            ctx.out.append(f"{col:<{width}} : {text}")
            record[col] = plain
        records.append(record)
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


FIND_OPERATORS = ("{>=}", "{<=}", "{!=}", "{=}", "{>}", "{<}", "!=", "<=", ">=", "=", "<", ">")


def _find_matches(m: Model, table: str, condition: str, row: dict[str, Any]) -> bool:
    for op in FIND_OPERATORS:
        if op in condition:
            lhs, rhs = condition.split(op, 1)
            break
    else:
        raise ModelError(f"{condition!r}: expected COLUMN[:KEY]{{=|!=|<|>|<=|>=}}VALUE")
    column, _, map_key = lhs.partition(":")
    type_ = m.column_type(table, column)
    have = row[column]
    what = f"{table} column {column}"
    if map_key:
        k = vs.parse_atom(type_.key, map_key, what=what)
        if k not in have:
            return op == "!="
        tokens = vs._Tokens(rhs)
        word, quoted = tokens.word()
        have, want = have[k], vs.parse_atom(type_.value, word, quoted, what=what)
        as_set = False
    else:
        want = vs.parse_value(type_, rhs, what=what)
        as_set = True
    if op.startswith("{"):
        h = (
            set(have.items())
            if isinstance(have, dict)
            else set(have if isinstance(have, list) else [have])
        )
        w = (
            set(want.items())
            if isinstance(want, dict)
            else set(want if isinstance(want, list) else [want])
        )
        return {
            "{=}": h == w,
            "{!=}": h != w,
            "{>=}": h >= w,
            "{<=}": h <= w,
            "{>}": h > w,
            "{<}": h < w,
        }[op]
    if (
        as_set
        and isinstance(have, list)
        and isinstance(want, list)
        and op in ("<", ">", "<=", ">=")
    ):
        if len(have) != 1 or len(want) != 1:
            return False
        have, want = have[0], want[0]
    if op == "=":
        return bool(have == want)
    if op == "!=":
        return bool(have != want)
    try:
        return bool(
            {"<": have < want, ">": have > want, "<=": have <= want, ">=": have >= want}[op]
        )
    except TypeError:
        return False


@command("find", 1, 1000, "find TABLE [COLUMN[:KEY]=VALUE]...", ("columns",), writes=False)
def cmd_find(ctx: CommandContext, args: list[str]) -> None:
    m, table = ctx.model, args[0]
    rows = m.table_rows(table)
    keys = [
        key
        for key, row in sorted(rows.items(), key=lambda kv: str(kv[1].get("name", kv[0])))
        if all(_find_matches(m, table, cond, row) for cond in args[1:])
    ]
    _print_rows(ctx, table, keys)


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
    key = m.insert(table, {}, name=("row_" + name[1:]) if name else None)
    for assignment in args[1:]:
        assign(m, table, key, assignment)
    if not name:
        ctx.emit(f"@{key}", key)


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
