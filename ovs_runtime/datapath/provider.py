"""The datapath provider interface: what the bridge layer drives.

The reconciler (``bridge/``) calls these methods with plain specs; a provider makes the
ports exist and forwards between them. ``userspace.UserspaceDatapath`` is the one that
runs everywhere; a switch-chip or kernel-bridge provider implements the same methods
(see PORTING.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ovs_runtime.bridge.desired_state import MirrorSpec, PortSpec
from ovs_runtime.bridge.flow_export_config import IpfixSpec, NetflowSpec, SflowSpec
from ovs_runtime.bridge.flow_rules import FlowRuleSpec


@dataclass
class InterfaceState:
    """What the daemon writes back to the Interface row."""

    ofport: int
    error: str | None
    link_state: str = "down"
    admin_state: str = "down"
    mtu: int | None = None
    ifindex: int | None = None
    mac_in_use: str | None = None
    statistics: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # Interface.status (tunnels)
    lacp_current: bool | None = None  # an LACP bond member's: is its partner's PDU fresh?


class DatapathProvider(Protocol):
    def batch(self) -> AbstractContextManager[object]:
        """Apply the changes made inside as one step: no packet is forwarded while only
        some of a bridge's ports exist (a restart with frames already queued, a bridge
        created with all its ports)."""
        ...

    def add_bridge(
        self, name: str, other_config: dict[str, str], flood_vlans: frozenset[int] = frozenset()
    ) -> None:
        """A bridge with ``other_config`` (MAC table settings) and ``flood_vlans`` (VLANs
        on which NORMAL learns nothing and floods everything, as OVS's column)."""
        ...

    def configure_bridge(
        self, name: str, other_config: dict[str, str], flood_vlans: frozenset[int] = frozenset()
    ) -> None: ...
    def remove_bridge(self, name: str) -> None: ...
    def add_port(
        self,
        bridge: str,
        port: PortSpec,
        ofport: int,
        member_ofports: dict[str, int] | None = None,
    ) -> str | None:
        """Attach a port; returns None, or an error for ``Interface.error``. A port with
        several interfaces is a bond: ``member_ofports`` numbers each interface."""
        ...

    def update_port(
        self,
        bridge: str,
        port: PortSpec,
        ofport: int,
        member_ofports: dict[str, int] | None = None,
    ) -> str | None: ...
    def bond_states(self) -> dict[str, str | None]:
        """Bond port name -> its active member's MAC (None: no member is enabled)."""
        ...

    def remove_port(self, bridge: str, port: str) -> None: ...
    def interface_states(self) -> dict[str, InterfaceState]: ...
    def maintain(self) -> list[str]:
        """Periodic work (re-attach vanished devices, age MACs); returns log lines."""
        ...

    def configure_mirrors(self, bridge: str, mirrors: tuple[MirrorSpec, ...]) -> None:
        """Replace the bridge's mirrors (after its ports are in place)."""
        ...

    def mirror_statistics(self) -> dict[str, dict[str, int]]:
        """Mirror row UUID (text) -> counters, for ``Mirror.statistics``."""
        ...

    def configure_flows(self, bridge: str, fail_mode: str, rules: list[FlowRuleSpec]) -> None:
        """Replace the bridge's flow rules (the full set; unchanged rules keep their
        counters) and set its fail mode."""
        ...

    def flow_statistics(
        self, bridge: str, only: Collection[uuid.UUID] | None = None
    ) -> list[dict[str, Any]]: ...
    def configure_flow_export(
        self,
        bridge: str,
        sflow: SflowSpec | None,
        netflow: NetflowSpec | None,
        ipfix: IpfixSpec | None = None,
    ) -> None:
        """Start, change or stop sFlow sampling, NetFlow accounting and IPFIX sampling
        on a bridge."""
        ...

    def expired_flows(self) -> list[tuple[str, str, str]]:
        """(bridge, rule UUID, "idle"|"hard") of rules that timed out since last asked."""
        ...

    def fdb(self, bridge: str) -> list[dict[str, Any]]: ...
    def fdb_flush(self, bridge: str | None) -> int: ...
    def announce(self, bridge: str, port: str, entries: list[tuple[bytes, int]]) -> int:
        """Announce (MAC, VLAN)s from a port after a VM moved here (RARP)."""
        ...

    def describe(self) -> dict[str, Any]: ...
    def stop(self) -> None: ...
