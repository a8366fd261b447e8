"""Port security (anti-spoofing): which source addresses a port may send from.

A port's ``port_security`` column holds entries in OVN's syntax, one per MAC:

    "02:00:00:00:00:01"                          only this source MAC
    "02:00:00:00:00:01 198.51.100.11 2001:db8::11"   and only these IPv4/IPv6 sources

With any entry present, a frame must come from a listed MAC; if that MAC's entry lists
addresses, its IPv4 packets must come from one of the IPv4 addresses (a prefix allows a
range), ARP must carry the MAC and one of those addresses as sender, and IPv6 must come
from a listed IPv6 address or be link-local (fe80::/10) or the unspecified address
(duplicate address detection). DHCP discovery (0.0.0.0 to 255.255.255.255, UDP port 67)
is allowed so a VM can still obtain its address. Everything else is dropped and counted.

IPv6 Neighbour Discovery is ARP's counterpart, and checked like it (``nd_violation``):
a Neighbour Solicitation's source link-layer address option, and a Neighbour
Advertisement's target link-layer address option, must carry the port's MAC, and an
advertisement's target must be one of the port's IPv6 addresses or link-local. So a VM
cannot answer for another VM's address. ND is not cached: the datapath checks these
frames one by one, before the caches (they are few).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.flow_match import FlowSyntaxError, parse_mac


class PortSecurityError(ValueError):
    pass


ND_SOLICIT, ND_ADVERT = 135, 136
ICMPV6 = 58
IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options
IPV6_FRAGMENT = 44
OPT_SOURCE_LL, OPT_TARGET_LL = 1, 2


def _nd_message(frame: bytes) -> tuple[int, int, int] | None:
    """(ICMPv6 type, its offset, fragment offset or -1 if not fragmented) for an IPv6
    frame carrying ICMPv6 (under up to two VLAN tags), else None."""
    off = 14
    while frame[off - 2 : off] in fk.VLAN_TPIDS and off < 22:
        off += 4
    if frame[off - 2 : off] != b"\x86\xdd" or len(frame) < off + 40:
        return None
    next_header, pos, fragment = frame[off + 6], off + 40, -1
    for _ in range(8):
        if next_header in IPV6_EXTENSIONS and len(frame) >= pos + 8:
            next_header, pos = frame[pos], pos + (frame[pos + 1] + 1) * 8
        elif next_header == IPV6_FRAGMENT and len(frame) >= pos + 8:
            fragment = int.from_bytes(frame[pos + 2 : pos + 4], "big") >> 3
            next_header, pos = frame[pos], pos + 8
        else:
            break
    if next_header != ICMPV6 or len(frame) <= pos:
        return None
    return frame[pos], pos, fragment


@dataclass(frozen=True)
class AllowedSource:
    mac: int
    ipv4: tuple[tuple[int, int], ...] = ()  # (network, mask)
    ipv6: tuple[tuple[int, int], ...] = ()
    restrict_ip: bool = False  # any address listed: IP sources are checked


@dataclass(frozen=True)
class PortSecurity:
    entries: tuple[AllowedSource, ...] = field(default_factory=tuple)
    uses_l3: bool = False

    def check(self, key: fk.Key, wildcards: list[int]) -> str | None:
        """None if the frame may pass, else the reason (a drop counter name)."""
        wildcards[fk.IN_PORT] = fk.FULL[fk.IN_PORT]
        wildcards[fk.DL_SRC] = fk.FULL[fk.DL_SRC]
        entry = next((e for e in self.entries if e.mac == key[fk.DL_SRC]), None)
        if entry is None:
            return "port-security-mac"
        if not entry.restrict_ip:
            return None
        wildcards[fk.DL_TYPE] = 0xFFFF
        dl_type = key[fk.DL_TYPE]
        if dl_type == fk.ETH_IP:
            wildcards[fk.NW_SRC] = fk.FULL[fk.NW_SRC]
            src = key[fk.NW_SRC]
            if any(src & mask == net for net, mask in entry.ipv4):
                return None
            if src == 0:
                for index in (fk.NW_DST, fk.NW_PROTO, fk.TP_DST):
                    wildcards[index] = fk.FULL[index]
                if key[fk.NW_DST] == 0xFFFFFFFF and key[fk.NW_PROTO] == 17 and key[fk.TP_DST] == 67:
                    return None
            return "port-security-ip"
        if dl_type in (fk.ETH_ARP, fk.ETH_RARP):
            wildcards[fk.NW_SRC] = fk.FULL[fk.NW_SRC]
            wildcards[fk.ARP_SHA] = fk.FULL[fk.ARP_SHA]
            if key[fk.ARP_SHA] != entry.mac:
                return "port-security-arp"
            spa = key[fk.NW_SRC]
            if spa == 0 or any(spa & mask == net for net, mask in entry.ipv4):
                return None  # 0.0.0.0: an ARP probe
            return "port-security-arp"
        if dl_type == fk.ETH_IPV6:
            wildcards[fk.IPV6_SRC] = fk.FULL[fk.IPV6_SRC]
            src = key[fk.IPV6_SRC]
            if src == 0 or src >> 118 == 0x3FA:  # :: or fe80::/10
                return None
            if any(src & mask == net for net, mask in entry.ipv6):
                return None
            return "port-security-ip"
        return None  # other EtherTypes carry no IP source


def nd_violation(security: PortSecurity, frame: bytes) -> str | None:
    """ "port-security-nd" if ``frame`` is a Neighbour Solicitation or Advertisement the
    port may not send (see the module's docstring), else None."""
    message = _nd_message(frame)
    if message is None:
        return None
    icmp_type, pos, fragment = message
    if fragment > 0 or icmp_type not in (ND_SOLICIT, ND_ADVERT):
        return None  # (a later fragment starts with no ICMPv6 type)
    if fragment == 0:
        return "port-security-nd"  # ND must not be fragmented (RFC 6980)
    entry = next((e for e in security.entries if e.mac.to_bytes(6, "big") == frame[6:12]), None)
    if entry is None or not entry.restrict_ip:
        return None  # the MAC check in the pipeline decides
    if len(frame) < pos + 24:
        return "port-security-nd"  # too short to hold its target: malformed
    if icmp_type == ND_ADVERT:
        target = int.from_bytes(frame[pos + 8 : pos + 24], "big")
        if target >> 118 != 0x3FA and not any(target & m == n for n, m in entry.ipv6):
            return "port-security-nd"
    wanted = OPT_SOURCE_LL if icmp_type == ND_SOLICIT else OPT_TARGET_LL
    option = pos + 24
    while option + 2 <= len(frame):
        length = frame[option + 1] * 8
        if length == 0 or option + length > len(frame):
            return "port-security-nd"  # malformed options: receivers would drop it too
        if frame[option] == wanted and frame[option + 2 : option + 8] != frame[6:12]:
            return "port-security-nd"
        option += length
    return None


def parse_port_security(values: list[str], what: str) -> PortSecurity:
    entries = []
    for text in values:
        words = text.split()
        if not words:
            raise PortSecurityError(f"{what}: empty port_security entry")
        try:
            mac = parse_mac(words[0], f"{what} port_security")
        except FlowSyntaxError as exc:
            raise PortSecurityError(
                f"{exc}; each entry is 'MAC [IPv4[/prefix]|IPv6[/prefix] ...]'"
            ) from None
        ipv4: list[tuple[int, int]] = []
        ipv6: list[tuple[int, int]] = []
        for word in words[1:]:
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                raise PortSecurityError(
                    f"{what} port_security: {word!r} is not an IPv4 or IPv6 address or prefix"
                ) from None
            pair = (int(net.network_address), int(net.netmask))
            (ipv4 if net.version == 4 else ipv6).append(pair)
        entries.append(AllowedSource(mac, tuple(ipv4), tuple(ipv6), bool(words[1:])))
    return PortSecurity(tuple(entries), any(e.restrict_ip for e in entries))
