"""LACP for bonds (IEEE 802.1AX), the parts Open vSwitch runs.

Each member link exchanges LACPDUs with the other end. What a member last heard is its
partner information, ``current`` for three intervals, then ``expired`` for three more,
then ``defaulted`` (forgotten). As in OVS:

- ``lacp=active`` sends from the start; ``passive`` only once the partner has spoken.
  A member sends every second if its partner asks for the short timeout, else every
  30 s, and at once when what the partner believes of it is wrong.
- ``other_config:lacp-time=fast`` asks the partner for PDUs every second (and times out
  in 3 s); ``slow`` (the default) every 30 s (90 s).
- The lead is a member the partner has in sync if there is one, then the one whose
  link has the best priority, taken from the system with the better priority; the
  members whose partner is the same system and aggregator key as the lead's are
  attached (in sync) and, once the partner reports them in sync too, may carry
  traffic. A member cabled to another switch, or to another aggregator, or looped back
  to this one, stays out.
- Expired information is kept three fast intervals (3 s), whatever ``lacp-time``, then
  forgotten; a member that loses its carrier expires at once.
- A PDU goes out whenever what this end would say of itself changes.
- With nothing negotiated, no member may carry traffic, unless
  ``other_config:lacp-fallback-ab=true``: then the bond runs as active-backup.

The bond (``bonding.BondState``) asks ``may_enable`` per member, sends what
``transmissions`` returns, and hands every received LACPDU to ``receive``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ovs_runtime.packet import lacpdu
from ovs_runtime.packet.ethernet import mac_text
from ovs_runtime.packet.lacpdu import (
    ACTIVITY,
    AGGREGATION,
    COLLECTING,
    DEFAULTED,
    DISTRIBUTING,
    EXPIRED,
    SYNC,
    TIMEOUT,
    Lacpdu,
    LacpInfo,
    MalformedLacpdu,
)

FAST_INTERVAL = 1.0  # seconds between PDUs when the partner asks for the short timeout
SLOW_INTERVAL = 30.0
RX_MULTIPLIER = 3  # intervals without a PDU before the partner's information expires
CURRENT, EXPIRED_STATUS, DEFAULTED_STATUS = "current", "expired", "defaulted"
DEFAULT_PORT_PRIORITY = 65535


@dataclass(frozen=True)
class LacpSettings:
    active: bool
    fast: bool
    system: bytes
    system_priority: int
    fallback_ab: bool


@dataclass(eq=False)
class MemberLacp:
    name: str
    port: int  # the port number in PDUs: the member's OpenFlow port number
    port_priority: int = DEFAULT_PORT_PRIORITY
    status: str = DEFAULTED_STATUS
    partner: LacpInfo = field(default_factory=LacpInfo)
    carrier: bool = False
    attached: bool = False
    rx_deadline: float | None = None
    next_tx: float = 0.0  # when the next PDU is due (0: at once)
    sent_actor: LacpInfo | None = None  # what the last PDU said of this end
    rx_pdus: int = 0
    tx_pdus: int = 0
    rx_errors: int = 0
    last_error: str | None = None


class BondLacp:
    def __init__(self, settings: LacpSettings, members: list[MemberLacp]) -> None:
        self.settings = settings
        self.members = members
        # The aggregation key: the first member's port number, as OVS takes its key
        # member's port id.
        self.key = min(m.port for m in members) & 0xFFFF if members else 0
        self.negotiated = False

    @property
    def interval(self) -> float:
        return FAST_INTERVAL if self.settings.fast else SLOW_INTERVAL

    def actor_info(self, member: MemberLacp) -> LacpInfo:
        state = AGGREGATION
        if self.settings.active:
            state |= ACTIVITY
        if self.settings.fast:
            state |= TIMEOUT
        if member.attached:
            state |= SYNC
        if member.status == DEFAULTED_STATUS:
            state |= DEFAULTED
        elif member.status == EXPIRED_STATUS:
            state |= EXPIRED
        if member.attached or not self.negotiated:
            state |= COLLECTING | DISTRIBUTING
        return LacpInfo(
            self.settings.system_priority,
            self.settings.system,
            self.key,
            member.port_priority,
            member.port & 0xFFFF,
            state,
        )

    def receive(self, member: MemberLacp, frame: bytes, now: float) -> bool:
        """Take a PDU received on ``member``; True when attachments may have changed."""
        try:
            pdu = lacpdu.decode(frame)
        except MalformedLacpdu as exc:
            member.rx_errors += 1
            member.last_error = str(exc)
            return False
        member.rx_pdus += 1
        before = (member.status, member.partner)
        member.partner = pdu.actor
        member.status = CURRENT
        member.rx_deadline = now + RX_MULTIPLIER * self.interval
        changed = before != (member.status, member.partner)
        if changed:
            self.update_attached()
        if pdu.partner != self.actor_info(member):
            member.next_tx = now  # the partner has us wrong: tell it at once
        return changed

    def set_carrier(self, member: MemberLacp, carrier: bool, now: float) -> bool:
        """A member's carrier; losing it expires what it heard. True on a change."""
        if carrier == member.carrier:
            return False
        member.carrier = carrier
        if not carrier and member.status == CURRENT:
            self._expire(member, now)
        member.next_tx = 0.0
        self.update_attached()
        return True

    def configure(self, settings: LacpSettings) -> None:
        """New settings in place (what was heard is kept); every member tells its
        partner at once."""
        if settings != self.settings:
            self.settings = settings
            for member in self.members:
                member.next_tx = 0.0
            self.update_attached()

    def next_event(self) -> float:
        """When a PDU falls due or a partner's information times out (inf: never)."""
        times = [m.rx_deadline for m in self.members if m.rx_deadline is not None]
        times += [m.next_tx for m in self.members if self._may_send(m)]
        return min(times, default=float("inf"))

    def _may_send(self, member: MemberLacp) -> bool:
        """A carrier, and (passive) a partner that spoke first."""
        return member.carrier and (self.settings.active or member.status != DEFAULTED_STATUS)

    def expire(self, now: float) -> bool:
        """Time out members that heard nothing for three intervals; True on a change."""
        changed = False
        for member in self.members:
            if member.rx_deadline is not None and now >= member.rx_deadline:
                self._expire(member, now)
                changed = True
        if changed:
            self.update_attached()
        return changed

    def _expire(self, member: MemberLacp, now: float) -> None:
        member.next_tx = 0.0
        if member.status == CURRENT:
            member.status = EXPIRED_STATUS
            # As 802.1AX and OVS: ask for fast PDUs, no longer count the partner in
            # sync, and give it three fast intervals before forgetting it.
            member.partner = replace(member.partner, state=(member.partner.state | TIMEOUT) & ~SYNC)
            member.rx_deadline = now + RX_MULTIPLIER * FAST_INTERVAL
        else:
            member.status = DEFAULTED_STATUS
            member.partner = LacpInfo()
            member.rx_deadline = None

    def _priority(self, member: MemberLacp) -> tuple[int, bytes, int, int]:
        """As OVS's member priority: the better system's priority and ID, then its
        port priority and number for this link (the better system's choice wins)."""
        ours = (self.settings.system_priority, self.settings.system)
        theirs = (member.partner.system_priority, member.partner.system)
        if ours <= theirs:
            return (*ours, member.port_priority, member.port)
        return (*theirs, member.partner.port_priority, member.partner.port)

    def _lead_rank(self, member: MemberLacp) -> tuple[bool, tuple[int, bytes, int, int]]:
        """Lower is better: a member whose partner has it in sync first, then priority."""
        return (not member.partner.state & SYNC, self._priority(member))

    def _looped(self, member: MemberLacp) -> bool:
        """The member hears this very aggregator: a cable looped back to the bond."""
        partner = member.partner
        return (partner.system, partner.key) == (self.settings.system, self.key)

    def update_attached(self) -> None:
        heard = [
            m
            for m in self.members
            if m.carrier
            and m.status != DEFAULTED_STATUS
            and m.partner.state & AGGREGATION
            and not self._looped(m)
        ]
        self.negotiated = any(m.status != DEFAULTED_STATUS for m in self.members)
        lead = min(heard, key=self._lead_rank, default=None)
        for member in self.members:
            was = member.attached
            if lead is not None:
                member.attached = member in heard and member.partner.same_aggregator(lead.partner)
            else:
                member.attached = (
                    self.settings.fallback_ab and not self.negotiated and member.carrier
                )
            if member.attached != was:
                member.next_tx = 0.0  # its state (in sync or not) goes out at once

    def may_enable(self, member: MemberLacp) -> bool:
        """May the bond put traffic on ``member``?"""
        if not member.attached:
            return False
        if member.status == DEFAULTED_STATUS:
            return self.settings.fallback_ab
        return bool(member.partner.state & SYNC)

    def transmissions(self, now: float) -> list[tuple[MemberLacp, Lacpdu]]:
        """The PDUs due now, one per member at most."""
        due = []
        for member in self.members:
            if not self._may_send(member):
                continue  # no carrier; or passive, and not spoken to
            actor = self.actor_info(member)
            if now < member.next_tx and actor == member.sent_actor:
                continue  # not due, and nothing new to say
            due.append((member, Lacpdu(actor, member.partner)))
            member.sent_actor = actor
            member.tx_pdus += 1
            fast = member.partner.state & TIMEOUT
            member.next_tx = now + (FAST_INTERVAL if fast else SLOW_INTERVAL)
        return due

    def describe(self) -> dict[str, Any]:
        """``ovs-appctl lacp/show``: the settings, and each member's view of both ends."""
        return {
            "status": "negotiated" if self.negotiated else "configured",
            "mode": "active" if self.settings.active else "passive",
            "lacp_time": "fast" if self.settings.fast else "slow",
            "fallback_ab": self.settings.fallback_ab,
            "system_id": mac_text(self.settings.system),
            "system_priority": self.settings.system_priority,
            "aggregation_key": self.key,
            "members": {
                m.name: {
                    "status": m.status,
                    "attached": m.attached,
                    "may_enable": self.may_enable(m),
                    "port_id": m.port,
                    "port_priority": m.port_priority,
                    "actor_state": lacpdu.state_names(self.actor_info(m).state),
                    "partner_system_id": mac_text(m.partner.system),
                    "partner_system_priority": m.partner.system_priority,
                    "partner_key": m.partner.key,
                    "partner_port_id": m.partner.port,
                    "partner_port_priority": m.partner.port_priority,
                    "partner_state": lacpdu.state_names(m.partner.state),
                    "rx_pdus": m.rx_pdus,
                    "tx_pdus": m.tx_pdus,
                    "rx_errors": m.rx_errors,
                    "last_error": m.last_error,
                }
                for m in self.members
            },
        }
