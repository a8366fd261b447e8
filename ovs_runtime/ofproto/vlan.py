"""A port's VLAN configuration, with Open vSwitch's semantics (ovs-vswitchd.conf.db(5),
Port table, "VLAN Configuration").

- ``access`` (the default when ``tag`` is set): untagged frames join VLAN ``tag``;
  frames tagged with a non-zero VID are dropped; output is untagged, VLAN ``tag`` only.
- ``trunk`` (the default otherwise): tagged frames whose VID is in ``trunks`` (all
  VLANs if empty) are accepted; untagged frames are VLAN 0; output keeps the tag
  (untagged for VLAN 0).
- ``native-untagged`` / ``native-tagged``: like trunk, and untagged input joins the
  native VLAN ``tag``, which is output untagged / tagged respectively.

A priority-tagged frame (VID 0) counts as untagged, as in OVS.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("access", "trunk", "native-tagged", "native-untagged")
DROP = -1


@dataclass(frozen=True, slots=True)
class PortVlan:
    mode: str
    tag: int | None
    trunks: frozenset[int]

    @staticmethod
    def from_config(vlan_mode: str | None, tag: int | None, trunks: tuple[int, ...]) -> PortVlan:
        mode = vlan_mode or ("access" if tag is not None else "trunk")
        if mode in ("native-tagged", "native-untagged") and tag is None:
            mode = "trunk"  # no native VLAN given: OVS treats the port as a trunk
        return PortVlan(mode, tag if tag is not None else None, frozenset(trunks))

    def carries(self, vlan: int) -> bool:
        """May this port carry ``vlan`` at all (input or output)?"""
        if self.mode == "access":
            return vlan == self.tag
        if self.mode != "trunk" and vlan == self.tag:
            return True
        return not self.trunks or vlan in self.trunks

    def input_vlan(self, frame_vid: int | None) -> int:
        """The VLAN an arriving frame belongs to, or ``DROP``."""
        untagged = frame_vid is None or frame_vid == 0
        if self.mode == "access":
            return self.tag if untagged and self.tag is not None else DROP
        if untagged:
            if self.mode == "trunk":
                return 0 if self.carries(0) else DROP
            return self.tag if self.tag is not None else DROP
        assert frame_vid is not None
        return frame_vid if self.carries(frame_vid) else DROP

    def output_tag(self, vlan: int) -> int | None:
        """The VID to tag with on output (None: untagged); only for carried VLANs."""
        if self.mode == "access":
            return None
        if self.mode == "native-untagged" and vlan == self.tag:
            return None
        if vlan == 0:
            return None
        return vlan
