"""ovs-vsctl's bridge and port commands: ``add-br``, ``add-port``, ``set-fail-mode``...

They work on the client-side ``Model``; ``apply`` reuses the helpers here.
"""

from __future__ import annotations

from typing import Any

from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.command_registry import CommandContext, ExitStatus, command
from ovs_runtime.cli.model import Model, ModelError

# -- helpers ------------------------------------------------------------------------------


def bridge_key(m: Model, name: str, must_exist: bool = True) -> str | None:
    key = m.lookup("Bridge", name, must_exist=False)
    if key is None and must_exist:
        raise ModelError(f"no bridge named {name}")
    return key


def port_key(m: Model, name: str, must_exist: bool = True) -> str | None:
    key = m.lookup("Port", name, must_exist=False)
    if key is None and must_exist:
        raise ModelError(f"no port named {name}")
    return key


def bridge_of_port(m: Model, port_key: str) -> str | None:
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


def delete_port(m: Model, port_key: str) -> None:
    bridge = bridge_of_port(m, port_key)
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


def parse_assignment(m: Model, table: str, text: str) -> tuple[str, Any, Any]:
    """``COLUMN[:KEY]=VALUE`` -> (column, key or None, parsed value)."""
    column, key, rhs = vs.split_assignment(text)
    type_ = m.column_type(table, column)
    what = f"{table} column {column}"
    if key is not None:
        key_text, key_quoted = key
        if not type_.is_map():
            raise ModelError(f"{what} is not a map, so {column}:{key_text} cannot name a key")
        k = vs.parse_atom(type_.key, key_text, key_quoted, what=what)
        return column, k, vs.parse_single_atom(type_.value, rhs, what=f"{what}:{key_text}")
    return column, None, vs.parse_value(type_, rhs, what=what)


def assign(m: Model, table: str, key: str, text: str) -> None:
    column, map_key, value = parse_assignment(m, table, text)
    if map_key is not None:
        current = dict(m.rows[table][key][column])
        current[map_key] = value
        value = current
    m.set(table, key, column, value)


def find_record(ctx: CommandContext, table: str, record: str) -> str | None:
    key = ctx.model.lookup(table, record, must_exist=not ctx.opts.get("if-exists"))
    return key


# -- Open_vSwitch and bridges ---------------------------------------------------------


@command("init", 0, 0, "init")
def cmd_init(ctx: CommandContext, args: list[str]) -> None:
    ctx.model.root()


@command("add-br", 1, 3, "add-br BRIDGE [PARENT VLAN]", ("may-exist",))
def cmd_add_br(ctx: CommandContext, args: list[str]) -> None:
    m, name = ctx.model, args[0]
    if len(args) == 2:
        raise ModelError("'add-br' takes exactly 1 or 3 arguments")
    if len(args) == 3:
        parent, vlan = args[1], args[2]
        raise ModelError(
            f"cannot create {name} as a fake bridge of {parent} on VLAN {vlan}: ovs-runtime "
            "has no fake bridges; add an internal port with that tag to the parent instead "
            f"(add-port {parent} {name} tag={vlan} -- set Interface {name} type=internal)"
        )
    if bridge_key(m, name, must_exist=False) is not None:
        if ctx.opts.get("may-exist"):
            return
        raise ModelError(
            f"cannot create a bridge named {name} because a bridge named {name} "
            "already exists (use --may-exist to ignore)"
        )
    if port_key(m, name, must_exist=False) is not None:
        raise ModelError(f"cannot create a bridge named {name}: a port with that name exists")
    iface = m.insert("Interface", {"name": name, "type": "internal"})
    port = m.insert("Port", {"name": name, "interfaces": [m.ref("Interface", iface)]})
    bridge = m.insert("Bridge", {"name": name, "ports": [m.ref("Port", port)]})
    root = m.root()
    _add_ref(m, "Open_vSwitch", root, "bridges", "Bridge", bridge)


@command("del-br", 1, 1, "del-br BRIDGE", ("if-exists",))
def cmd_del_br(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    bridge = bridge_key(m, args[0], must_exist=not ctx.opts.get("if-exists"))
    if bridge is None:
        return
    for ref in list(m.rows["Bridge"][bridge]["ports"]):
        if m.key_of(ref) in m.rows["Port"]:
            delete_port(m, m.key_of(ref))
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
    if bridge_key(ctx.model, args[0], must_exist=False) is None:
        raise ExitStatus(2)


@command("br-to-vlan", 1, 1, "br-to-vlan BRIDGE", writes=False)
def cmd_br_to_vlan(ctx: CommandContext, args: list[str]) -> None:
    """A real bridge's VLAN is 0, as ovs-vsctl prints (there are no fake bridges)."""
    bridge_key(ctx.model, args[0])
    ctx.emit("0", 0)


@command("br-to-parent", 1, 1, "br-to-parent BRIDGE", writes=False)
def cmd_br_to_parent(ctx: CommandContext, args: list[str]) -> None:
    """A real bridge is its own parent, as ovs-vsctl prints."""
    key = bridge_key(ctx.model, args[0])
    assert key is not None
    name = _bridge_name(ctx.model, key)
    ctx.emit(name, name)


@command("comment", 0, 1000, "comment [ARG]...", writes=False)
def cmd_comment(ctx: CommandContext, args: list[str]) -> None:
    """Does nothing itself. When the command line changes the database, the whole line,
    this command's words included, is the transaction's comment, which the daemon logs."""


@command("set-fail-mode", 2, 2, "set-fail-mode BRIDGE standalone|secure")
def cmd_set_fail_mode(ctx: CommandContext, args: list[str]) -> None:
    if args[1] not in ("standalone", "secure"):
        raise ModelError(f"fail mode must be standalone or secure, not {args[1]!r}")
    bridge = bridge_key(ctx.model, args[0])
    assert bridge is not None
    ctx.model.set("Bridge", bridge, "fail_mode", [args[1]])


@command("get-fail-mode", 1, 1, "get-fail-mode BRIDGE", writes=False)
def cmd_get_fail_mode(ctx: CommandContext, args: list[str]) -> None:
    bridge = bridge_key(ctx.model, args[0])
    assert bridge is not None
    mode = ctx.model.rows["Bridge"][bridge]["fail_mode"]
    if mode:
        ctx.emit(mode[0], mode[0])


@command("del-fail-mode", 1, 1, "del-fail-mode BRIDGE")
def cmd_del_fail_mode(ctx: CommandContext, args: list[str]) -> None:
    bridge = bridge_key(ctx.model, args[0])
    assert bridge is not None
    ctx.model.set("Bridge", bridge, "fail_mode", [])


# What emer-reset clears, as ovs-vsctl's does (``cmd_emer_reset`` in OVS's vsctl.c; OVS
# also deletes Flow_Sample_Collector_Set rows, a table this schema does not have).
EMER_RESET_CLEARED = {
    "Open_vSwitch": ("manager_options", "ssl"),
    "Bridge": ("controller", "fail_mode", "mirrors", "netflow", "sflow", "ipfix", "flood_vlans"),
    "Port": ("other_config",),
    "Interface": ("ingress_policing_rate", "ingress_policing_burst"),
}


@command("emer-reset", 0, 0, "emer-reset")
def cmd_emer_reset(ctx: CommandContext, args: list[str]) -> None:
    """Back to a clean state, as ovs-vsctl's: no managers, controllers, SSL, mirrors,
    NetFlow, sFlow, IPFIX, fail_mode, flood_vlans or ingress policing; ports lose their
    other_config and bridges all of theirs but ``hwaddr``. Bridges, ports, VLANs,
    tunnels, QoS and flow rules stay."""
    m = ctx.model
    m.root()
    for table, columns in EMER_RESET_CLEARED.items():
        for key, row in m.table_rows(table).items():
            for column in columns:
                empty = vs.default_value(m.column_type(table, column))
                if row[column] != empty:
                    m.set(table, key, column, empty)
    for key, row in m.table_rows("Bridge").items():
        hwaddr = {k: v for k, v in row["other_config"].items() if k == "hwaddr"}
        if row["other_config"] != hwaddr:
            m.set("Bridge", key, "other_config", hwaddr)


@command("br-set-external-id", 2, 3, "br-set-external-id BRIDGE KEY [VALUE]")
def cmd_br_set_external_id(ctx: CommandContext, args: list[str]) -> None:
    bridge = bridge_key(ctx.model, args[0])
    assert bridge is not None
    ids = dict(ctx.model.rows["Bridge"][bridge]["external_ids"])
    if len(args) == 3:
        ids[args[1]] = args[2]
    else:
        ids.pop(args[1], None)
    ctx.model.set("Bridge", bridge, "external_ids", ids)


@command("br-get-external-id", 1, 2, "br-get-external-id BRIDGE [KEY]", writes=False)
def cmd_br_get_external_id(ctx: CommandContext, args: list[str]) -> None:
    bridge = bridge_key(ctx.model, args[0])
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
    bridge = bridge_key(m, bridge_name)
    assert bridge is not None
    existing = port_key(m, name, must_exist=False)
    if existing is not None:
        owner = bridge_of_port(m, existing)
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
            assign(m, "Port", port, setting)
        elif column in m.schema.tables["Interface"].columns:
            assign(m, "Interface", iface, setting)
        else:
            raise ModelError(f"{setting!r}: neither Port nor Interface has column {column!r}")


@command(
    "add-bond",
    3,
    1000,
    "add-bond BRIDGE PORT IFACE... [COLUMN[:KEY]=VALUE]...",
    ("may-exist", "fake-iface"),
)
def cmd_add_bond(ctx: CommandContext, args: list[str]) -> None:
    """A port with several interfaces, as ovs-vsctl's: the arguments after PORT are
    interface names until the first that contains ``=``."""
    m = ctx.model
    bridge_name, name = args[0], args[1]
    ifaces = [a for a in args[2:] if "=" not in a]
    settings = args[2 + len(ifaces) :]
    if any("=" not in s for s in settings):
        raise ModelError(
            f"add-bond {bridge_name} {name}: interface names must come before settings"
        )
    if len(ifaces) < 2:
        raise ModelError(
            f"add-bond {bridge_name} {name}: a bond needs at least two interfaces "
            f"(got {len(ifaces)}); for one, use add-port"
        )
    if len(set(ifaces)) != len(ifaces):
        raise ModelError(f"add-bond {bridge_name} {name}: an interface is named twice")
    if ctx.opts.get("fake-iface"):
        raise ModelError("add-bond --fake-iface: fake bond interfaces are not implemented")
    bridge = bridge_key(m, bridge_name)
    assert bridge is not None
    existing = port_key(m, name, must_exist=False)
    if existing is not None:
        if ctx.opts.get("may-exist") and bridge_of_port(m, existing) == bridge:
            have = sorted(
                str(m.rows["Interface"][m.key_of(r)]["name"])
                for r in m.rows["Port"][existing]["interfaces"]
            )
            if have != sorted(ifaces):
                raise ModelError(
                    f"--may-exist add-bond {bridge_name} {name}: port {name} already exists "
                    f"but has interfaces {', '.join(have)}, not {', '.join(sorted(ifaces))}"
                )
            return
        raise ModelError(
            f"cannot create a port named {name} because a port named {name} already exists"
        )
    for iface_name in ifaces:
        if m.lookup("Interface", iface_name, must_exist=False) is not None:
            raise ModelError(f"cannot create an interface named {iface_name}: one already exists")
    refs = [m.ref("Interface", m.insert("Interface", {"name": i})) for i in ifaces]
    port = m.insert("Port", {"name": name, "interfaces": refs})
    _add_ref(m, "Bridge", bridge, "ports", "Port", port)
    for setting in settings:
        column = setting.split("=", 1)[0].split(":", 1)[0]
        if column in m.schema.tables["Port"].columns and column != "name":
            assign(m, "Port", port, setting)
        else:
            raise ModelError(f"{setting!r}: Port has no column {column!r}")


@command("del-port", 1, 2, "del-port [BRIDGE] PORT", ("if-exists",))
def cmd_del_port(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    name = args[-1]
    port = port_key(m, name, must_exist=False)
    if port is None:
        if ctx.opts.get("if-exists"):
            return
        raise ModelError(f"no port named {name}")
    if len(args) == 2:
        bridge = bridge_key(m, args[0])
        if bridge_of_port(m, port) != bridge:
            raise ModelError(f"bridge {args[0]} does not have a port {name}")
    owner = bridge_of_port(m, port)
    if owner is not None and m.rows["Bridge"][owner]["name"] == name:
        raise ModelError(
            f"cannot delete port {name} because it is the local port for bridge {name} "
            f"(deleting this port requires deleting the entire bridge: del-br {name})"
        )
    delete_port(m, port)


@command("list-ports", 1, 1, "list-ports BRIDGE", writes=False)
def cmd_list_ports(ctx: CommandContext, args: list[str]) -> None:
    bridge = bridge_key(ctx.model, args[0])
    assert bridge is not None
    names = [n for n in _port_names(ctx.model, bridge) if n != args[0]]
    ctx.out.extend(names)
    ctx.data.append(names)


@command("list-ifaces", 1, 1, "list-ifaces BRIDGE", writes=False)
def cmd_list_ifaces(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    bridge = bridge_key(m, args[0])
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
    port = port_key(m, args[0])
    assert port is not None
    bridge = bridge_of_port(m, port)
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
            bridge = bridge_of_port(m, pkey)
            if bridge is not None:
                ctx.emit(_bridge_name(m, bridge), _bridge_name(m, bridge))
                return
    raise ModelError(f"no interface named {args[0]}")
