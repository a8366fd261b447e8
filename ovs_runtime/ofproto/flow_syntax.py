"""Whole flow rules in ovs-ofctl syntax, as ``add-flow`` and flow files take them:

    [table=N,][priority=N,][cookie=N,][idle_timeout=N,][hard_timeout=N,]MATCH,actions=ACTIONS

Fields are separated by commas or white space and ``actions=`` comes last, so files
written for ``ovs-ofctl add-flows`` work unchanged. Omitted values default as in OVS:
table 0, priority 32768, cookie 0, no timeouts. ``format_rule`` prints the canonical
form that is stored and that ``dump-flows`` shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from ovs_runtime.ofproto import flow_actions, flow_match
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.flow_actions import Action
from ovs_runtime.ofproto.flow_match import FlowSyntaxError, Match, PortResolver

DEFAULT_PRIORITY = 32768
COOKIE_MAX = (1 << 63) - 1  # OVSDB integers are signed 64-bit
RULE_SETTINGS = ("table", "priority", "cookie", "idle_timeout", "hard_timeout")
IGNORED_FLAGS = (
    "send_flow_rem",
    "check_overlap",
    "reset_counts",
    "no_packet_counts",
    "no_byte_counts",
)


@dataclass(frozen=True)
class FlowRule:
    table: int
    priority: int
    match: Match
    actions: tuple[Action, ...]
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0

    @cached_property
    def identity(self) -> tuple[object, ...]:
        """Two rules with the same identity are the same OpenFlow rule (one replaces the
        other): table, priority and match."""
        return (self.table, self.priority, self.match.canonical_key())


@dataclass
class FlowFilter:
    """The MATCH argument of del-flows, dump-flows and mod-flows."""

    match: Match
    table: int | None = None
    priority: int | None = None
    cookie: tuple[int, int] | None = None  # value, mask
    out_port: str | None = None

    def is_empty(self) -> bool:
        return (
            not self.match.fields
            and self.match.in_port is None
            and self.table is None
            and self.priority is None
            and self.cookie is None
            and self.out_port is None
        )

    def selects(self, rule: FlowRule, strict: bool) -> bool:
        if self.table is not None and rule.table != self.table:
            return False
        if self.cookie is not None and (rule.cookie ^ self.cookie[0]) & self.cookie[1]:
            return False
        if self.out_port is not None and self.out_port not in _outputs(rule.actions):
            return False
        if strict:
            priority = DEFAULT_PRIORITY if self.priority is None else self.priority
            return rule.priority == priority and rule.match == self.match
        return self.match.covers(rule.match)


def format_filter(flt: FlowFilter) -> str:
    """The filter as text ``parse_filter`` reads back to an equal filter, ports named."""
    parts = [] if flt.table is None else [f"table={flt.table}"]
    if flt.priority is not None:
        parts.append(f"priority={flt.priority}")
    if flt.cookie is not None:
        parts.append(f"cookie={flt.cookie[0]:#x}/{flt.cookie[1]:#x}")
    if flt.out_port is not None:
        parts.append(f"out_port={flt.out_port}")
    match = flow_match.format_match(flt.match)
    return ",".join([*parts, match] if match else parts)


def _outputs(actions: tuple[Action, ...]) -> set[str]:
    return {a[1] for a in actions if a[0] == "output"}


def any_port(text: str) -> str:
    """The resolver used where no bridge is known: any valid name, no numbers."""
    if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,255}", text) or text.isdigit():
        raise FlowSyntaxError(
            f"port {text!r}: give a port name (numbers need a bridge to look them up)"
        )
    return text


def _split(text: str) -> tuple[list[str], str | None]:
    parts = re.split(r"(?:^|(?<=[\s,]))actions?=", text, maxsplit=1)
    head = parts[0]
    actions = parts[1] if len(parts) == 2 else None
    tokens = [t for t in re.split(r"[\s,]+", head.strip()) if t]
    return tokens, actions


def _setting(name: str, text: str) -> int:
    what = f"{name}"
    if name == "table":
        value = flow_match.parse_int(text, what, 16)
        if value > 254:
            raise FlowSyntaxError(f"table={text} is out of range 0..254")
        return value
    if name == "priority":
        return flow_match.parse_int(text, what, 16)
    if name in ("idle_timeout", "hard_timeout"):
        return flow_match.parse_int(text, what, 16)
    value = flow_match.parse_int(text, what, 64)
    if value > COOKIE_MAX:
        raise FlowSyntaxError(f"cookie={text}: cookies above {COOKIE_MAX:#x} are not supported")
    return value


def parse_rule(text: str, resolve_port: PortResolver = any_port) -> FlowRule:
    """Parse one rule; raises FlowSyntaxError naming the offending token."""
    tokens, actions_text = _split(text)
    if actions_text is None:
        raise FlowSyntaxError(f"flow {text.strip()!r} has no actions= (it must come last)")
    settings: dict[str, int] = {}
    match = Match()
    names: list[str] = []
    for token in tokens:
        name, eq, value = token.partition("=")
        if name in RULE_SETTINGS and eq:
            if "/" in value:
                raise FlowSyntaxError(f"{name}={value}: a mask is only accepted in filters")
            settings[name] = _setting(name, value)
        elif name in IGNORED_FLAGS and not eq:
            continue
        elif name in ("out_port", "out_group"):
            raise FlowSyntaxError(
                f"{name} is a filter for del-flows and dump-flows, not a match field"
            )
        else:
            flow_match.parse_match_token(match, token, names, resolve_port)
    flow_match.check_prerequisites(match, names)
    table = settings.get("table", 0)
    tci = match.fields.get(fk.VLAN_TCI)
    tagged = tci is not None and tci[0] & tci[1] & fk.VLAN_PRESENT != 0
    actions = flow_actions.parse_actions(actions_text, table, resolve_port, tagged)
    return FlowRule(
        table=table,
        priority=settings.get("priority", DEFAULT_PRIORITY),
        match=match,
        actions=actions,
        cookie=settings.get("cookie", 0),
        idle_timeout=settings.get("idle_timeout", 0),
        hard_timeout=settings.get("hard_timeout", 0),
    )


def parse_filter(text: str, resolve_port: PortResolver = any_port) -> FlowFilter:
    tokens, actions_text = _split(text)
    if actions_text is not None:
        raise FlowSyntaxError("a match for del-flows or dump-flows takes no actions=")
    flt = FlowFilter(Match())
    names: list[str] = []
    for token in tokens:
        name, eq, value = token.partition("=")
        if name == "cookie" and eq:
            cookie, _, mask = value.partition("/")
            flt.cookie = (
                flow_match.parse_int(cookie, "cookie", 64),
                # A mask of -1 is all ones, as ovs-ofctl(8) allows.
                (1 << 64) - 1
                if mask.strip() in ("", "-1")
                else flow_match.parse_int(mask, "cookie mask", 64),
            )
        elif name == "table" and eq:
            flt.table = _setting("table", value)
        elif name == "priority" and eq:
            flt.priority = _setting("priority", value)
        elif name == "out_port" and eq:
            flt.out_port = resolve_port(value)
        else:
            flow_match.parse_match_token(flt.match, token, names, resolve_port)
    flow_match.check_prerequisites(flt.match, names)
    return flt


def format_rule(rule: FlowRule, with_table: bool = True) -> str:
    head = []
    if rule.cookie:
        head.append(f"cookie={rule.cookie:#x}")
    if with_table and rule.table:
        head.append(f"table={rule.table}")
    if rule.idle_timeout:
        head.append(f"idle_timeout={rule.idle_timeout}")
    if rule.hard_timeout:
        head.append(f"hard_timeout={rule.hard_timeout}")
    head.append(f"priority={rule.priority}")
    match = flow_match.format_match(rule.match)
    if match:
        head.append(match)
    return ",".join(head) + " actions=" + flow_actions.format_actions(rule.actions)


def parse_file(
    text: str, resolve_port: PortResolver = any_port, source: str = "flows"
) -> list[FlowRule]:
    """Every rule of a flows file (blank lines and ``#`` comments skipped). The first bad
    line fails the whole file, with its line number."""
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            rules.append(parse_rule(stripped, resolve_port))
        except FlowSyntaxError as exc:
            raise FlowSyntaxError(f"{source} line {number}: {exc}") from None
    return rules
