"""A port as the userspace datapath holds it: its netdev, numbers and VLAN config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ovs_runtime.bridge.desired_state import PortSpec
from ovs_runtime.datapath.policing import Policer
from ovs_runtime.netdev.provider import Netdev
from ovs_runtime.ofproto.port_security import PortSecurity
from ovs_runtime.ofproto.vlan import PortVlan

if TYPE_CHECKING:
    from ovs_runtime.datapath.bridge_state import BridgeState


@dataclass(eq=False)
class PortHandle:
    bridge: BridgeState
    spec: PortSpec
    ofport: int
    kind: str  # the Interface type: "", "system", "internal", "tap", "patch"
    netdev: Netdev | None = None
    error: str | None = None
    vlan: PortVlan = field(default_factory=lambda: PortVlan("trunk", None, frozenset()))
    policer: Policer | None = None
    tun_id: int = 0  # the VNI a tunnel port's frames carry, for tun_id matches
    tun_src: int = 0  # the IPv4 remote they come from, for tun_src matches
    nd_guard: PortSecurity | None = None  # its IP-restricting port security: ND checked

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def iface(self) -> str:
        return self.spec.interfaces[0].name if self.spec.interfaces else self.spec.name
