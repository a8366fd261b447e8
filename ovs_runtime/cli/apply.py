"""``ovsr apply FILE``: declarative desired state, diffed and applied in one transaction.

The file (YAML or JSON) names bridges and their ports::

    bridges:
      br0:
        fail_mode: standalone
        other_config: {mac-aging-time: 300}
        ports:
          vm1: {tag: 10}
          uplink: {trunks: [10, 20], vlan_mode: trunk}
          patch-a: {type: patch, options: {peer: patch-b}}

(``bridges`` and ``ports`` may also be lists of objects with a ``name``.) Values are
normalised by the column's type before comparing, so ``tag: "10"`` equals ``tag: 10``
and ``trunks: [20, 10]`` equals ``[10, 20]``.

``--state`` says how far the file reaches, as Ansible resource modules do:

- ``merged`` (default): create what is missing, set what is given, touch nothing else;
- ``replaced``: the listed bridges become exactly as described (unlisted ports removed,
  unset managed columns reset);
- ``overridden``: ``replaced`` for the whole switch: unlisted bridges are removed too;
- ``deleted``: remove the listed bridges, or only the listed ports of a bridge.

``--check`` shows the difference without applying it. Exit status: 0 no change,
2 changed (or would change, with ``--check``), 1 error.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ovs_runtime.bridge import mirror_config
from ovs_runtime.bridge.qos_config import QosConfigError, parse_qos
from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.apply_bonds import (
    BOND_COLUMNS,
    BondSettingError,
    bond_state,
    check_bond_columns,
    parse_members,
    set_members,
)
from ovs_runtime.cli.bridge_commands import (
    _add_ref,
    _remove_ref,
    bridge_key,
    bridge_of_port,
    cmd_add_br,
    cmd_add_port,
    cmd_del_br,
    delete_port,
    port_key,
)
from ovs_runtime.cli.command_registry import CommandContext, command
from ovs_runtime.cli.model import Model
from ovs_runtime.db.schema import DbSchema, load_schema
from ovs_runtime.ofproto.port_security import PortSecurityError, parse_port_security

STATES = ("merged", "replaced", "overridden", "deleted")
BRIDGE_COLUMNS = (
    "fail_mode",
    "datapath_type",
    "protocols",
    "flood_vlans",
    "other_config",
    "external_ids",
)
PORT_COLUMNS = (
    "tag",
    "trunks",
    "vlan_mode",
    "protected",
    "port_security",
    "other_config",
    "external_ids",
)
IFACE_SHORTCUTS = ("type", "options", "ofport_request", "mtu_request", "mac")
IFACE_COLUMNS = (
    "type",
    "options",
    "ofport_request",
    "mtu_request",
    "mac",
    "external_ids",
    "other_config",
    "ingress_policing_rate",
    "ingress_policing_burst",
)
PORT_EXTRAS = ("qos", "interface", "interfaces")  # a port's settings that are not Port columns
LOCAL_IFACE_COLUMNS = tuple(c for c in IFACE_COLUMNS if c != "type")
MIRROR_KEYS = (*mirror_config.SETTINGS, "external_ids")
MIRROR_PORT_KEYS = mirror_config.PORT_SETTINGS
EXIT_CHANGED = 2


class ApplyError(Exception):
    """The desired-state file is not acceptable; nothing was changed."""


# -- reading and normalising the file -----------------------------------------------------


def _atom(base: vs.BaseType, value: Any, what: str) -> Any:
    kind = base.type
    if isinstance(value, (dict, list)) or value is None:
        raise ApplyError(f"{what}: expected a single {kind.to_string()}, got {value!r}")
    if kind == vs.StringType:
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        atom: Any = text
    elif kind == vs.IntegerType:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ApplyError(f"{what}: expected an integer, got {value!r}")
        try:
            atom = int(value)
        except ValueError:
            raise ApplyError(f"{what}: expected an integer, got {value!r}") from None
    elif kind == vs.RealType:
        try:
            atom = float(value)
        except (TypeError, ValueError):
            raise ApplyError(f"{what}: expected a number, got {value!r}") from None
    elif kind == vs.BooleanType:
        if not isinstance(value, bool):
            raise ApplyError(f"{what}: expected true or false, got {value!r}")
        atom = value
    else:
        raise ApplyError(f"{what}: UUID columns cannot be set from a desired-state file")
    try:
        vs._check_constraints(base, atom, what)
    except vs.ValueError_ as exc:
        raise ApplyError(str(exc)) from None
    return atom


def normalise(type_: vs.Type, value: Any, what: str) -> Any:
    """A value from YAML/JSON, in the CLI's plain form for a column of ``type_``."""
    if type_.is_map():
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ApplyError(f"{what}: expected a mapping, got {value!r}")
        return {
            _atom(type_.key, k, what): _atom(type_.value, v, f"{what}.{k}")
            for k, v in value.items()
        }
    items = [] if value is None else value if isinstance(value, list) else [value]
    atoms = sorted({_atom(type_.key, v, what) for v in items}, key=vs._sort_key)
    if not type_.n_min <= len(atoms) <= type_.n_max:
        raise ApplyError(
            f"{what}: {len(atoms)} value(s) given; {type_.n_min} to {type_.n_max} accepted"
        )
    return atoms[0] if vs.is_scalar(type_) else atoms


def _named(section: Any, what: str) -> dict[str, Any]:
    if section is None:
        return {}
    if isinstance(section, dict):
        for name, body in section.items():
            if body is not None and not isinstance(body, dict):
                raise ApplyError(f"{what} {name}: expected a mapping of settings, got {body!r}")
        return {str(name): dict(body or {}) for name, body in section.items()}
    if isinstance(section, list):
        out: dict[str, Any] = {}
        for item in section:
            if not isinstance(item, dict) or not isinstance(item.get("name"), (str, int)):
                raise ApplyError(f"each entry of {what}s needs a 'name', got {item!r}")
            body = dict(item)
            name = str(body.pop("name"))
            if name in out:
                raise ApplyError(f"{what} {name} is listed twice")
            out[name] = body
        return out
    raise ApplyError(f"{what}s: expected a mapping or a list, got {section!r}")


def _columns(
    schema: DbSchema,
    table: str,
    body: dict[str, Any],
    allowed: tuple[str, ...],
    what: str,
    extras: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``extras``: settings read before this (to be listed among the accepted ones)."""
    out = {}
    for key, value in body.items():
        if key not in allowed:
            accepted = ", ".join((*allowed, *extras))
            raise ApplyError(f"{what}: unknown setting {key!r}; accepted: {accepted}")
        out[key] = normalise(schema.tables[table].columns[key].type, value, f"{what}.{key}")
    return out


def _mirror(schema: DbSchema, body: dict[str, Any], what: str) -> dict[str, Any]:
    """A mirror: its plain columns normalised, port references kept as port names."""
    unknown = sorted(set(body) - set(MIRROR_KEYS))
    if unknown:
        raise ApplyError(
            f"{what}: unknown setting(s) {', '.join(unknown)}; accepted: {', '.join(MIRROR_KEYS)}"
        )
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in MIRROR_PORT_KEYS:
            names = value if isinstance(value, list) else [value]
            if not all(isinstance(n, str) and n for n in names) or (
                key == "output_port" and len(names) != 1
            ):
                expected = "a port name" if key == "output_port" else "a list of port names"
                raise ApplyError(f"{what}.{key}: expected {expected}, got {value!r}")
            out[key] = sorted(set(names))
        else:
            out[key] = normalise(schema.tables["Mirror"].columns[key].type, value, f"{what}.{key}")
    if bool(out.get("output_port")) == bool(out.get("output_vlan")):
        raise ApplyError(f"{what}: give exactly one of output_port (SPAN) or output_vlan (RSPAN)")
    return out


def _qos(schema: DbSchema, body: Any, what: str) -> dict[str, Any] | None:
    """A port's QoS: {type, other_config, queues: {id: {other_config}}}, checked as the
    daemon will check it; None (or an empty mapping) means no QoS."""
    if not body:
        return None
    if not isinstance(body, dict):
        raise ApplyError(f"{what}: expected a mapping with type, other_config and queues")
    unknown = sorted(set(body) - {"type", "other_config", "queues"})
    if unknown:
        raise ApplyError(
            f"{what}: unknown setting(s) {', '.join(unknown)}; accepted: type, other_config, queues"
        )
    config_type = schema.tables["QoS"].columns["other_config"].type
    queues_in = body.get("queues") or {}
    if not isinstance(queues_in, dict):
        raise ApplyError(f"{what}.queues: expected a mapping of queue number to settings")
    queues = {}
    for qid, qbody in queues_in.items():
        try:
            number = int(qid)
        except (TypeError, ValueError):
            raise ApplyError(f"{what}.queues: {qid!r} is not a queue number") from None
        qbody = qbody or {}
        if not isinstance(qbody, dict) or set(qbody) - {"other_config"}:
            raise ApplyError(f"{what}.queues.{qid}: expected {{other_config: {{...}}}}")
        queues[number] = normalise(config_type, qbody.get("other_config"), f"{what}.queues.{qid}")
    spec = {
        "type": str(body.get("type", "linux-htb")),
        "other_config": normalise(config_type, body.get("other_config"), f"{what}.other_config"),
        "queues": dict(sorted(queues.items())),
    }
    try:
        parse_qos(spec["type"], spec["other_config"], spec["queues"], what)
    except QosConfigError as exc:
        raise ApplyError(str(exc)) from None
    return spec


def parse_desired(doc: Any, schema: DbSchema) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ApplyError("the desired state must be a mapping with a 'bridges' key")
    unknown = set(doc) - {"bridges"}
    if unknown:
        raise ApplyError(
            f"unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; accepted: bridges"
        )
    bridges: dict[str, Any] = {}
    declared = _named(doc.get("bridges"), "bridge")
    owners: dict[str, str] = {}  # port name -> the bridge it is listed under
    interface_owners: dict[str, str] = {}  # a bond member -> the port it is listed under
    for bname, body in declared.items():
        _check_device_name(bname, f"bridge {bname!r}")
        ports_given = "ports" in body
        ports_section = body.pop("ports", None)
        mirrors_section = body.pop("mirrors", None)
        bridge: dict[str, Any] = {
            "columns": _columns(schema, "Bridge", body, BRIDGE_COLUMNS, f"bridge {bname}"),
            "ports": {},
            "mirrors": {
                name: _mirror(schema, mbody, f"bridge {bname} mirror {name}")
                for name, mbody in _named(mirrors_section, f"bridge {bname} mirror").items()
            },
            "ports_given": ports_given,
        }
        for pname, pbody in _named(ports_section, f"bridge {bname} port").items():
            what = f"bridge {bname} port {pname}"
            if pname in owners:
                raise ApplyError(
                    f"port {pname} is listed under bridges {owners[pname]} and {bname}; "
                    "a port belongs to one bridge"
                )
            if pname != bname and pname in declared:
                raise ApplyError(f"{what}: {pname} is a bridge (with its own port), not a port")
            owners[pname] = bname
            try:
                members = parse_members(pname, bname, pbody, what)
            except BondSettingError as exc:
                raise ApplyError(str(exc)) from None
            iface_body = pbody.pop("interface", None) or {}
            if not isinstance(iface_body, dict):
                raise ApplyError(f"{what}.interface: expected a mapping")
            for key in IFACE_SHORTCUTS:
                if key in pbody:
                    if key in iface_body:
                        raise ApplyError(f"{what}: {key} given twice (also under interface)")
                    iface_body[key] = pbody.pop(key)
            qos = _qos(schema, pbody.pop("qos", None), f"{what}.qos") if "qos" in pbody else None
            _check_port_security(pbody.get("port_security"), what)
            _check_interface(pname, bname, iface_body, what)
            allowed = PORT_COLUMNS + IFACE_SHORTCUTS + BOND_COLUMNS
            columns = _columns(schema, "Port", pbody, allowed, what, PORT_EXTRAS)
            for member in members or ():
                _check_device_name(member, f"{what}.interfaces: {member!r}")
                if member in interface_owners:
                    raise ApplyError(
                        f"{what}.interfaces: {member} is also listed under "
                        f"{interface_owners[member]}; an interface belongs to one port"
                    )
                interface_owners[member] = what
            if members or any(c in columns for c in BOND_COLUMNS):
                try:
                    check_bond_columns(columns, what)
                except BondSettingError as exc:
                    raise ApplyError(str(exc)) from None
            bridge["ports"][pname] = {
                "qos": qos,
                "columns": columns,
                "interface": _columns(
                    schema, "Interface", iface_body, IFACE_COLUMNS, f"{what}.interface"
                ),
                "members": members,
            }
        bridges[bname] = bridge
    return bridges


# Interface types this switch has (``datapath/netdev_factory.py``), and those whose name is
# a kernel device's, so at most 15 characters (IFNAMSIZ) as Linux allows.
INTERFACE_TYPES = ("", "system", "internal", "tap", "patch", "vxlan", "geneve")
DEVICE_TYPES = ("", "system", "internal", "tap")
MAX_DEVICE_NAME = 15
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _check_device_name(name: str, what: str, device: bool = True) -> None:
    """A name Linux accepts for a network device (``dev_valid_name``): not empty, not
    "." or "..", no "/", ":" or white space, at most 15 characters."""
    if name in ("", ".", "..") or any(c in name for c in "/:") or any(c.isspace() for c in name):
        raise ApplyError(
            f"{what}: not a valid name; a name is 1 to {MAX_DEVICE_NAME} characters without "
            '"/", ":" or white space'
        )
    if device and len(name) > MAX_DEVICE_NAME:
        raise ApplyError(
            f"{what}: {name!r} has {len(name)} characters; a network device name has at most "
            f"{MAX_DEVICE_NAME}"
        )


def _check_interface(pname: str, bname: str, iface: dict[str, Any], what: str) -> None:
    kind = iface.get("type", "")
    if not isinstance(kind, str) or kind not in INTERFACE_TYPES:
        raise ApplyError(
            f"{what}.type: {kind!r} is not an interface type here; accepted: "
            + ", ".join(repr(t) for t in INTERFACE_TYPES)
        )
    if pname == bname and kind not in ("", "internal"):
        raise ApplyError(f"{what}: the bridge's own port is of type internal, not {kind!r}")
    _check_device_name(pname, what, device=kind in DEVICE_TYPES)
    mac = iface.get("mac")
    if mac and not (isinstance(mac, str) and _MAC.match(mac)):
        raise ApplyError(f"{what}.mac: {mac!r} is not a MAC address (like 02:00:00:00:00:01)")


def _check_port_security(entries: Any, what: str) -> None:
    if entries is None:
        return
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ApplyError(f"{what}.port_security: expected a list of 'MAC [IP ...]' strings")
    try:
        parse_port_security(entries, what)
    except PortSecurityError as exc:
        raise ApplyError(str(exc)) from None


def load_request(inv: Any) -> dict[str, Any]:
    if "_desired" in inv.opts:
        return dict(inv.opts["_desired"])
    state = inv.opts.get("state", "merged")
    if state not in STATES:
        raise ApplyError(f"--state={state}: expected one of {', '.join(STATES)}")
    path = inv.args[0]
    try:
        with open(path, encoding="utf-8") if path != "-" else _stdin() as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise ApplyError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ApplyError(
            f"{path}{where}: not valid YAML/JSON: {getattr(exc, 'problem', None) or exc}"
        ) from None
    try:
        desired = parse_desired(doc, load_schema())
    except ApplyError as exc:
        raise ApplyError(f"{path}: {exc}") from None
    inv.opts["_desired"] = desired
    inv.opts["state"] = state
    return desired


def _stdin() -> Any:
    import sys

    return sys.stdin


# -- current state, in the same shape -----------------------------------------------------


def current_state(m: Model, names: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _bkey, b in sorted(m.rows["Bridge"].items(), key=lambda kv: str(kv[1]["name"])):
        name = str(b["name"])
        if names is not None and name not in names:
            continue
        bridge: dict[str, Any] = {c: vs.to_plain(b[c]) for c in BRIDGE_COLUMNS}
        ports = {}
        for pref in b["ports"]:
            p = m.rows["Port"].get(m.key_of(pref))
            if p is None or (p["name"] == name and not _local_port_configured(m, p)):
                continue  # (the bridge's own port shows only once it has settings)
            port = {c: vs.to_plain(p[c]) for c in PORT_COLUMNS}
            if p["qos"] and m.key_of(p["qos"][0]) in m.rows["QoS"]:
                qrow = m.rows["QoS"][m.key_of(p["qos"][0])]
                port["qos"] = {
                    "type": qrow["type"],
                    "other_config": dict(qrow["other_config"]),
                    "queues": {
                        qid: dict(m.rows["Queue"][m.key_of(ref)]["other_config"])
                        for qid, ref in sorted(qrow["queues"].items())
                        if m.key_of(ref) in m.rows["Queue"]
                    },
                }
            if len(p["interfaces"]) > 1:
                port.update(bond_state(m, p))
            elif p["interfaces"]:
                i = m.rows["Interface"][m.key_of(p["interfaces"][0])]
                port["interface"] = {c: vs.to_plain(i[c]) for c in IFACE_COLUMNS}
            ports[str(p["name"])] = port
        bridge["ports"] = dict(sorted(ports.items()))
        port_names = {
            m.key_of(ref): str(m.rows["Port"][m.key_of(ref)]["name"])
            for ref in b["ports"]
            if m.key_of(ref) in m.rows["Port"]
        }
        mirrors = {}
        for mref in b["mirrors"]:
            row = m.rows["Mirror"].get(m.key_of(mref))
            if row is None:
                continue
            mirrors[str(row["name"])] = {
                # (a port deleted by this change is a weak reference the daemon drops)
                c: sorted(port_names[m.key_of(r)] for r in row[c] if m.key_of(r) in port_names)
                if c in MIRROR_PORT_KEYS
                else vs.to_plain(row[c])
                for c in MIRROR_KEYS
            }
        if mirrors:
            bridge["mirrors"] = dict(sorted(mirrors.items()))
        out[name] = bridge
    return out


def _local_port_configured(m: Model, port: dict[str, Any]) -> bool:
    """Whether a bridge's own port has settings beyond what add-br gives it."""
    if any(port[c] != vs.default_value(m.column_type("Port", c)) for c in PORT_COLUMNS):
        return True
    if port["qos"] or not port["interfaces"]:
        return bool(port["qos"])
    iface = m.rows["Interface"].get(m.key_of(port["interfaces"][0]))
    return iface is not None and any(
        iface[c] != vs.default_value(m.column_type("Interface", c)) for c in LOCAL_IFACE_COLUMNS
    )


# -- applying -------------------------------------------------------------------------


def _set_columns(
    m: Model, table: str, key: str, wanted: dict[str, Any], managed: tuple[str, ...], replace: bool
) -> None:
    """Set the managed columns. ``merged`` (not ``replace``) touches only what is given:
    a map column gets the given keys and keeps the others (``external_ids`` that other
    tools set, such as OpenStack's ``iface-id``, survive)."""
    for column in managed:
        if column in wanted:
            value = wanted[column]
            current = m.rows[table][key][column]
            if not replace and isinstance(value, dict) and isinstance(current, dict):
                value = {**current, **value}
        elif replace:
            value = vs.default_value(m.column_type(table, column))
        else:
            continue
        if m.rows[table][key][column] != value:
            m.set(table, key, column, value)


def _apply_bridge(ctx: CommandContext, name: str, spec: dict[str, Any], replace: bool) -> None:
    m = ctx.model
    if bridge_key(m, name, must_exist=False) is None:
        cmd_add_br(CommandContext(m), [name])
    bkey = bridge_key(m, name)
    assert bkey is not None
    _set_columns(m, "Bridge", bkey, spec["columns"], BRIDGE_COLUMNS, replace)
    wanted_ports = spec["ports"]
    if replace:
        for pref in list(m.rows["Bridge"][bkey]["ports"]):
            pname = str(m.rows["Port"][m.key_of(pref)]["name"])
            if pname != name and pname not in wanted_ports:
                _delete_port(m, m.key_of(pref))
    for pname, pspec in wanted_ports.items():
        pkey = port_key(m, pname, must_exist=False)
        owner = bridge_of_port(m, pkey) if pkey is not None else None
        if pkey is not None and owner is not None and owner != bkey:
            other = str(m.rows["Bridge"][owner]["name"])
            if other == pname:
                raise ApplyError(
                    f"bridge {name} port {pname}: {pname} is bridge {pname}'s own port; "
                    "it cannot move to another bridge"
                )
            _delete_port(m, pkey)  # moving a port between bridges, as ovs-vsctl would refuse
            pkey = None
        members = pspec.get("members")
        if pkey is None and members:
            pkey = m.insert("Port", {"name": pname, "interfaces": []})
            _add_ref(m, "Bridge", bkey, "ports", "Port", pkey)
        elif pkey is None:
            cmd_add_port(CommandContext(m), [name, pname])
            pkey = port_key(m, pname)
            assert pkey is not None
        if pname != name:
            try:
                set_members(m, pkey, pname, members, replace)
            except BondSettingError as exc:
                raise ApplyError(f"bridge {name} port {pname}: {exc}") from None
        port_cols = {k: v for k, v in pspec["columns"].items() if k in PORT_COLUMNS}
        _set_columns(m, "Port", pkey, port_cols, PORT_COLUMNS, replace)
        bond_cols = {k: v for k, v in pspec["columns"].items() if k in BOND_COLUMNS}
        is_bond = len(m.rows["Port"][pkey]["interfaces"]) > 1
        what = f"bridge {name} port {pname}"
        if bond_cols and not is_bond:
            raise ApplyError(
                f"{what}: {', '.join(sorted(bond_cols))} apply to bonds only; list the "
                "bond's interfaces (interfaces: [eth1, eth2])"
            )
        if is_bond and pspec["interface"]:
            raise ApplyError(
                f"{what}: {', '.join(sorted(pspec['interface']))} cannot be set on a bond "
                "here (its members are system devices; set their Interface columns with "
                "ovsr set)"
            )
        _set_columns(m, "Port", pkey, bond_cols, BOND_COLUMNS, replace)
        if not is_bond:
            ikey = m.key_of(m.rows["Port"][pkey]["interfaces"][0])
            # The bridge's own port stays internal whatever "replaced" resets.
            managed = IFACE_COLUMNS if pname != name else LOCAL_IFACE_COLUMNS
            _set_columns(m, "Interface", ikey, pspec["interface"], managed, replace)
        if pspec.get("qos") is not None or replace:
            _apply_qos(m, pkey, pspec.get("qos"))
    _apply_mirrors(m, name, bkey, spec.get("mirrors", {}), replace)


def _apply_qos(m: Model, pkey: str, wanted: dict[str, Any] | None) -> None:
    current = m.rows["Port"][pkey]["qos"]
    qkey = m.key_of(current[0]) if current else None
    if wanted is None:
        if qkey is not None:
            m.set("Port", pkey, "qos", [])
            _delete_qos(m, qkey)
        return
    if qkey is None:
        qkey = m.insert("QoS", {"type": wanted["type"]})
        m.set("Port", pkey, "qos", [m.ref("QoS", qkey)])
    row = m.rows["QoS"][qkey]
    if row["type"] != wanted["type"]:
        m.set("QoS", qkey, "type", wanted["type"])
    if row["other_config"] != wanted["other_config"]:
        m.set("QoS", qkey, "other_config", wanted["other_config"])
    queues = {}
    for qid, config in wanted["queues"].items():
        existing = row["queues"].get(qid)
        if existing is not None and m.key_of(existing) in m.rows["Queue"]:
            queue_key = m.key_of(existing)
            if m.rows["Queue"][queue_key]["other_config"] != config:
                m.set("Queue", queue_key, "other_config", config)
        else:
            queue_key = m.insert("Queue", {"other_config": config})
        queues[qid] = m.ref("Queue", queue_key)
    for qid, ref in row["queues"].items():
        if qid not in queues:
            m.delete("Queue", m.key_of(ref))
    if row["queues"] != queues:
        m.set("QoS", qkey, "queues", queues)


def _delete_port(m: Model, pkey: str) -> None:
    """A port, and its QoS if no other port uses it (QoS and Queue are root tables: the
    database keeps rows nobody refers to)."""
    qos = m.rows["Port"][pkey]["qos"]
    delete_port(m, pkey)
    if qos:
        qkey = m.key_of(qos[0])
        used = any(qkey in (m.key_of(r) for r in p["qos"]) for p in m.rows["Port"].values())
        if qkey in m.rows["QoS"] and not used:
            _delete_qos(m, qkey)


def _delete_bridge(m: Model, name: str) -> None:
    """A bridge, with its ports' QoS (see ``_delete_port``)."""
    bkey = bridge_key(m, name)
    assert bkey is not None
    for pref in list(m.rows["Bridge"][bkey]["ports"]):
        if str(m.rows["Port"][m.key_of(pref)]["name"]) != name:
            _delete_port(m, m.key_of(pref))
    cmd_del_br(CommandContext(m), [name])


def _delete_qos(m: Model, qkey: str) -> None:
    """QoS and Queue are root tables: rows nobody uses any more are deleted with it."""
    for ref in m.rows["QoS"][qkey]["queues"].values():
        m.delete("Queue", m.key_of(ref))
    m.delete("QoS", qkey)


def _apply_mirrors(m: Model, bridge: str, bkey: str, wanted: dict[str, Any], replace: bool) -> None:
    existing = {
        str(m.rows["Mirror"][m.key_of(ref)]["name"]): m.key_of(ref)
        for ref in m.rows["Bridge"][bkey]["mirrors"]
    }
    if replace:
        for mname, mkey in existing.items():
            if mname not in wanted:
                _remove_ref(m, "Bridge", bkey, "mirrors", mkey)
                m.delete("Mirror", mkey)
    members = {
        str(m.rows["Port"][m.key_of(ref)]["name"]): m.key_of(ref)
        for ref in m.rows["Bridge"][bkey]["ports"]
    }
    for mname, mspec in wanted.items():
        found = existing.get(mname)
        mkey = found if found is not None else m.insert("Mirror", {"name": mname})
        if found is None:
            _add_ref(m, "Bridge", bkey, "mirrors", "Mirror", mkey)
        values = {}
        for column in MIRROR_KEYS:
            if column not in mspec and not replace and found is not None:
                continue  # merged: a mirror keeps the settings it is not given
            value = mspec.get(column)
            if column in MIRROR_PORT_KEYS:
                missing = [n for n in value or [] if n not in members]
                if missing:
                    raise ApplyError(
                        f"bridge {bridge} mirror {mname}.{column}: {', '.join(missing)} "
                        f"is not a port of bridge {bridge}"
                    )
                value = sorted(m.ref("Port", members[n]) for n in value or [])
            elif value is None:
                value = vs.default_value(m.column_type("Mirror", column))
            values[column] = value
        for column, value in values.items():
            if m.rows["Mirror"][mkey][column] != value:
                m.set("Mirror", mkey, column, value)


@command(
    "apply",
    1,
    1,
    "apply FILE [--check] [--state=merged|replaced|overridden|deleted]",
    ("check", "state", "confirm-timeout", "_desired"),
)
def cmd_apply(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    desired: dict[str, Any] = ctx.opts["_desired"]
    state = ctx.opts.get("state", "merged")
    scope = None if state == "overridden" else _scope(m, desired)
    before = current_state(m, scope)
    if state == "deleted":
        for name, spec in desired.items():
            bkey = bridge_key(m, name, must_exist=False)
            if bkey is None:
                continue
            if spec["ports_given"]:
                # Only the listed ports, and only where they are: a port of that name on
                # another bridge is not this bridge's to delete.
                for pname in spec["ports"]:
                    pkey = port_key(m, pname, must_exist=False)
                    if pkey is not None and pname != name and bridge_of_port(m, pkey) == bkey:
                        _delete_port(m, pkey)
            else:
                _delete_bridge(m, name)
    else:
        if state == "overridden":
            for name in list(before):
                if name not in desired:
                    _delete_bridge(m, name)
        for name, spec in desired.items():
            _apply_bridge(ctx, name, spec, replace=state in ("replaced", "overridden"))
    after = current_state(m, scope)
    changes = diff_lines(before, after)
    ctx.out.extend(changes or ["no change"])
    ctx.data.append(
        {
            "changed": bool(changes),
            "state": state,
            "check": bool(ctx.opts.get("check")),
            "before": before,
            "after": after,
            "diff": changes,
        }
    )


def _scope(m: Model, desired: dict[str, Any]) -> list[str]:
    """The bridges a change can touch: those listed, and those holding a listed port (a
    port moved away shows as removed from its old bridge)."""
    names = set(desired)
    for spec in desired.values():
        for pname in spec["ports"]:
            pkey = port_key(m, pname, must_exist=False)
            owner = bridge_of_port(m, pkey) if pkey is not None else None
            if owner is not None:
                names.add(str(m.rows["Bridge"][owner]["name"]))
    return sorted(names)


def diff_lines(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        if b is None:
            lines.append(f"+ bridge {name}")
            b = {"ports": {}}
        elif a is None:
            lines.append(f"- bridge {name}")
            continue
        assert a is not None
        for column in BRIDGE_COLUMNS:
            if b.get(column) != a.get(column) and not (b.get(column) is None and not a.get(column)):
                lines.append(f"~ bridge {name} {column}: {b.get(column)!r} -> {a[column]!r}")
        mb, ma = b.get("mirrors", {}), a.get("mirrors", {})
        for mname in sorted(set(mb) | set(ma)):
            if mname not in ma:
                lines.append(f"- mirror {name}/{mname}")
            elif mb.get(mname) != ma[mname]:
                sign = "~" if mname in mb else "+"
                lines.append(f"{sign} mirror {name}/{mname}: {ma[mname]!r}")
        for pname in sorted(set(b["ports"]) | set(a["ports"])):
            pb, pa = b["ports"].get(pname), a["ports"].get(pname)
            if pb is None:
                lines.append(f"+ port {name}/{pname}")
                pb = {}
            elif pa is None:
                lines.append(f"- port {name}/{pname}")
                continue
            for column in (*PORT_COLUMNS, "interfaces", *BOND_COLUMNS):
                if pb and pb.get(column) != pa.get(column):
                    lines.append(
                        f"~ port {name}/{pname} {column}: {pb.get(column)!r} -> {pa.get(column)!r}"
                    )
                elif not pb and pa.get(column):
                    lines.append(f"  port {name}/{pname} {column}: {pa[column]!r}")
            if pb.get("qos") != pa.get("qos") and (pb or pa.get("qos")):
                lines.append(f"~ port {name}/{pname} qos: {pb.get('qos')!r} -> {pa.get('qos')!r}")
            ib, ia = pb.get("interface", {}), pa.get("interface", {})
            for column in IFACE_COLUMNS:
                if ib.get(column) != ia.get(column) and (ib or ia.get(column)):
                    lines.append(
                        f"~ port {name}/{pname} interface {column}: "
                        f"{ib.get(column)!r} -> {ia.get(column)!r}"
                    )
    return lines


def exit_code(contexts: list[CommandContext]) -> int:
    for ctx in contexts:
        for data in ctx.data:
            if isinstance(data, dict) and data.get("changed"):
                return EXIT_CHANGED
    return 0
