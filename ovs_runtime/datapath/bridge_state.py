"""One bridge inside the userspace datapath: its NORMAL logic, ports and flow cache."""

from __future__ import annotations

from dataclasses import dataclass, field

from ovs_runtime.bridge.desired_state import MirrorSpec
from ovs_runtime.datapath.flow_cache import FlowCache
from ovs_runtime.datapath.mirroring import MirrorState
from ovs_runtime.datapath.port_handle import PortHandle
from ovs_runtime.ofproto.mac_table import DEFAULT_AGING, DEFAULT_SIZE
from ovs_runtime.ofproto.normal import NormalBridge


@dataclass(eq=False)
class BridgeState:
    name: str
    normal: NormalBridge
    ports: dict[str, PortHandle] = field(default_factory=dict)  # by port name
    by_ofport: dict[int, PortHandle] = field(default_factory=dict)
    cache: FlowCache = field(default_factory=FlowCache)
    mirrors: list[MirrorState] = field(default_factory=list)
    mirror_specs: tuple[MirrorSpec, ...] = ()

    def configure(self, other_config: dict[str, str]) -> list[str]:
        """Apply ``mac-aging-time`` and ``mac-table-size``; returns problems to log."""
        problems = []
        aging, size = DEFAULT_AGING, DEFAULT_SIZE
        try:
            aging = float(other_config.get("mac-aging-time", DEFAULT_AGING))
            if aging <= 0:
                raise ValueError
        except ValueError:
            problems.append(
                f"bridge {self.name}: other_config:mac-aging-time must be a "
                f"positive number of seconds; using {DEFAULT_AGING:g}"
            )
            aging = DEFAULT_AGING
        try:
            size = int(other_config.get("mac-table-size", DEFAULT_SIZE))
            if size < 1:
                raise ValueError
        except ValueError:
            problems.append(
                f"bridge {self.name}: other_config:mac-table-size must be a "
                f"positive integer; using {DEFAULT_SIZE}"
            )
            size = DEFAULT_SIZE
        table = self.normal.mac_table
        if (table.aging, table.max_entries) != (aging, size):
            table.configure(aging, size)
        return problems
