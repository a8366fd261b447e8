"""The OpenFlow pipeline: run a packet's flow key through the flow tables.

``translate`` starts at table 0, applies the matched rule's actions in order (outputs,
header rewrites, NORMAL, ``resubmit`` into another table, ``goto_table``), and returns
what should happen to the packet: a list of outputs, each with the packet's fields as
they are at that point (the datapath turns the difference into a rewrite), the rules
that were hit (for their counters) and the megaflow ``wildcards``: every key bit the
decision read. With ``trace`` it also records, step by step, what it did and why; that
is ``ovsr trace``. Nothing here sends a packet or touches a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.classifier import FlowTable, Rule
from ovs_runtime.ofproto.flow_actions import format_action, format_actions
from ovs_runtime.ofproto.flow_match import Match, format_match
from ovs_runtime.ofproto.port_security import PortSecurity

MAX_RESUBMIT_DEPTH = 64
MAX_RESUBMITS = 4096  # per packet, as OVS: a rule set cannot make a lookup explode
NO_SUCH_PORT = 0xFFFFFFFE  # resubmit(PORT) to a port that does not exist


class PipelineEnv(Protocol):
    """What the pipeline needs to know about the bridge's ports and NORMAL."""

    def port_number(self, name: str) -> int | None: ...
    def port_name(self, ofport: int) -> str: ...
    def all_ports(self) -> list[int]: ...
    def flood_ports(self) -> list[int]: ...
    def normal_action(
        self, key: fk.Key, learn: bool
    ) -> tuple[list[tuple[int, int | None]], str | None]: ...
    def port_security(self, ofport: int) -> PortSecurity | None: ...


@dataclass
class Output:
    port: int
    key: fk.Key  # the packet's fields when it is output
    queue: int | None = None


@dataclass
class Translation:
    outputs: list[Output] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    wildcards: list[int] = field(default_factory=lambda: [0] * fk.KEY_SIZE)
    drop_reason: str | None = None  # a drop counter, when the packet was refused outright
    trace: list[dict[str, Any]] | None = None

    def note(self, depth: int, **event: Any) -> None:
        if self.trace is not None:
            self.trace.append({"depth": depth, **event})


class Pipeline:
    def __init__(self) -> None:
        self.tables: dict[int, FlowTable] = {}

    def table(self, table_id: int) -> FlowTable:
        table = self.tables.get(table_id)
        if table is None:
            table = self.tables[table_id] = FlowTable(table_id)
        return table

    def translate(
        self, key: fk.Key, env: PipelineEnv, trace: bool = False, learn: bool = True
    ) -> Translation:
        result = Translation(trace=[] if trace else None)
        result.wildcards[fk.IN_PORT] = fk.FULL[fk.IN_PORT]
        security = env.port_security(key[fk.IN_PORT])
        if security is not None:
            reason = security.check(key, result.wildcards)
            result.note(0, step="port_security", verdict=reason or "allowed")
            if reason is not None:
                result.drop_reason = reason
                return result
        _Run(self, env, result, learn).table(0, list(key), 0)
        if trace and not result.outputs:
            result.note(0, step="final", verdict="drop")
        return result


class _Run:
    """One translation: the working packet is a mutable copy of the key."""

    def __init__(
        self, pipeline: Pipeline, env: PipelineEnv, result: Translation, learn: bool
    ) -> None:
        self.pipeline = pipeline
        self.env = env
        self.result = result
        self.learn = learn
        self.queue: int | None = None
        self.stopped = False
        self.lookups = 0

    def table(self, table_id: int, packet: list[int], depth: int) -> None:
        result = self.result
        self.lookups += 1
        if depth > MAX_RESUBMIT_DEPTH or self.lookups > MAX_RESUBMITS:
            result.note(depth, step="error", detail="resubmit limit reached; dropped")
            result.outputs.clear()
            self.stopped = True
            return
        table = self.pipeline.tables.get(table_id)
        rule = table.lookup(tuple(packet), result.wildcards) if table is not None else None
        if rule is None:
            result.note(
                depth,
                step="table",
                table=table_id,
                rule=None,
                detail="no rule matched (table miss: drop)",
            )
            return
        result.rules.append(rule)
        if result.trace is not None:
            result.note(
                depth,
                step="table",
                table=table_id,
                rule={
                    "priority": rule.priority,
                    "match": format_match(rule.spec.match),
                    "actions": format_actions(rule.actions),
                    "cookie": rule.spec.cookie,
                    "implicit": rule.implicit,
                },
            )
        self.actions(rule.actions, table_id, packet, depth)

    def actions(
        self, actions: tuple[Any, ...], table_id: int, packet: list[int], depth: int
    ) -> None:
        env, result = self.env, self.result
        in_port = packet[fk.IN_PORT]
        for action in actions:
            if self.stopped:
                return
            kind = action[0]
            if result.trace is not None:
                result.note(depth + 1, step="action", action=format_action(action))
            if kind == "output":
                port = env.port_number(action[1])
                if port is None:
                    result.note(depth + 1, step="skip", detail=f"no port {action[1]}")
                elif port == in_port:
                    result.note(
                        depth + 1, step="skip", detail="output to the ingress port needs IN_PORT"
                    )
                else:
                    self.output(port, packet, depth)
            elif kind == "in_port":
                self.output(in_port, packet, depth)
            elif kind in ("flood", "all"):
                ports = env.flood_ports() if kind == "flood" else env.all_ports()
                for port in ports:
                    if port != in_port:
                        self.output(port, packet, depth)
            elif kind == "normal":
                self.normal(packet, depth)
            elif kind == "drop":
                return
            elif kind in ("set_vlan_vid", "set_vlan_pcp", "strip_vlan"):
                # How the output is built (push, pop, retag) depends on the tag the
                # packet came with, so the decision depends on it.
                result.wildcards[fk.VLAN_TCI] = 0xFFFF
                self.vlan_action(kind, action, packet)
            elif kind == "push_vlan":
                result.wildcards[fk.VLAN_TCI] = 0xFFFF
                if packet[fk.VLAN_TCI]:
                    result.note(
                        depth + 1,
                        step="skip",
                        detail="the packet is already tagged; "
                        "a second tag (QinQ) is not supported, so it keeps one",
                    )
                packet[fk.VLAN_TCI] = fk.VLAN_PRESENT | (packet[fk.VLAN_TCI] & 0xEFFF)
            elif kind == "set_field":
                index, value = action[1], action[2]
                # Whether the output is rewritten depends on the value it had.
                result.wildcards[index] = fk.FULL[index]
                if index in (fk.NW_SRC, fk.NW_DST, fk.NW_TOS):
                    result.wildcards[fk.DL_TYPE] = 0xFFFF
                    if packet[fk.DL_TYPE] != fk.ETH_IP and index != fk.NW_TOS:
                        result.note(depth + 1, step="skip", detail="not an IPv4 packet")
                        continue
                    if packet[fk.DL_TYPE] not in (fk.ETH_IP, fk.ETH_IPV6):
                        continue
                packet[index] = value
            elif kind == "dec_ttl":
                result.wildcards[fk.DL_TYPE] = 0xFFFF
                if packet[fk.DL_TYPE] not in (fk.ETH_IP, fk.ETH_IPV6):
                    continue
                result.wildcards[fk.NW_TTL] = 0xFF
                if packet[fk.NW_TTL] <= 1:
                    result.note(
                        depth + 1, step="drop", detail=f"TTL {packet[fk.NW_TTL]} expires; dropped"
                    )
                    self.stopped = True
                    return
                packet[fk.NW_TTL] -= 1
            elif kind == "set_queue":
                self.queue = action[1]
            elif kind == "resubmit":
                port_name, table = action[1], action[2]
                target = table_id if table is None else table
                sub = list(packet)
                if port_name is not None:
                    number = env.port_number(port_name)
                    sub[fk.IN_PORT] = NO_SUCH_PORT if number is None else number
                self.table(target, sub, depth + 1)
                # A resubmit sees, and may change, the same packet (as in OVS).
                for index in range(fk.KEY_SIZE):
                    if index != fk.IN_PORT:
                        packet[index] = sub[index]
            elif kind == "goto_table":
                self.table(action[1], packet, depth + 1)

    @staticmethod
    def vlan_action(kind: str, action: tuple[Any, ...], packet: list[int]) -> None:
        tci = packet[fk.VLAN_TCI]
        if kind == "set_vlan_vid":
            packet[fk.VLAN_TCI] = fk.VLAN_PRESENT | (tci & 0xE000) | action[1]
        elif kind == "set_vlan_pcp":
            packet[fk.VLAN_TCI] = fk.VLAN_PRESENT | (tci & 0x0FFF) | (action[1] << 13)
        else:
            packet[fk.VLAN_TCI] = 0

    def output(self, port: int, packet: list[int], depth: int) -> None:
        self.result.outputs.append(Output(port, tuple(packet), self.queue))
        self.result.note(depth + 1, step="output", port=self.env.port_name(port))

    def normal(self, packet: list[int], depth: int) -> None:
        wildcards = self.result.wildcards
        for index in (fk.IN_PORT, fk.DL_SRC, fk.DL_DST, fk.VLAN_TCI, fk.DL_TYPE):
            wildcards[index] = fk.FULL[index]
        outputs, reason = self.env.normal_action(tuple(packet), self.learn)
        if reason is not None:
            self.result.note(depth + 1, step="normal", detail=f"NORMAL drops it: {reason}")
            if not self.result.outputs:
                self.result.drop_reason = reason
            return
        if not outputs:
            self.result.note(
                depth + 1, step="normal", detail="NORMAL: destination is behind the ingress port"
            )
        for port, vid in outputs:
            out = list(packet)
            pcp = packet[fk.VLAN_TCI] & 0xE000
            out[fk.VLAN_TCI] = 0 if vid is None else fk.VLAN_PRESENT | pcp | vid
            self.result.outputs.append(Output(port, tuple(out), self.queue))
            vlan = "untagged" if vid is None else f"VLAN {vid}"
            self.result.note(
                depth + 1, step="output", port=self.env.port_name(port), via="NORMAL", vlan=vlan
            )


def describe_wildcards(key: fk.Key, wildcards: list[int], in_port: str) -> str:
    """The megaflow a decision is cached under, in match syntax: each field it read."""
    match = Match(
        {i: (key[i] & m, m) for i, m in enumerate(wildcards) if m and i != fk.IN_PORT},
        in_port if wildcards[fk.IN_PORT] else None,
    )
    return format_match(match)
