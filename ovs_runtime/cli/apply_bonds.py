"""Bonds in ``ovsr apply`` (and so in the Ansible role): a port with ``interfaces``.

::

    ports:
      bond0:
        interfaces: [eth1, eth2]        # two or more system devices
        bond_updelay: 200               # OVS's Port columns, in milliseconds
        other_config: {bond-primary: eth1}

The bond's own settings are Port columns (``BOND_COLUMNS``); its members are plain
system interfaces, so the per-interface shortcuts (``type``, ``options``...) do not
apply. Giving a port different ``interfaces`` replaces its members. With ``--state
replaced`` (or ``overridden``), a port listed without them has one interface named like
the port, so a bond turns back into an ordinary port; ``merged`` leaves them alone.
"""

from __future__ import annotations

from typing import Any

from ovs_runtime.bridge.bond_config import BondConfigError, bond_spec
from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.model import Model

BOND_COLUMNS = ("bond_mode", "bond_updelay", "bond_downdelay", "lacp")


class BondSettingError(ValueError):
    pass


def parse_members(pname: str, bname: str, body: dict[str, Any], what: str) -> list[str] | None:
    """Pop and check ``interfaces``; None for an ordinary port."""
    if "interfaces" not in body:
        return None  # (bond settings for an existing bond are checked when applied)
    members = body.pop("interfaces")
    if not isinstance(members, list) or not all(isinstance(n, str) and n for n in members):
        raise BondSettingError(f"{what}.interfaces: expected a list of interface names")
    if len(members) < 2:
        raise BondSettingError(
            f"{what}.interfaces: a bond needs at least two interfaces (got {len(members)}); "
            "for one, leave interfaces out"
        )
    if len(set(members)) != len(members):
        raise BondSettingError(f"{what}.interfaces: an interface is listed twice")
    if pname == bname:
        raise BondSettingError(f"{what}: the bridge's own port cannot be a bond")
    for key in ("interface", "type", "options", "ofport_request", "mtu_request", "mac", "qos"):
        if key in body and key != "qos":
            raise BondSettingError(
                f"{what}: {key} cannot be given with interfaces (a bond's members are "
                "system devices; set their Interface columns with ovsr set)"
            )
    return sorted(members)


def check_bond_columns(columns: dict[str, Any], what: str) -> None:
    """The bond settings (normalised plain values) as the daemon's commit check will
    see them."""
    try:
        bond_spec(
            what,
            mode=_one(columns.get("bond_mode")),
            lacp=_one(columns.get("lacp")),
            updelay=columns.get("bond_updelay", 0),
            downdelay=columns.get("bond_downdelay", 0),
            other_config=columns.get("other_config") or {},
        )
    except BondConfigError as exc:
        raise BondSettingError(str(exc)) from None


def _one(value: Any) -> Any:
    """An optional column's normalised value ([] or [x]) as None or x."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def set_members(m: Model, pkey: str, pname: str, members: list[str] | None, replace: bool) -> None:
    """Make the port's interfaces exactly ``members``, keeping the rows of interfaces
    that stay. Without ``members``, ``replace`` makes the port an ordinary one (one
    interface named like it); ``merged`` leaves its interfaces alone."""
    if members is None and not replace:
        return
    wanted = members or [pname]
    current = {
        str(m.rows["Interface"][m.key_of(ref)]["name"]): m.key_of(ref)
        for ref in m.rows["Port"][pkey]["interfaces"]
        if m.key_of(ref) in m.rows["Interface"]
    }
    if sorted(current) == sorted(wanted) or (members is None and len(current) <= 1):
        return  # (an ordinary port keeps its interface, whatever its name)
    for name, ikey in current.items():
        if name not in wanted:
            m.delete("Interface", ikey)
    keys = [current.get(n) or _new_interface(m, n) for n in wanted]
    m.set("Port", pkey, "interfaces", sorted(m.ref("Interface", k) for k in keys))


def _new_interface(m: Model, name: str) -> str:
    existing = m.lookup("Interface", name, must_exist=False)
    if existing is not None:
        raise BondSettingError(
            f"interface {name} already belongs to another port; remove it there first"
        )
    return m.insert("Interface", {"name": name})


def bond_state(m: Model, port: dict[str, Any]) -> dict[str, Any]:
    """A bond port's members and settings, for ``current_state``."""
    names = sorted(
        str(m.rows["Interface"][m.key_of(ref)]["name"])
        for ref in port["interfaces"]
        if m.key_of(ref) in m.rows["Interface"]
    )
    return {"interfaces": names, **{c: vs.to_plain(port[c]) for c in BOND_COLUMNS}}
