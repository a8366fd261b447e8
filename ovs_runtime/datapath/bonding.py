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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ovs_runtime.bridge.bond_config import BondSpec
from ovs_runtime.datapath import vnet_header
from ovs_runtime.netdev import link
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

    def due(self, now: float) -> bool:
        return now - self.last_poll >= self.spec.poll_ms / 1000.0

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
        return self._choose()

    def _choose(self) -> bool:
        """As OVS: an enabled primary; else the active member while it is enabled; else
        the member stored as active (a restart keeps it); else the first enabled."""
        enabled = [m for m in self.members if m.enabled]
        primary = next((m for m in enabled if m.name == self.spec.primary), None)
        stored = [m for m in enabled if self.preferred_mac and m.mac() == self.preferred_mac]
        if primary is not None:
            chosen: BondMember | None = primary
        elif self.active is not None and self.active.enabled:
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
        """New settings; a new primary takes over at once if enabled. True when the
        active member changed."""
        self.spec = spec
        return self._choose()

    def set_active(self, name: str) -> None:
        """Make member ``name`` active now (``ovs-appctl bond/set-active-member``); it
        must be enabled. It stays active until it fails (or the primary takes over)."""
        member = next((m for m in self.members if m.name == name), None)
        if member is None:
            names = ", ".join(m.name for m in self.members)
            raise KeyError(f"bond {self.port.name} has no member {name} (members: {names})")
        if not member.enabled:
            raise ValueError(f"bond {self.port.name}: member {name} is disabled (no carrier)")
        primary = self.spec.primary
        if primary not in (None, name) and any(
            m.enabled and m.name == primary for m in self.members
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
        """Member port numbers whose frames NORMAL drops: all but the active one."""
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
            "members": {
                m.name: {
                    "ofport": m.handle.ofport,
                    "enabled": m.enabled,
                    "carrier": m.carrier(),
                    "active": m is active,
                    "error": m.handle.error,
                }
                for m in self.members
            },
        }
