"""Active-backup bonds in the userspace datapath.

A bond is one port (one VLAN config, one entry in NORMAL's MAC table) over several
interfaces. Each member interface has its own netdev and OpenFlow port number, and a
``PortHandle`` of its own that receives. NORMAL outputs to the bond's handle; compiled
outputs become the active member's handle (so a failover re-makes every cached
decision), and the bond handle's ``netdev`` is the active member's for what sends to the
port directly (mirrors, announcements, learning packets).

As in OVS's ``active-backup`` mode:
- a member is enabled once its carrier has been up for ``bond_updelay`` ms and disabled
  once it has been down for ``bond_downdelay`` ms (a vanished device is down at once);
- an enabled ``bond-primary`` is active; otherwise the active member stays while it is
  enabled; otherwise the member recorded in ``bond_active_slave`` (a restart keeps it),
  or the first enabled member by name. With no member enabled, one whose carrier is up
  is enabled at once;
- frames that arrive on a backup member are dropped (the upstream switch floods to
  every link, and the bond must see each frame once);
- after a change of active member, a RARP "learning packet" for every MAC the bridge
  learned elsewhere goes out of the new active member, so upstream switches move those
  MACs to the new link at once rather than when they next send.

With ``lacp=active`` or ``passive`` (``datapath.lacp``) a member must also be in the
aggregate LACP negotiated (attached, and in sync at the other end) to be enabled. The
bond still transmits on one active member, but receives on every enabled member: the
other end spreads its traffic over the whole aggregate, as 802.1AX lets it. With
nothing negotiated, no member is enabled unless ``lacp-fallback-ab`` is true, which
makes the bond plain active-backup until LACP speaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ovs_runtime.bridge.bond_config import BondSpec
from ovs_runtime.datapath import vnet_header
from ovs_runtime.datapath.lacp import BondLacp, LacpSettings, MemberLacp
from ovs_runtime.netdev import link
from ovs_runtime.packet import lacpdu
from ovs_runtime.packet.announce import rarp_announcement

if TYPE_CHECKING:
    from ovs_runtime.datapath.port_handle import PortHandle

BUNDLE_BASE = 1 << 20  # NORMAL's number for a bond: above every OpenFlow port number


@dataclass(eq=False)
class BondMember:
    handle: PortHandle  # the member's own: netdev, OpenFlow port number, receive side
    enabled: bool = False
    carrier_since: float | None = None  # when the carrier last differed from ``enabled``
    vanished: bool = False  # its device is gone (not merely down): disabled at once
    lacp: MemberLacp | None = None

    @property
    def name(self) -> str:
        return self.handle.iface

    def mac(self) -> str | None:
        netdev = self.handle.netdev
        return netdev.status().mac if netdev is not None else None

    def carrier(self) -> bool:
        netdev = self.handle.netdev
        return netdev is not None and netdev.status().link_state == "up"


@dataclass(eq=False)
class BondState:
    port: PortHandle  # the bond's own handle
    members: list[BondMember]
    spec: BondSpec
    active: BondMember | None = None
    last_poll: float = float("-inf")
    failovers: int = 0
    learning_packets: int = 0
    events: list[str] = field(default_factory=list)  # for the daemon's log
    preferred_mac: str | None = None  # the stored active member's MAC, kept at start
    lacp: BondLacp | None = None
    bridge_mac: bytes = bytes(6)  # LACP's system ID unless lacp-system-id names another
    # What NORMAL was last told: the members it takes frames from, and those it drops.
    admitted: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())
    announced: BondMember | None = None  # the member learning packets last went out of

    def start_lacp(self, bridge_mac: bytes) -> None:
        """LACP as the spec asks (nothing when lacp=off)."""
        self.bridge_mac = bridge_mac
        self._configure_lacp()

    def _lacp_settings(self) -> LacpSettings:
        spec = self.spec
        system = self.bridge_mac
        if spec.lacp_system_id:
            system = bytes.fromhex(spec.lacp_system_id.replace(":", ""))
        return LacpSettings(
            spec.lacp == "active",
            spec.lacp_fast,
            system,
            spec.lacp_system_priority,
            spec.lacp_fallback_ab,
        )

    def _configure_lacp(self) -> None:
        """Start, stop or re-set LACP in place: what members heard is kept."""
        if self.spec.lacp == "off":
            self.lacp = None
            for member in self.members:
                member.lacp = None
        elif self.lacp is None:
            for member in self.members:
                member.lacp = MemberLacp(member.name, port=member.handle.ofport)
            self.lacp = BondLacp(self._lacp_settings(), [m.lacp for m in self.members if m.lacp])
        else:
            self.lacp.configure(self._lacp_settings())

    def usable(self, member: BondMember) -> bool:
        """Enabled, and (with LACP) in the negotiated aggregate."""
        if not member.enabled:
            return False
        return self.lacp is None or member.lacp is None or self.lacp.may_enable(member.lacp)

    def lacp_received(self, member: BondMember, frame: bytes, now: float) -> None:
        if self.lacp is not None and member.lacp is not None:
            if self.lacp.receive(member.lacp, frame, now):
                self.last_poll = float("-inf")  # choose again on the next loop iteration

    def lacp_frames(self, now: float) -> list[tuple[BondMember, bytes]]:
        """The LACPDUs due now, as frames from each member's own MAC."""
        if self.lacp is None:
            return []
        by_state = {id(m.lacp): m for m in self.members}
        frames = []
        for state, pdu in self.lacp.transmissions(now):
            member = by_state[id(state)]
            mac = member.mac() or "00:00:00:00:00:00"
            frames.append((member, lacpdu.encode(bytes.fromhex(mac.replace(":", "")), pdu)))
        return frames

    def due(self, now: float) -> bool:
        if now - self.last_poll >= self.spec.poll_ms / 1000.0:
            return True
        # LACP's timers do not wait for a slow miimon poll.
        return self.lacp is not None and self.lacp.next_event() <= now

    def poll(self, now: float) -> bool:
        """Read every member's carrier, apply the delays and choose the active member;
        True when the active member changed."""
        self.last_poll = now
        for member in self.members:
            up = member.carrier()
            if up == member.enabled:
                member.carrier_since = None
                continue
            if member.carrier_since is None:
                member.carrier_since = now
            delay = self.spec.updelay_ms if up else self.spec.downdelay_ms
            gone = member.handle.netdev is None and (
                member.vanished or not link.exists(member.name)
            )
            if gone or (now - member.carrier_since) * 1000 >= delay:
                member.enabled, member.carrier_since = up, None
                self.events.append(
                    f"bond {self.port.name}: member {member.name} {'enabled' if up else 'disabled'}"
                )
        if self.lacp is not None:
            for member in self.members:
                if member.lacp is not None:
                    self.lacp.set_carrier(member.lacp, member.carrier(), now)
            self.lacp.expire(now)
        if not any(m.enabled for m in self.members):
            # Nothing else would carry traffic: skip updelay (the stored active first).
            stored = [
                m for m in self.members if self.preferred_mac and m.mac() == self.preferred_mac
            ]
            for member in stored + [m for m in self.members if m not in stored]:
                if member.carrier_since is not None and member.carrier():
                    member.enabled, member.carrier_since = True, None
                    self.events.append(
                        f"bond {self.port.name}: member {member.name} enabled (no other "
                        "member is, so without waiting for updelay)"
                    )
                    break
        return self._choose() | self._admission_changed()

    def _admission_changed(self) -> bool:
        """Did the members NORMAL takes frames from, or drops frames from, change?"""
        usable = frozenset(m.handle.ofport for m in self.members if self.usable(m))
        admitted = (usable, frozenset(self.backup_ofports()))
        changed = admitted != self.admitted
        self.admitted = admitted
        return changed

    def _choose(self) -> bool:
        """As OVS: an enabled primary; else the active member while it is enabled; else
        the member stored as active (a restart keeps it); else the first enabled."""
        enabled = [m for m in self.members if self.usable(m)]
        primary = next((m for m in enabled if m.name == self.spec.primary), None)
        stored = [m for m in enabled if self.preferred_mac and m.mac() == self.preferred_mac]
        if primary is not None:
            chosen: BondMember | None = primary
        elif self.active is not None and self.usable(self.active):
            chosen = self.active
        else:
            chosen = stored[0] if stored else (enabled[0] if enabled else None)
        if chosen is not None:
            self.preferred_mac = None  # (only the first choice follows the stored one)
        if chosen is self.active:
            self.port.netdev = chosen.handle.netdev if chosen else None
            return False
        self.events.append(
            f"bond {self.port.name}: active member "
            f"{chosen.name if chosen else '(none)'}, was "
            f"{self.active.name if self.active else '(none)'}"
        )
        if self.active is not None:
            self.failovers += 1  # (the first choice, at start, is not a failover)
        self.active = chosen
        self.port.netdev = chosen.handle.netdev if chosen else None
        return True

    def reconfigure(self, spec: BondSpec) -> bool:
        """New settings, LACP's included, in place; a new primary takes over at once if
        enabled. True when the active member, or what NORMAL admits, changed."""
        self.spec = spec
        self._configure_lacp()
        return self._choose() | self._admission_changed()

    def set_active(self, name: str) -> None:
        """Make member ``name`` active now (``ovs-appctl bond/set-active-member``); it
        must be enabled. It stays active until it fails (or the primary takes over)."""
        member = next((m for m in self.members if m.name == name), None)
        if member is None:
            names = ", ".join(m.name for m in self.members)
            raise KeyError(f"bond {self.port.name} has no member {name} (members: {names})")
        if not self.usable(member):
            why = "no carrier" if not member.enabled else "not in the LACP aggregate"
            raise ValueError(f"bond {self.port.name}: member {name} is disabled ({why})")
        primary = self.spec.primary
        if primary not in (None, name) and any(
            self.usable(m) and m.name == primary for m in self.members
        ):
            raise ValueError(
                f"bond {self.port.name}: primary {primary} is enabled and takes traffic back "
                f"at once; clear other_config:bond-primary first to make {name} active"
            )
        if member is not self.active:
            self.events.append(
                f"bond {self.port.name}: active member {name} (set by hand), was "
                f"{self.active.name if self.active else '(none)'}"
            )
            self.active = member
            self.port.netdev = member.handle.netdev
            self.failovers += 1

    def backup_ofports(self) -> set[int]:
        """Member port numbers whose frames NORMAL drops: all but the active one; with
        LACP negotiated, those outside the aggregate (the other end uses them all)."""
        if self.lacp is not None and self.lacp.negotiated:
            return {m.handle.ofport for m in self.members if not self.usable(m)}
        return {m.handle.ofport for m in self.members if m is not self.active}

    def learning_frames(self, entries: list[tuple[int, bytes, int]]) -> list[tuple[bytes, bytes]]:
        """RARPs for (VLAN, MAC, port) entries learned elsewhere than on this bond, in
        the bond's tagging."""
        vlan = self.port.vlan
        return [
            (vnet_header.EMPTY, rarp_announcement(mac, vlan.output_tag(vid)))
            for vid, mac, port in entries
            if port != self.port.ofport and vlan.carries(vid)
        ]

    def active_mac(self) -> str | None:
        """``Port.bond_active_slave``: the active member's MAC, as OVS writes it."""
        return self.active.mac() if self.active is not None else None

    def describe(self) -> dict[str, Any]:
        active = self.active
        return {
            "bond_mode": self.spec.mode,
            "updelay": self.spec.updelay_ms,
            "downdelay": self.spec.downdelay_ms,
            "primary": self.spec.primary,
            "active_member": active.name if active else None,
            "active_member_mac": self.active_mac(),
            "failovers": self.failovers,
            "learning_packets": self.learning_packets,
            "lacp": self.spec.lacp,
            "lacp_status": (
                "off" if self.lacp is None else self.lacp.describe()["status"]
            ),
            "members": {
                m.name: {
                    "ofport": m.handle.ofport,
                    "enabled": self.usable(m),
                    "lacp_current": None if m.lacp is None else m.lacp.status == "current",
                    "carrier": m.carrier(),
                    "active": m is active,
                    "error": m.handle.error,
                }
                for m in self.members
            },
        }
