"""The ovs-vsctl commands, each a function over the client-side ``Model``.

Every command takes ``(ctx, args)``; ``ctx.opts`` holds its own options (``--may-exist``,
``--if-exists``, ``--columns=``, ``--id=@name``). Output goes to ``ctx.out`` (text lines)
and ``ctx.data`` (the same content for ``--format json``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.model import Model, ModelError


@dataclass
class CommandContext:
    model: Model
    opts: dict[str, Any] = field(default_factory=dict)
    out: list[str] = field(default_factory=list)
    data: list[Any] = field(default_factory=list)

    def emit(self, text: str, data: Any) -> None:
        self.out.append(text)
        self.data.append(data)


@dataclass(frozen=True)
class Command:
    func: Callable[[CommandContext, list[str]], None]
    min_args: int
    max_args: int
    usage: str
    options: frozenset[str] = frozenset()
    writes: bool = True


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    min_args: int,
    max_args: int,
    usage: str,
    options: tuple[str, ...] = (),
    writes: bool = True,
) -> Callable[[Callable[[CommandContext, list[str]], None]], Any]:
    def register(func: Callable[[CommandContext, list[str]], None]) -> Any:
        COMMANDS[name] = Command(func, min_args, max_args, usage, frozenset(options), writes)
        return func

    return register


# -- helpers ------------------------------------------------------------------------------


def _bridge(m: Model, name: str, must_exist: bool = True) -> str | None:
    key = m.lookup("Bridge", name, must_exist=False)
    if key is None and must_exist:
        raise ModelError(f"no bridge named {name}")
    return key


def _port(m: Model, name: str, must_exist: bool = True) -> str | None:
    key = m.lookup("Port", name, must_exist=False)
    if key is None and must_exist:
        raise ModelError(f"no port named {name}")
    return key


def _bridge_of_port(m: Model, port_key: str) -> str | None:
    for bkey, row in m.rows["Bridge"].items():
        if any(m.key_of(ref) == port_key for ref in row["ports"]):
            return bkey
    return None


def _remove_ref(m: Model, table: str, key: str, column: str, target: str) -> None:
    row = m.rows[table][key]
    m.set(table, key, column, [ref for ref in row[column] if m.key_of(ref) != target])


def _add_ref(m: Model, table: str, key: str, column: str, target_table: str, target: str) -> None:
    row = m.rows[table][key]
    refs = [ref for ref in row[column] if m.key_of(ref) != target]
    refs.append(m.ref(target_table, target))
    m.set(table, key, column, sorted(refs))


def _delete_port(m: Model, port_key: str) -> None:
    bridge = _bridge_of_port(m, port_key)
    if bridge is not None:
        _remove_ref(m, "Bridge", bridge, "ports", port_key)
    for iface in m.rows["Port"][port_key]["interfaces"]:
        m.delete("Interface", m.key_of(iface))
    m.delete("Port", port_key)


def _bridge_name(m: Model, key: str) -> str:
    return str(m.rows["Bridge"][key]["name"])


def _port_names(m: Model, bridge_key: str) -> list[str]:
    names = [
        str(m.rows["Port"][m.key_of(ref)]["name"])
        for ref in m.rows["Bridge"][bridge_key]["ports"]
        if m.key_of(ref) in m.rows["Port"]
    ]
    return sorted(names)


def _parse_assignment(m: Model, table: str, text: str) -> tuple[str, Any, Any]:
    """``COLUMN[:KEY]=VALUE`` -> (column, key or None, parsed value)."""
    if "=" not in text:
        raise ModelError(f"{text!r}: expected COLUMN[:KEY]=VALUE")
    lhs, rhs = text.split("=", 1)
    column, _, key = lhs.partition(":")
    type_ = m.column_type(table, column)
    what = f"{table} column {column}"
    if key:
        if not type_.is_map():
            raise ModelError(f"{what} is not a map, so {lhs!r} cannot name a key")
        k = vs.parse_atom(type_.key, key, what=what)
        tokens = vs._Tokens(rhs)
        word, quoted = tokens.word()
        if not tokens.at_end():
            raise ModelError(f"{what}:{key}: unexpected text in {rhs!r}")
        return column, k, vs.parse_atom(type_.value, word, quoted, what=what)
    return column, None, vs.parse_value(type_, rhs, what=what)


def _assign(m: Model, table: str, key: str, text: str) -> None:
    column, map_key, value = _parse_assignment(m, table, text)
    if map_key is not None:
        current = dict(m.rows[table][key][column])
        current[map_key] = value
        value = current
    m.set(table, key, column, value)


def _record(ctx: CommandContext, table: str, record: str) -> str | None:
    key = ctx.model.lookup(table, record, must_exist=not ctx.opts.get("if-exists"))
    return key


# -- Open_vSwitch and bridges ---------------------------------------------------------


@command("init", 0, 0, "init")
def cmd_init(ctx: CommandContext, args: list[str]) -> None:
    ctx.model.root()


@command("add-br", 1, 1, "add-br BRIDGE", ("may-exist",))
def cmd_add_br(ctx: CommandContext, args: list[str]) -> None:
    m, name = ctx.model, args[0]
    if _bridge(m, name, must_exist=False) is not None:
        if ctx.opts.get("may-exist"):
            return
        raise ModelError(
            f"cannot create a bridge named {name} because a bridge named {name} "
            "already exists (use --may-exist to ignore)"
        )
    if _port(m, name, must_exist=False) is not None:
        raise ModelError(f"cannot create a bridge named {name}: a port with that name exists")
    iface = m.insert("Interface", {"name": name, "type": "internal"})
    port = m.insert("Port", {"name": name, "interfaces": [m.ref("Interface", iface)]})
    bridge = m.insert("Bridge", {"name": name, "ports": [m.ref("Port", port)]})
    root = m.root()
    _add_ref(m, "Open_vSwitch", root, "bridges", "Bridge", bridge)


@command("del-br", 1, 1, "del-br BRIDGE", ("if-exists",))
def cmd_del_br(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    bridge = _bridge(m, args[0], must_exist=not ctx.opts.get("if-exists"))
    if bridge is None:
        return
    for ref in list(m.rows["Bridge"][bridge]["ports"]):
        if m.key_of(ref) in m.rows["Port"]:
            _delete_port(m, m.key_of(ref))
    for root in m.rows["Open_vSwitch"]:
        _remove_ref(m, "Open_vSwitch", root, "bridges", bridge)
    m.delete("Bridge", bridge)


@command("list-br", 0, 0, "list-br", writes=False)
def cmd_list_br(ctx: CommandContext, args: list[str]) -> None:
    names = sorted(str(row["name"]) for row in ctx.model.rows["Bridge"].values())
    ctx.out.extend(names)
    ctx.data.append(names)


@command("br-exists", 1, 1, "br-exists BRIDGE", writes=False)
def cmd_br_exists(ctx: CommandContext, args: list[str]) -> None:
    if _bridge(ctx.model, args[0], must_exist=False) is None:
        raise ExitStatus(2)


@command("set-fail-mode", 2, 2, "set-fail-mode BRIDGE standalone|secure")
def cmd_set_fail_mode(ctx: CommandContext, args: list[str]) -> None:
    if args[1] not in ("standalone", "secure"):
        raise ModelError(f"fail mode must be standalone or secure, not {args[1]!r}")
    bridge = _bridge(ctx.model, args[0])
    assert bridge is not None
    ctx.model.set("Bridge", bridge, "fail_mode", [args[1]])


@command("get-fail-mode", 1, 1, "get-fail-mode BRIDGE", writes=False)
def cmd_get_fail_mode(ctx: CommandContext, args: list[str]) -> None:
    bridge = _bridge(ctx.model, args[0])
    assert bridge is not None
    mode = ctx.model.rows["Bridge"][bridge]["fail_mode"]
    if mode:
        ctx.emit(mode[0], mode[0])


@command("del-fail-mode", 1, 1, "del-fail-mode BRIDGE")
def cmd_del_fail_mode(ctx: CommandContext, args: list[str]) -> None:
    bridge = _bridge(ctx.model, args[0])
    assert bridge is not None
    ctx.model.set("Bridge", bridge, "fail_mode", [])


@command("br-set-external-id", 2, 3, "br-set-external-id BRIDGE KEY [VALUE]")
def cmd_br_set_external_id(ctx: CommandContext, args: list[str]) -> None:
    bridge = _bridge(ctx.model, args[0])
    assert bridge is not None
    ids = dict(ctx.model.rows["Bridge"][bridge]["external_ids"])
    if len(args) == 3:
        ids[args[1]] = args[2]
    else:
        ids.pop(args[1], None)
    ctx.model.set("Bridge", bridge, "external_ids", ids)


@command("br-get-external-id", 1, 2, "br-get-external-id BRIDGE [KEY]", writes=False)
def cmd_br_get_external_id(ctx: CommandContext, args: list[str]) -> None:
    bridge = _bridge(ctx.model, args[0])
    assert bridge is not None
    ids = ctx.model.rows["Bridge"][bridge]["external_ids"]
    if len(args) == 2:
        if args[1] in ids:
            ctx.emit(ids[args[1]], ids[args[1]])
    else:
        for k, v in sorted(ids.items()):
            ctx.emit(f"{k}={v}", {k: v})


# -- ports and interfaces -----------------------------------------------------------------


@command("add-port", 2, 1000, "add-port BRIDGE PORT [COLUMN[:KEY]=VALUE]...", ("may-exist",))
def cmd_add_port(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    bridge_name, name, settings = args[0], args[1], args[2:]
    bridge = _bridge(m, bridge_name)
    assert bridge is not None
    existing = _port(m, name, must_exist=False)
    if existing is not None:
        owner = _bridge_of_port(m, existing)
        if ctx.opts.get("may-exist"):
            if owner != bridge:
                where = _bridge_name(m, owner) if owner else "no bridge"
                raise ModelError(
                    f"--may-exist add-port {bridge_name} {name}: port {name} "
                    f"already exists on {where}"
                )
            return
        raise ModelError(
            f"cannot create a port named {name} because a port named {name} "
            "already exists (use --may-exist to ignore)"
        )
    if m.lookup("Interface", name, must_exist=False) is not None:
        raise ModelError(f"cannot create a port named {name}: an interface of that name exists")
    iface = m.insert("Interface", {"name": name})
    port = m.insert("Port", {"name": name, "interfaces": [m.ref("Interface", iface)]})
    _add_ref(m, "Bridge", bridge, "ports", "Port", port)
    for setting in settings:
        column = setting.split("=", 1)[0].split(":", 1)[0]
        if column in m.schema.tables["Port"].columns and column != "name":
            _assign(m, "Port", port, setting)
        elif column in m.schema.tables["Interface"].columns:
            _assign(m, "Interface", iface, setting)
        else:
            raise ModelError(f"{setting!r}: neither Port nor Interface has column {column!r}")


@command("del-port", 1, 2, "del-port [BRIDGE] PORT", ("if-exists",))
def cmd_del_port(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    name = args[-1]
    port = _port(m, name, must_exist=False)
    if port is None:
        if ctx.opts.get("if-exists"):
            return
        raise ModelError(f"no port named {name}")
    if len(args) == 2:
        bridge = _bridge(m, args[0])
        if _bridge_of_port(m, port) != bridge:
            raise ModelError(f"bridge {args[0]} does not have a port {name}")
    _delete_port(m, port)


@command("list-ports", 1, 1, "list-ports BRIDGE", writes=False)
def cmd_list_ports(ctx: CommandContext, args: list[str]) -> None:
    bridge = _bridge(ctx.model, args[0])
    assert bridge is not None
    names = [n for n in _port_names(ctx.model, bridge) if n != args[0]]
    ctx.out.extend(names)
    ctx.data.append(names)


@command("list-ifaces", 1, 1, "list-ifaces BRIDGE", writes=False)
def cmd_list_ifaces(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    bridge = _bridge(m, args[0])
    assert bridge is not None
    names = []
    for ref in m.rows["Bridge"][bridge]["ports"]:
        for iface in m.rows["Port"][m.key_of(ref)]["interfaces"]:
            names.append(str(m.rows["Interface"][m.key_of(iface)]["name"]))
    names = sorted(n for n in names if n != args[0])
    ctx.out.extend(names)
    ctx.data.append(names)


@command("port-to-br", 1, 1, "port-to-br PORT", writes=False)
def cmd_port_to_br(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    port = _port(m, args[0])
    assert port is not None
    bridge = _bridge_of_port(m, port)
    if bridge is None:
        raise ModelError(f"no port named {args[0]}")
    ctx.emit(_bridge_name(m, bridge), _bridge_name(m, bridge))


@command("iface-to-br", 1, 1, "iface-to-br IFACE", writes=False)
def cmd_iface_to_br(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    iface = m.lookup("Interface", args[0], must_exist=False)
    if iface is None:
        raise ModelError(f"no interface named {args[0]}")
    for pkey, prow in m.rows["Port"].items():
        if any(m.key_of(r) == iface for r in prow["interfaces"]):
            bridge = _bridge_of_port(m, pkey)
            if bridge is not None:
                ctx.emit(_bridge_name(m, bridge), _bridge_name(m, bridge))
                return
    raise ModelError(f"no interface named {args[0]}")


# -- generic database commands ------------------------------------------------------------


@command("set", 3, 1000, "set TABLE RECORD COLUMN[:KEY]=VALUE...", ("if-exists",))
def cmd_set(ctx: CommandContext, args: list[str]) -> None:
    key = _record(ctx, args[0], args[1])
    if key is None:
        return
    for assignment in args[2:]:
        _assign(ctx.model, args[0], key, assignment)


@command("get", 3, 1000, "get TABLE RECORD COLUMN[:KEY]...", ("if-exists", "id"), writes=False)
def cmd_get(ctx: CommandContext, args: list[str]) -> None:
    m, table = ctx.model, args[0]
    key = _record(ctx, table, args[1])
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
        keys = [k for k in (_record(ctx, table, r) for r in args[1:]) if k is not None]
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
    key = _record(ctx, table, args[1])
    if key is None:
        return
    for column in args[2:]:
        type_ = m.column_type(table, column)
        if type_.n_min > 0:
            raise ModelError(f"{table} column {column} cannot be cleared: it must hold a value")
        m.set(table, key, column, vs.default_value(type_))


@command("add", 4, 1000, "add TABLE RECORD COLUMN VALUE...", ("if-exists",))
def cmd_add(ctx: CommandContext, args: list[str]) -> None:
    m, table, column = ctx.model, args[0], args[2]
    key = _record(ctx, table, args[1])
    if key is None:
        return
    type_ = m.column_type(table, column)
    current = m.rows[table][key][column]
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
    key = _record(ctx, table, args[1])
    if key is None:
        return
    type_ = m.column_type(table, column)
    current = m.rows[table][key][column]
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
        _assign(m, table, key, assignment)
    if not name:
        ctx.emit(f"@{key}", key)


@command("destroy", 1, 1000, "destroy TABLE RECORD...", ("if-exists", "all"))
def cmd_destroy(ctx: CommandContext, args: list[str]) -> None:
    m, table = ctx.model, args[0]
    keys = (
        list(m.table_rows(table))
        if ctx.opts.get("all")
        else [k for k in (_record(ctx, table, r) for r in args[1:]) if k is not None]
    )
    for key in keys:
        m.delete(table, key)


class ExitStatus(Exception):
    """A command's answer is its exit status (``br-exists``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
