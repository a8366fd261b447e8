"""Actions in ovs-ofctl syntax: parsing the text after ``actions=`` and printing it back.

An action is a tuple whose first item names it; ports are kept by name (see
``flow_match``). The accepted set is what the pipeline executes; anything else is
refused with the list of what is accepted, never silently ignored.
"""

from __future__ import annotations

from typing import Any

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.flow_match import (
    FIELDS,
    FlowSyntaxError,
    PortResolver,
    _ip_text,
    _mac_text,
    parse_int,
    parse_mac,
    parse_value,
)

Action = tuple[Any, ...]  # ("output", "p1"), ("resubmit", None, 2), ...

RESERVED_PORTS = {"NORMAL": "normal", "FLOOD": "flood", "ALL": "all", "IN_PORT": "in_port"}
ACCEPTED_ACTIONS = (
    "output:PORT, PORT, NORMAL, FLOOD, ALL, IN_PORT, LOCAL, drop, mod_vlan_vid:VID, "
    "mod_vlan_pcp:PCP, strip_vlan, pop_vlan, push_vlan:0x8100, mod_dl_src:MAC, "
    "mod_dl_dst:MAC, mod_nw_src:IP, mod_nw_dst:IP, mod_nw_tos:TOS, "
    "set_field:VALUE->FIELD, dec_ttl, resubmit(PORT,TABLE), resubmit:PORT, goto_table:TABLE, "
    "set_queue:QUEUE, set_tunnel:VNI"
)
SETTABLE = {
    "dl_src": fk.DL_SRC,
    "eth_src": fk.DL_SRC,
    "dl_dst": fk.DL_DST,
    "eth_dst": fk.DL_DST,
    "nw_src": fk.NW_SRC,
    "ip_src": fk.NW_SRC,
    "ipv4_src": fk.NW_SRC,
    "nw_dst": fk.NW_DST,
    "ip_dst": fk.NW_DST,
    "ipv4_dst": fk.NW_DST,
    "nw_tos": fk.NW_TOS,
    "ip_dscp": fk.NW_TOS,
    "tun_id": fk.TUN_ID,
    "tun_dst": fk.TUN_DST,
    "vlan_vid": fk.VLAN_TCI,
    "vlan_pcp": -1,
}
UNSUPPORTED = {
    "controller": "there is no OpenFlow controller connection; use a rule that drops or "
    "outputs instead",
    "ct": "connection tracking is not implemented",
    "learn": "the learn action is not implemented",
}


def split_actions(text: str) -> list[str]:
    """Split on commas and white space outside parentheses (as ovs-ofctl does:
    ``actions=output:1 output:2`` is two actions)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FlowSyntaxError(f"unbalanced ')' in actions {text!r}")
        if ch in ", \t" and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if depth:
        raise FlowSyntaxError(f"unbalanced '(' in actions {text!r}")
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _table(text: str, what: str) -> int:
    value = parse_int(text, what, 16)
    if value > 254:
        raise FlowSyntaxError(f"{what}: table {value} is out of range 0..254")
    return value


def _argument(token: str) -> tuple[str, str]:
    for sep in (":", "="):
        name, found, arg = token.partition(sep)
        if found and "(" not in name:
            return name.strip().lower(), arg.strip()
    name, paren, rest = token.partition("(")
    if paren:
        if not rest.endswith(")"):
            raise FlowSyntaxError(f"action {token!r}: missing ')'")
        return name.strip().lower(), rest[:-1].strip()
    return token.strip().lower(), ""


def parse_action(token: str, resolve_port: PortResolver) -> Action:
    upper = token.upper()
    if upper in RESERVED_PORTS:
        return (RESERVED_PORTS[upper],)
    if upper == "LOCAL":
        return ("output", resolve_port("LOCAL"))
    if upper == "DROP":
        return ("drop",)
    name, arg = _argument(token)
    if name in UNSUPPORTED:
        raise FlowSyntaxError(f"action {token!r}: {UNSUPPORTED[name]}")
    if name == "output":
        if arg.upper() in RESERVED_PORTS:
            return (RESERVED_PORTS[arg.upper()],)
        return ("output", resolve_port(arg))
    if name in ("mod_vlan_vid", "set_vlan_vid"):
        vid = parse_int(arg, f"action {name}", 12)
        return ("set_vlan_vid", vid)
    if name in ("mod_vlan_pcp", "set_vlan_pcp"):
        return ("set_vlan_pcp", parse_int(arg, f"action {name}", 3))
    if name in ("strip_vlan", "pop_vlan") and not arg:
        return ("strip_vlan",)
    if name == "push_vlan":
        tpid = parse_int(arg, "action push_vlan", 16)
        if tpid != 0x8100:
            raise FlowSyntaxError(f"action push_vlan:{arg}: only 0x8100 (802.1Q) is supported")
        return ("push_vlan", tpid)
    if name in ("mod_dl_src", "mod_dl_dst"):
        index = fk.DL_SRC if name == "mod_dl_src" else fk.DL_DST
        return ("set_field", index, parse_mac(arg, f"action {name}"))
    if name in ("mod_nw_src", "mod_nw_dst"):
        index = fk.NW_SRC if name == "mod_nw_src" else fk.NW_DST
        value, mask = parse_value("nw_src", FIELDS["nw_src"], arg)
        if mask != fk.FULL[index]:
            raise FlowSyntaxError(f"action {name}:{arg}: give one address, not a prefix")
        return ("set_field", index, value)
    if name == "mod_nw_tos":
        return ("set_field", fk.NW_TOS, _tos(arg, f"action {name}"))
    if name == "set_field":
        return _set_field(arg, token)
    if name == "dec_ttl" and not arg:
        return ("dec_ttl",)
    if name == "resubmit":
        return _resubmit(arg, token, resolve_port)
    if name == "goto_table":
        return ("goto_table", _table(arg, "action goto_table"))
    if name == "set_queue":
        return ("set_queue", parse_int(arg, "action set_queue", 32))
    if name in ("set_tunnel", "set_tunnel64"):
        return ("set_field", fk.TUN_ID, parse_int(arg, f"action {name}", 64))
    if not arg and name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        try:  # a bare port name or number means output to it, as in ovs-ofctl
            return ("output", resolve_port(token.strip()))
        except FlowSyntaxError as exc:
            raise FlowSyntaxError(
                f"unknown action {token!r} ({exc}); accepted: {ACCEPTED_ACTIONS}"
            ) from None
    raise FlowSyntaxError(f"unknown action {token!r}; accepted: {ACCEPTED_ACTIONS}")


def _set_field(arg: str, token: str) -> Action:
    value_text, arrow, field = arg.partition("->")
    field = field.strip()
    if not arrow or field not in SETTABLE:
        raise FlowSyntaxError(
            f"action {token!r}: expected set_field:VALUE->FIELD with FIELD one of "
            f"{', '.join(sorted(SETTABLE))}"
        )
    index = SETTABLE[field]
    if field == "vlan_vid":
        vid = parse_int(value_text, "set_field vlan_vid", 13)
        return ("set_vlan_vid", vid & 0x0FFF)  # OpenFlow 1.2 may include the 0x1000 bit
    if field == "vlan_pcp":
        return ("set_vlan_pcp", parse_int(value_text, "set_field vlan_pcp", 3))
    if field == "tun_id":
        return ("set_field", index, parse_int(value_text, "set_field tun_id", 64))
    if field == "tun_dst":
        value, mask = parse_value("tun_dst", FIELDS["tun_dst"], value_text)
        if mask != fk.FULL[index]:
            raise FlowSyntaxError(f"action {token!r}: set_field takes one address, not a prefix")
        return ("set_field", index, value)
    spec_name = {fk.DL_SRC: "dl_src", fk.DL_DST: "dl_dst", fk.NW_SRC: "nw_src", fk.NW_DST: "nw_dst"}
    if index == fk.NW_TOS:
        if field == "ip_dscp":
            value, _ = parse_value("ip_dscp", FIELDS["ip_dscp"], value_text)
            return ("set_field", index, value)
        return ("set_field", index, _tos(value_text, f"action {token!r}"))
    name = spec_name[index]
    value, mask = parse_value(name, FIELDS[name], value_text)
    if mask != fk.FULL[index]:
        raise FlowSyntaxError(f"action {token!r}: set_field takes one value, not a mask")
    return ("set_field", index, value)


def _tos(text: str, what: str) -> int:
    """A TOS to write: the DSCP bits only. (A match ignores the ECN bits of its value,
    as OVS does; an action that would set them is refused, as ovs-ofctl refuses it.)"""
    tos = parse_int(text, what, 8)
    if tos & 3:
        raise FlowSyntaxError(f"{what}: {text} must be a multiple of 4 (the DSCP bits)")
    return tos


def _resubmit(arg: str, token: str, resolve_port: PortResolver) -> Action:
    if "," not in arg:
        if not arg:
            raise FlowSyntaxError(
                f"action {token!r}: expected resubmit:PORT or resubmit(PORT,TABLE)"
            )
        return ("resubmit", resolve_port(arg), None)
    port_text, _, table_text = arg.partition(",")
    port = resolve_port(port_text.strip()) if port_text.strip() else None
    table = _table(table_text.strip(), "action resubmit") if table_text.strip() else None
    if port is None and table is None:
        raise FlowSyntaxError(f"action {token!r}: give a port, a table or both")
    return ("resubmit", port, table)


def parse_actions(
    text: str, table: int, resolve_port: PortResolver, tagged: bool = True
) -> tuple[Action, ...]:
    """The actions of a rule. ``tagged``: the rule's match guarantees a VLAN tag, which
    ``set_field:VID->vlan_vid`` needs (it rewrites a tag; ``mod_vlan_vid`` also adds
    one where there is none). An empty list drops, as in ovs-ofctl."""
    tokens = split_actions(text)
    if not tokens:
        return (("drop",),)
    actions = tuple(parse_action(t, resolve_port) for t in tokens)
    if any(a[0] == "drop" for a in actions) and len(actions) > 1:
        raise FlowSyntaxError("actions: drop must be the only action")
    for token, action in zip(tokens, actions, strict=True):
        from_set_field = token.startswith("set_field")
        if action[0] in ("push_vlan", "set_vlan_vid", "set_vlan_pcp") and not from_set_field:
            tagged = True
        elif action[0] == "strip_vlan":
            tagged = False
        elif action[0] in ("set_vlan_vid", "set_vlan_pcp") and not tagged:
            mod = "mod_vlan_vid" if action[0] == "set_vlan_vid" else "mod_vlan_pcp"
            raise FlowSyntaxError(
                f"action {token!r}: the packet may have no VLAN tag to set (as OpenFlow has "
                "it, and ovs-ofctl refuses it); match a tag (dl_vlan=N, or "
                "vlan_tci=0x1000/0x1000), put push_vlan:0x8100 before it, or use "
                f"{mod}:{action[1]}, which adds a tag where there is none"
            )
    for i, action in enumerate(actions):
        if action[0] == "goto_table":
            if i != len(actions) - 1:
                raise FlowSyntaxError("actions: goto_table must be the last action")
            if action[1] <= table:
                raise FlowSyntaxError(
                    f"actions: goto_table:{action[1]} must go to a later table than {table}"
                )
    return actions


def format_action(action: Action) -> str:
    kind = action[0]
    if kind in ("normal", "flood", "all", "in_port"):
        return kind.upper()
    if kind == "output":
        return f"output:{action[1]}"
    if kind == "set_vlan_vid":
        return f"mod_vlan_vid:{action[1]}"
    if kind == "set_vlan_pcp":
        return f"mod_vlan_pcp:{action[1]}"
    if kind == "push_vlan":
        return f"push_vlan:{action[1]:#06x}"
    if kind == "set_field":
        index, value = action[1], action[2]
        if index == fk.DL_SRC:
            return f"mod_dl_src:{_mac_text(value)}"
        if index == fk.DL_DST:
            return f"mod_dl_dst:{_mac_text(value)}"
        if index == fk.NW_SRC:
            return f"mod_nw_src:{_ip_text(value, fk.FULL[index], 32)}"
        if index == fk.NW_DST:
            return f"mod_nw_dst:{_ip_text(value, fk.FULL[index], 32)}"
        if index == fk.NW_TOS:
            return f"mod_nw_tos:{value}"
        if index == fk.TUN_DST:
            return f"set_field:{_ip_text(value, fk.FULL[index], 32)}->tun_dst"
        return f"set_tunnel:{value:#x}"
    if kind == "resubmit":
        port, table = action[1], action[2]
        if table is None:
            return f"resubmit:{port}"
        return f"resubmit({port or ''},{table})"
    if kind == "goto_table":
        return f"goto_table:{action[1]}"
    if kind == "set_queue":
        return f"set_queue:{action[1]}"
    return kind  # drop, strip_vlan, dec_ttl


def format_actions(actions: tuple[Action, ...]) -> str:
    return ",".join(format_action(a) for a in actions)


def ports_in(actions: tuple[Action, ...]) -> set[str]:
    return {a[1] for a in actions if a[0] in ("output", "resubmit") and a[1] is not None}
