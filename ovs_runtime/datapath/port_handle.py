"""A port as the userspace datapath holds it: its netdev, numbers and VLAN config.

A bond (a port with several interfaces) has one handle for the port, whose ``bond``
holds the members, and one handle per member interface (``member_of`` the port's), which
receives on that interface under its own OpenFlow port number."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ovs_runtime.bridge.desired_state import PortSpec
from ovs_runtime.datapath.policing import Policer
from ovs_runtime.netdev.provider import Netdev
from ovs_runtime.ofproto.port_security import PortSecurity
from ovs_runtime.ofproto.vlan import PortVlan

if TYPE_CHECKING:
    from ovs_runtime.datapath.bonding import BondState
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
    member_index: int = 0  # which of the port's interfaces this handle's netdev is
    member_of: PortHandle | None = None  # a bond member's: the bond's handle
    bond: BondState | None = None  # a bond's: its members and active member

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def iface(self) -> str:
        if not self.spec.interfaces:
            return self.spec.name
        return self.spec.interfaces[self.member_index].name

    def interface_handles(self) -> list[PortHandle]:
        """The handles that hold a netdev: a bond's members, else this one."""
        if self.bond is not None:
            return [m.handle for m in self.bond.members]
        return [self]
