"""One bridge inside the userspace datapath: its NORMAL logic, flow rules, ports and
decision caches. It is also the ``PipelineEnv`` the flow pipeline asks about ports."""

from __future__ import annotations

from dataclasses import dataclass, field

from ovs_runtime.bridge.desired_state import MirrorSpec
from ovs_runtime.datapath.bridge_flows import BridgeFlows
from ovs_runtime.datapath.flow_cache import FlowCache
from ovs_runtime.datapath.flow_export import NetflowCache, SflowAgent
from ovs_runtime.datapath.ipfix_export import IpfixAgent
from ovs_runtime.datapath.mirroring import MirrorState
from ovs_runtime.datapath.port_handle import PortHandle
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.mac_table import DEFAULT_AGING, DEFAULT_SIZE
from ovs_runtime.ofproto.normal import NormalBridge
from ovs_runtime.ofproto.port_security import PortSecurity
from ovs_runtime.ofproto.vlan import DROP
from ovs_runtime.packet.ethernet import VLAN_TPIDS, L2Header


@dataclass(eq=False)
class BridgeState:
    name: str
    normal: NormalBridge
    ports: dict[str, PortHandle] = field(default_factory=dict)  # by port name
    by_ofport: dict[int, PortHandle] = field(default_factory=dict)  # by interface's number
    bundles: dict[int, PortHandle] = field(default_factory=dict)  # bonds, by NORMAL's number
    cache: FlowCache = field(default_factory=FlowCache)
    mirrors: list[MirrorState] = field(default_factory=list)
    mirror_specs: tuple[MirrorSpec, ...] = ()
    flows: BridgeFlows = field(default_factory=lambda: BridgeFlows(0.0))
    security: dict[int, PortSecurity] = field(default_factory=dict)  # by ofport
    now: float = 0.0  # the time of the translation in progress (for NORMAL's learning)
    normal_vlan: int = -1  # the VLAN the last NORMAL action switched in (-1: none)
    normal_learned: tuple[int, bytes, int] | None = None  # what it learned: VLAN, MAC, port
    sflow: SflowAgent | None = None
    netflow: NetflowCache | None = None
    ipfix: IpfixAgent | None = None

    @property
    def deep(self) -> bool:
        """Decisions may depend on more than the Ethernet header."""
        return (
            self.flows.deep
            or self.netflow is not None  # flows are told apart by their L3/L4 headers
            or any(s.uses_l3 for s in self.security.values())
        )

    @property
    def relay_ok(self) -> bool:
        """Cache hits may skip the general path (``ring_relay``): nothing needs to see
        every frame."""
        return self.sflow is None and self.netflow is None and self.ipfix is None

    def port_numbers(self) -> dict[str, int]:
        """Names flow rules may use: ports, and a bond's interfaces (as in OVS, rules
        name a bond's members, not the bond)."""
        numbers = {}
        for name, handle in self.ports.items():
            for member in handle.interface_handles():
                numbers[member.iface if handle.bond else name] = member.ofport
        return numbers

    def interface_handles(self) -> list[PortHandle]:
        return [m for h in self.ports.values() for m in h.interface_handles()]

    # -- PipelineEnv ----------------------------------------------------------------

    def port_number(self, name: str) -> int | None:
        handle = self.ports.get(name)
        if handle is not None and handle.bond is None:
            return handle.ofport
        return self.port_numbers().get(name)

    def port_name(self, ofport: int) -> str:
        handle = self.by_ofport.get(ofport) or self.bundles.get(ofport)
        if handle is None:
            return str(ofport)
        return handle.iface if handle.member_of is not None else handle.name

    def all_ports(self) -> list[int]:
        return sorted(self.by_ofport)

    def flood_ports(self) -> list[int]:
        return [p for p in sorted(self.by_ofport) if p not in self.normal.mirror_outputs]

    def normal_action(
        self, key: fk.Key, learn: bool
    ) -> tuple[list[tuple[int, int | None]], str | None]:
        tci = key[fk.VLAN_TCI]
        hdr = L2Header(
            key[fk.DL_DST].to_bytes(6, "big"),
            key[fk.DL_SRC].to_bytes(6, "big"),
            tci & 0x0FFF if tci else None,
            tci >> 13 & 7,
            key[fk.DL_TYPE],
            key[fk.DL_TYPE] in VLAN_TPIDS,
        )
        vlan, outputs = self.normal.decide(key[fk.IN_PORT], hdr, self.now, learn)
        if vlan == DROP:
            return [], self.normal.last_drop
        self.normal_vlan = vlan
        if learn and not hdr.src[0] & 1 and vlan not in self.normal.flood_vlans:
            port = self.normal.bundle_of.get(key[fk.IN_PORT], key[fk.IN_PORT])
            self.normal_learned = (vlan, hdr.src, port)  # (kept fresh by hits)
        return list(outputs), None

    def port_security(self, ofport: int) -> PortSecurity | None:
        return self.security.get(ofport)

    # -- configuration ----------------------------------------------------------------

    def configure(self, other_config: dict[str, str]) -> list[str]:
        """Apply ``mac-aging-time``, ``mac-table-size`` and ``forward-bpdu``; returns
        problems to log."""
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
        forward_bpdu = other_config.get("forward-bpdu", "false").lower()
        if forward_bpdu not in ("true", "false"):
            problems.append(
                f"bridge {self.name}: other_config:forward-bpdu must be true or false, "
                f"not {other_config['forward-bpdu']!r}; using false"
            )
        self.normal.set_forward_bpdu(forward_bpdu == "true")
        table = self.normal.mac_table
        if (table.aging, table.max_entries) != (aging, size):
            table.configure(aging, size)
        return problems
