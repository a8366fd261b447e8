"""The NORMAL action: an 802.1Q learning switch, as OVS's ``xlate_normal`` behaves.

For a frame arriving on a port: find its VLAN (dropping what the port's VLAN mode does
not allow), learn its source MAC on that VLAN, then send it to the learned port for its
destination, or flood it to every other port carrying the VLAN. Nothing is ever sent back
out of the ingress port, and nothing crosses VLANs. As in OVS, nothing goes from one
protected port (``Port.protected``) to another, and on the bridge's ``flood_vlans``
nothing is learned and everything is flooded.

``decide`` returns the outputs as ``(port, vid-or-None)`` pairs; the datapath does the
tag pushing and popping, and caches decisions (see ``datapath.flow_cache``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ovs_runtime.ofproto.mac_table import MacTable
from ovs_runtime.ofproto.vlan import DROP, PortVlan
from ovs_runtime.packet.ethernet import (
    RESERVED_DESTINATIONS,
    VLAN_TPIDS,
    L2Header,
    is_multicast,
)

Outputs = tuple[tuple[int, int | None], ...]


@dataclass
class NormalBridge:
    name: str
    mac_table: MacTable = field(default_factory=MacTable)
    ports: dict[int, PortVlan] = field(default_factory=dict)
    drops: Counter[str] = field(default_factory=Counter)
    config_generation: int = 0
    mesh: set[int] = field(default_factory=set)  # tunnel ports of a full mesh
    protected: set[int] = field(default_factory=set)  # never forward between two of these
    flood_vlans: frozenset[int] = frozenset()  # no learning: always flood
    mirror_outputs: set[int] = field(default_factory=set)  # no part in switching
    last_drop: str = ""  # the reason of the latest DROP, for the pipeline and its trace
    bundle_of: dict[int, int] = field(default_factory=dict)  # bond member -> the bond
    bond_backups: set[int] = field(default_factory=set)  # members whose frames are dropped
    forward_bpdu: bool = False  # forward frames to reserved addresses (other_config)

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1
        self.last_drop = reason

    def invalidate(self) -> None:
        """Something every cached decision may depend on changed (rules, fail mode)."""
        self.mac_table.generation += 1

    def set_port(
        self, ofport: int, vlan: PortVlan, mesh: bool = False, protected: bool = False
    ) -> None:
        if (
            self.ports.get(ofport) != vlan
            or (ofport in self.mesh) != mesh
            or (ofport in self.protected) != protected
        ):
            self.ports[ofport] = vlan
            for members, wanted in ((self.mesh, mesh), (self.protected, protected)):
                if wanted:
                    members.add(ofport)
                else:
                    members.discard(ofport)
            self.config_generation += 1
            self.mac_table.generation += 1

    def set_flood_vlans(self, vlans: frozenset[int]) -> None:
        """VLANs on which nothing is learned (what was learned there is forgotten)."""
        if vlans != self.flood_vlans:
            self.flood_vlans = frozenset(vlans)
            self.mac_table.forget_vlans(self.flood_vlans)
            self.config_generation += 1
            self.mac_table.generation += 1

    def set_forward_bpdu(self, forward: bool) -> None:
        """``other_config:forward-bpdu``: whether frames to reserved addresses (STP,
        LACP, LLDP...) are switched like any multicast instead of dropped."""
        if forward != self.forward_bpdu:
            self.forward_bpdu = forward
            self.config_generation += 1
            self.mac_table.generation += 1

    def set_bond(self, bundle: int, members: set[int], backups: set[int]) -> None:
        """Frames from ``members`` are the bond ``bundle``'s; those from ``backups``
        (an active-backup bond's standby links) are dropped, as in OVS."""
        for member in [m for m, b in self.bundle_of.items() if b == bundle]:
            del self.bundle_of[member]
            self.bond_backups.discard(member)
        for member in members:
            self.bundle_of[member] = bundle
        self.bond_backups |= backups
        self.config_generation += 1
        self.mac_table.generation += 1

    def remove_port(self, ofport: int) -> None:
        self.mesh.discard(ofport)
        self.protected.discard(ofport)
        if self.ports.pop(ofport, None) is not None:
            self.mac_table.forget_port(ofport)
            self.config_generation += 1

    @property
    def generation(self) -> int:
        """Changes whenever any forwarding decision could: MAC table or port config.
        (Configuration changes bump the MAC table's counter, so one int says it all.)"""
        return self.mac_table.generation

    def input_vlan(self, in_port: int, hdr: L2Header) -> int:
        """The frame's VLAN on this bridge, or ``DROP`` (counted)."""
        if in_port in self.mirror_outputs:
            self._drop("mirror-output-port")
            return DROP
        cfg = self.ports.get(in_port)
        if cfg is None:
            self._drop("unknown-port")
            return DROP
        vlan = cfg.input_vlan(hdr.vlan)
        if vlan == DROP:
            self._drop("vlan-violation")
            return DROP
        # A frame accepted as untagged (or priority-tagged) must not hide a VLAN tag
        # behind the first: that is how double-tagging hops VLANs.
        untagged_in = hdr.vlan is None or hdr.vlan == 0
        if untagged_in and cfg.mode != "trunk":
            inner = hdr.ethertype
            if inner in VLAN_TPIDS:
                self._drop("stacked-vlan")
                return DROP
        return vlan

    def decide(
        self, in_port: int, hdr: L2Header, now: float, learn: bool = True
    ) -> tuple[int, Outputs]:
        """``learn=False`` (a trace) decides the same way without changing the table."""
        if in_port in self.bundle_of:
            if in_port in self.bond_backups:
                self._drop("bond-backup-member")
                return DROP, ()
            in_port = self.bundle_of[in_port]
        vlan = self.input_vlan(in_port, hdr)
        if vlan == DROP:
            return DROP, ()
        if hdr.dst in RESERVED_DESTINATIONS and not self.forward_bpdu:
            # As OVS: a bridge never forwards these (nor learns from them), unless told to.
            self._drop("reserved-destination")
            return DROP, ()
        learning = vlan not in self.flood_vlans
        if not is_multicast(hdr.src):
            if learn and learning:
                self.mac_table.learn(vlan, hdr.src, in_port, now)
        else:
            self._drop("multicast-source")
            return DROP, ()
        if not is_multicast(hdr.dst) and learning:
            out = self.mac_table.lookup(vlan, hdr.dst, now)
            if out is not None:
                if out == in_port:
                    return vlan, ()  # the destination is behind the ingress port
                cfg = self.ports.get(out)
                if in_port in self.mesh and out in self.mesh:
                    return vlan, ()  # split horizon: the sender reaches it directly
                if in_port in self.protected and out in self.protected:
                    self._drop("protected-ports")
                    return vlan, ()
                if cfg is not None and cfg.carries(vlan):
                    return vlan, ((out, cfg.output_tag(vlan)),)
        return vlan, self.flood(in_port, vlan)

    def flood(self, in_port: int, vlan: int) -> Outputs:
        # Split horizon: a frame that came over a mesh tunnel already reached every
        # other tunnel endpoint from its source, so it never goes back into the mesh.
        from_mesh = in_port in self.mesh
        from_protected = in_port in self.protected
        return tuple(
            (port, cfg.output_tag(vlan))
            for port, cfg in sorted(self.ports.items())
            if port != in_port
            and cfg.carries(vlan)
            and not (from_mesh and port in self.mesh)
            and not (from_protected and port in self.protected)
            and port not in self.mirror_outputs
        )
