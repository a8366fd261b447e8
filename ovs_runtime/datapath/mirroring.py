"""Port mirroring (the Mirror table), as OVS defines it.

A frame is selected by a mirror when ``select_all`` is set, or it arrived on a port in
``select_src_port``, or NORMAL sends it out of a port in ``select_dst_port``; and, if
``select_vlan`` is not empty, its VLAN is one of those. A selected frame is copied to
``output_port`` (SPAN: tagged with its VLAN, untagged for VLAN 0) or, with
``output_vlan``, to every port carrying that VLAN, tagged with it (RSPAN). An output port
takes no part in normal switching: nothing is learned from or forwarded to it.

The copies are part of the cached decision, so a cache hit mirrors at no extra cost;
changing a mirror invalidates the cache like any other configuration change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ovs_runtime.bridge.desired_state import MirrorSpec
from ovs_runtime.datapath.flow_cache import tag_operation

if TYPE_CHECKING:
    from ovs_runtime.datapath.bridge_state import BridgeState
    from ovs_runtime.datapath.port_handle import PortHandle


@dataclass(eq=False)
class MirrorState:
    spec: MirrorSpec
    tx_packets: int = 0
    tx_bytes: int = 0

    def selects(self, in_port: str, out_ports: set[str], vlan: int) -> bool:
        spec = self.spec
        if spec.select_vlan and vlan not in spec.select_vlan:
            return False
        return (
            spec.select_all
            or in_port in spec.select_src_port
            or not out_ports.isdisjoint(spec.select_dst_port)
        )

    def statistics(self) -> dict[str, int]:
        return {"tx_packets": self.tx_packets, "tx_bytes": self.tx_bytes}


def mirror_actions(
    bridge: BridgeState,
    ingress: PortHandle,
    frame_vid: int | None,
    vlan: int,
    out_ports: set[str],
) -> tuple[list[tuple[Any, int, int]], tuple[MirrorState, ...]]:
    """The copies (port handle, tag op, vid) the bridge's mirrors add to a decision."""
    actions: list[tuple[Any, int, int]] = []
    used: list[MirrorState] = []
    sent: set[tuple[int, int]] = set()
    for mirror in bridge.mirrors:
        if not mirror.selects(ingress.name, out_ports, vlan):
            continue
        spec = mirror.spec
        if spec.output_port is not None:
            targets = [(bridge.ports.get(spec.output_port), vlan or None)]
        elif spec.output_vlan is not None:
            targets = [
                (h, spec.output_vlan)
                for h in bridge.ports.values()
                if h.vlan.carries(spec.output_vlan) and h.ofport not in bridge.normal.mirror_outputs
            ]
        else:
            continue
        for handle, vid in targets:
            if handle is None or handle is ingress or (handle.ofport, vid or 0) in sent:
                continue
            sent.add((handle.ofport, vid or 0))
            actions.append((handle, tag_operation(frame_vid, vid), vid or 0))
        used.append(mirror)
    return actions, tuple(used)


def configure(bridge: BridgeState, specs: tuple[MirrorSpec, ...]) -> None:
    """Replace the bridge's mirrors; keeps counters of mirrors that stay."""
    old = {m.spec.uuid: m for m in bridge.mirrors}
    mirrors = []
    for spec in specs:
        state = old.get(spec.uuid) or MirrorState(spec)
        state.spec = spec
        mirrors.append(state)
    bridge.mirrors = mirrors
    outputs = {s.output_port for s in specs if s.output_port is not None}
    bridge.normal.mirror_outputs = {h.ofport for name, h in bridge.ports.items() if name in outputs}
    bridge.normal.mac_table.generation += 1  # every cached decision is recomputed
