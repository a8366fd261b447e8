"""Match fields in ovs-ofctl syntax: parsing ``name=value[/mask]`` and shorthands such as
``tcp``, checking prerequisites, and printing a match back in canonical form.

A ``Match`` holds ``(value, mask)`` per flow-key position (see ``flow_key``) and the
ingress port by *name*: port numbers are ours to allocate and change when a port moves
between hosts, names are what the operator wrote. ``in_port`` given as a number is turned
into a name by the caller's resolver.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from ovs_runtime.ofproto import flow_key as fk


class FlowSyntaxError(ValueError):
    """A flow, match or action the syntax does not allow; the message names the token."""


PortResolver = Callable[[str], str]

IP_TYPES = frozenset({fk.ETH_IP, fk.ETH_IPV6})
ARP_TYPES = frozenset({fk.ETH_ARP, fk.ETH_RARP})

# shorthand -> (dl_type, nw_proto or None)
SHORTHANDS: dict[str, tuple[int, int | None]] = {
    "ip": (fk.ETH_IP, None),
    "ipv6": (fk.ETH_IPV6, None),
    "arp": (fk.ETH_ARP, None),
    "rarp": (fk.ETH_RARP, None),
    "tcp": (fk.ETH_IP, 6),
    "udp": (fk.ETH_IP, 17),
    "sctp": (fk.ETH_IP, 132),
    "icmp": (fk.ETH_IP, 1),
    "tcp6": (fk.ETH_IPV6, 6),
    "udp6": (fk.ETH_IPV6, 17),
    "sctp6": (fk.ETH_IPV6, 132),
    "icmp6": (fk.ETH_IPV6, 58),
}


@dataclass(frozen=True)
class FieldSpec:
    index: int
    kind: str  # mac, int, ipv4, ipv6, vlan, pcp, tos
    dl_types: frozenset[int] | None = None  # prerequisite EtherTypes
    protos: frozenset[int] | None = None  # prerequisite IP protocols
    maskable: bool = False


def _spec(
    index: int, kind: str, types: object = None, protos: object = None, **kw: bool
) -> FieldSpec:
    return FieldSpec(
        index,
        kind,
        frozenset(types) if types is not None else None,  # type: ignore[call-overload]
        frozenset(protos) if protos is not None else None,  # type: ignore[call-overload]
        **kw,
    )


NW = IP_TYPES
L4 = (6, 17, 132)
FIELDS: dict[str, FieldSpec] = {
    "dl_src": _spec(fk.DL_SRC, "mac", maskable=True),
    "dl_dst": _spec(fk.DL_DST, "mac", maskable=True),
    "eth_src": _spec(fk.DL_SRC, "mac", maskable=True),
    "eth_dst": _spec(fk.DL_DST, "mac", maskable=True),
    "dl_type": _spec(fk.DL_TYPE, "int"),
    "eth_type": _spec(fk.DL_TYPE, "int"),
    "dl_vlan": _spec(fk.VLAN_TCI, "vlan"),
    "dl_vlan_pcp": _spec(fk.VLAN_TCI, "pcp"),
    "vlan_tci": _spec(fk.VLAN_TCI, "int", maskable=True),
    "nw_src": _spec(fk.NW_SRC, "ipv4", {fk.ETH_IP, fk.ETH_ARP, fk.ETH_RARP}, maskable=True),
    "nw_dst": _spec(fk.NW_DST, "ipv4", {fk.ETH_IP, fk.ETH_ARP, fk.ETH_RARP}, maskable=True),
    # As in OVS, the IPv4 and ARP names of these fields are aliases of each other.
    "ip_src": _spec(fk.NW_SRC, "ipv4", {fk.ETH_IP, *ARP_TYPES}, maskable=True),
    "ip_dst": _spec(fk.NW_DST, "ipv4", {fk.ETH_IP, *ARP_TYPES}, maskable=True),
    "arp_spa": _spec(fk.NW_SRC, "ipv4", {fk.ETH_IP, *ARP_TYPES}, maskable=True),
    "arp_tpa": _spec(fk.NW_DST, "ipv4", {fk.ETH_IP, *ARP_TYPES}, maskable=True),
    "arp_sha": _spec(fk.ARP_SHA, "mac", ARP_TYPES, maskable=True),
    "arp_op": _spec(fk.NW_PROTO, "int", ARP_TYPES),
    "ipv6_src": _spec(fk.IPV6_SRC, "ipv6", {fk.ETH_IPV6}, maskable=True),
    "ipv6_dst": _spec(fk.IPV6_DST, "ipv6", {fk.ETH_IPV6}, maskable=True),
    "nw_proto": _spec(fk.NW_PROTO, "int", {fk.ETH_IP, fk.ETH_IPV6, *ARP_TYPES}),
    "ip_proto": _spec(fk.NW_PROTO, "int", {fk.ETH_IP, fk.ETH_IPV6, *ARP_TYPES}),
    "nw_tos": _spec(fk.NW_TOS, "tos", NW),
    "ip_dscp": _spec(fk.NW_TOS, "dscp", NW),
    "nw_ttl": _spec(fk.NW_TTL, "int", NW),
    # tp_* and the per-protocol names are aliases, as in OVS (``udp,tcp_src=80`` is
    # tp_src); on ICMP, tp_src and tp_dst are the type and code. icmp_type/icmp_code
    # also name ICMPv6's (OVS prints ``icmp6,icmp_type=135``).
    "tp_src": _spec(fk.TP_SRC, "int", NW, (*L4, 1, 58), maskable=True),
    "tp_dst": _spec(fk.TP_DST, "int", NW, (*L4, 1, 58), maskable=True),
    "tcp_src": _spec(fk.TP_SRC, "int", NW, L4, maskable=True),
    "tcp_dst": _spec(fk.TP_DST, "int", NW, L4, maskable=True),
    "udp_src": _spec(fk.TP_SRC, "int", NW, L4, maskable=True),
    "udp_dst": _spec(fk.TP_DST, "int", NW, L4, maskable=True),
    "sctp_src": _spec(fk.TP_SRC, "int", NW, L4, maskable=True),
    "sctp_dst": _spec(fk.TP_DST, "int", NW, L4, maskable=True),
    "icmp_type": _spec(fk.TP_SRC, "icmp", NW, {1, 58}),
    "icmp_code": _spec(fk.TP_DST, "icmp", NW, {1, 58}),
    "icmpv6_type": _spec(fk.TP_SRC, "icmp", {fk.ETH_IPV6}, {58}),
    "icmpv6_code": _spec(fk.TP_DST, "icmp", {fk.ETH_IPV6}, {58}),
    "tun_id": _spec(fk.TUN_ID, "int", maskable=True),
    "tun_src": _spec(fk.TUN_SRC, "ipv4", maskable=True),
    "tun_dst": _spec(fk.TUN_DST, "ipv4", maskable=True),
}
ACCEPTED_FIELDS = "in_port, " + ", ".join(sorted(FIELDS)) + ", " + ", ".join(SHORTHANDS)
FIELD_WIDTH = {i: fk.FIELD_BITS[i] for i in range(fk.KEY_SIZE)}


def parse_int(text: str, what: str, bits: int) -> int:
    """A number as ovs-ofctl reads one: decimal, hex with 0x, octal with a leading 0."""
    digits = text.strip()
    try:
        if digits[:2].lower() == "0x" and digits[2:] and "_" not in digits:
            value = int(digits[2:], 16)
        elif digits.isdigit() and digits.isascii():
            value = int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)
        else:
            raise ValueError
    except ValueError:
        raise FlowSyntaxError(
            f"{what}: {text!r} is not a number (decimal, hex with 0x, or octal with 0)"
        ) from None
    if not 0 <= value < (1 << bits):
        raise FlowSyntaxError(f"{what}: {text} is out of range 0..{(1 << bits) - 1}")
    return value


def parse_mac(text: str, what: str) -> int:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) in (1, 2) for p in parts):
        raise FlowSyntaxError(f"{what}: {text!r} is not a MAC address (like 02:00:00:00:00:01)")
    try:
        return int("".join(p.zfill(2) for p in parts), 16)
    except ValueError:
        raise FlowSyntaxError(f"{what}: {text!r} is not a MAC address") from None


def _ipv4_fast(text: str) -> int | None:
    """Dotted-quad IPv4 without ipaddress's overhead (100,000-rule files); None: ask
    ipaddress, for anything unusual and for its error."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part.isdigit() or len(part) > 3 or (part[0] == "0" and len(part) > 1):
            return None
        number = int(part)
        if number > 255:
            return None
        value = value << 8 | number
    return value


def _parse_ip(text: str, what: str, version: int) -> tuple[int, int]:
    bits = 32 if version == 4 else 128
    addr, _, mask = text.partition("/")
    try:
        fast = _ipv4_fast(addr) if version == 4 else None
        value = fast if fast is not None else int(ipaddress.ip_address(addr))
        if fast is None and (ipaddress.ip_address(addr).version != version or "%" in addr):
            raise ValueError
    except ValueError:
        kind = "an IPv4" if version == 4 else "an IPv6"
        raise FlowSyntaxError(f"{what}: {addr!r} is not {kind} address") from None
    if not mask:
        return value, (1 << bits) - 1
    if mask.isdigit():
        prefix = int(mask)
        if prefix > bits:
            raise FlowSyntaxError(f"{what}: prefix /{prefix} is longer than {bits} bits")
        full = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
        return value & full, full
    try:
        mask_address = ipaddress.ip_address(mask)
        if mask_address.version != version or "%" in mask:
            raise ValueError
    except ValueError:
        kind = "IPv4" if version == 4 else "IPv6"
        raise FlowSyntaxError(
            f"{what}: mask {mask!r} is neither a prefix length nor an {kind} address"
        ) from None
    full = int(mask_address)
    return value & full, full


def parse_value(name: str, spec: FieldSpec, text: str) -> tuple[int, int]:
    """(value, mask) of ``name=text``."""
    bits = fk.FIELD_BITS[spec.index]
    full = (1 << bits) - 1
    what = f"field {name}"
    if spec.kind == "ipv4":
        return _parse_ip(text, what, 4)
    if spec.kind == "ipv6":
        return _parse_ip(text, what, 6)
    value_text, slash, mask_text = text.partition("/")
    if slash and not spec.maskable:
        if spec.kind != "int" or parse_int(mask_text, what + " mask", bits) != full:
            raise FlowSyntaxError(f"{what} does not take a mask other than all ones ({text!r})")
        slash, mask_text = "", ""
    if spec.kind == "mac":
        value = parse_mac(value_text, what)
        mask = parse_mac(mask_text, what + " mask") if slash else full
        return value & mask, mask
    if spec.kind == "vlan":
        vid = parse_int(value_text, what, 16)
        if vid == 0xFFFF:
            return 0, 0xFFFF  # frames without a tag
        if vid > 4095:
            raise FlowSyntaxError(f"{what}: {text} is out of range 0..4095 (or 0xffff: untagged)")
        return fk.VLAN_PRESENT | vid, fk.VLAN_PRESENT | 0x0FFF
    if spec.kind == "pcp":
        pcp = parse_int(value_text, what, 3)
        return fk.VLAN_PRESENT | (pcp << 13), fk.VLAN_PRESENT | 0xE000
    if spec.kind == "tos":  # the DSCP bits; OVS drops the ECN bits of the value too
        return parse_int(value_text, what, 8) & 0xFC, 0xFC
    if spec.kind == "dscp":
        return parse_int(value_text, what, 6) << 2, 0xFC
    if spec.kind == "icmp":  # an 8-bit type or code in the 16-bit port position
        return parse_int(value_text, what, 8), full
    value = parse_int(value_text, what, bits)
    mask = parse_int(mask_text, what + " mask", bits) if slash else full
    return value & mask, mask


@dataclass
class Match:
    fields: dict[int, tuple[int, int]] = field(default_factory=dict)
    in_port: str | None = None

    def set(self, index: int, value: int, mask: int, part: bool = False) -> None:
        """Match ``index`` on ``value``/``mask``. As ovs-ofctl: a field given again
        replaces what was given before (``nw_src=10.1.0.0/16,nw_src=10.0.0.0/8`` is
        ``10.0.0.0/8``), except ``part``, the bits of a field one setting owns
        (``dl_vlan`` and ``dl_vlan_pcp`` share the TCI), which replace only those bits;
        a mask of 0 matches anything, so the field is left out."""
        old = self.fields.get(index)
        if part and old is not None:
            value, mask = (old[0] & ~mask) | (value & mask), old[1] | mask
        if mask == 0:
            self.fields.pop(index, None)
            return
        self.fields[index] = (value & mask, mask)

    def exact(self, index: int) -> int | None:
        entry = self.fields.get(index)
        if entry is None or entry[1] != fk.FULL[index] and index != fk.VLAN_TCI:
            return None
        return entry[0]

    def canonical_key(self) -> tuple[object, ...]:
        return (self.in_port, tuple(sorted(self.fields.items())))

    def __hash__(self) -> int:
        return hash(self.canonical_key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Match) and self.canonical_key() == other.canonical_key()

    def covers(self, other: Match) -> bool:
        """True if every packet ``other`` matches is matched by self (the non-strict
        selection of del-flows/dump-flows/mod-flows)."""
        if self.in_port is not None and self.in_port != other.in_port:
            return False
        for index, (value, mask) in self.fields.items():
            theirs = other.fields.get(index)
            if theirs is None or theirs[1] & mask != mask or (theirs[0] ^ value) & mask:
                return False
        return True


def check_prerequisites(match: Match, names: list[str]) -> None:
    dl_type = match.exact(fk.DL_TYPE)
    proto = match.exact(fk.NW_PROTO)
    for name in names:
        spec = FIELDS[name]
        if spec.dl_types is not None and dl_type not in spec.dl_types:
            wanted = " or ".join(sorted(_TYPE_NAMES.get(t, hex(t)) for t in spec.dl_types))
            raise FlowSyntaxError(
                f"field {name} needs the EtherType to be matched first: add {wanted} "
                "(or dl_type=...) to the match"
            )
        if spec.protos is not None and proto not in spec.protos:
            wanted = " or ".join(f"nw_proto={p}" for p in sorted(spec.protos))
            raise FlowSyntaxError(
                f"field {name} needs the IP protocol to be matched first: add {wanted} "
                "(or tcp, udp, sctp, icmp)"
            )


_TYPE_NAMES = {fk.ETH_IP: "ip", fk.ETH_IPV6: "ipv6", fk.ETH_ARP: "arp", fk.ETH_RARP: "rarp"}


def parse_match_token(
    match: Match, token: str, names: list[str], resolve_port: PortResolver
) -> None:
    """Add one ``name=value`` or shorthand token to ``match``."""
    name, eq, text = token.partition("=")
    name = name.strip()
    if not eq:
        shorthand = SHORTHANDS.get(name)
        if shorthand is None:
            raise FlowSyntaxError(f"unknown match field {name!r}; accepted: {ACCEPTED_FIELDS}")
        dl_type, proto = shorthand
        match.set(fk.DL_TYPE, dl_type, 0xFFFF)
        if proto is not None:
            match.set(fk.NW_PROTO, proto, 0xFF)
        return
    if not text:
        raise FlowSyntaxError(f"field {name} has no value")
    if name == "in_port":
        match.in_port = resolve_port(text)  # given twice, the last counts (as in OVS)
        return
    spec = FIELDS.get(name)
    if spec is None:
        raise FlowSyntaxError(f"unknown match field {name!r}; accepted: {ACCEPTED_FIELDS}")
    value, mask = parse_value(name, spec, text)
    match.set(spec.index, value, mask, part=spec.kind in ("vlan", "pcp"))
    names.append(name)


# -- printing ---------------------------------------------------------------------------


def _mac_text(value: int) -> str:
    raw = value.to_bytes(6, "big")
    return ":".join(f"{b:02x}" for b in raw)


def _address_text(value: int, bits: int) -> str:
    if bits == 32:  # (inet_ntoa: a tenth of ipaddress's cost, for 100,000-rule tables)
        return socket.inet_ntoa(value.to_bytes(4, "big"))
    return str(ipaddress.IPv6Address(value))


def _ip_text(value: int, mask: int, bits: int) -> str:
    full = (1 << bits) - 1
    if mask == full:
        return _address_text(value, bits)
    inverted = full ^ mask
    if inverted & (inverted + 1) == 0:
        prefix = bits - inverted.bit_length()
        return f"{_address_text(value, bits)}/{prefix}"
    return f"{_address_text(value, bits)}/{_address_text(mask, bits)}"


def _masked_int(value: int, mask: int, full: int, hexa: bool = False) -> str:
    if mask == full:
        return hex(value) if hexa else str(value)
    return f"{value:#x}/{mask:#x}"


def _vlan_parts(value: int, mask: int) -> list[str]:
    """``dl_vlan``/``dl_vlan_pcp`` where they say exactly this value and mask, else
    ``vlan_tci=V/M`` (never a form that would match something else)."""
    if (value, mask) == (0, 0xFFFF):
        return ["dl_vlan=0xffff"]
    parts, rebuilt = [], Match()
    if mask & 0x0FFF == 0x0FFF:
        parts.append(f"dl_vlan={value & 0x0FFF}")
        rebuilt.set(fk.VLAN_TCI, fk.VLAN_PRESENT | (value & 0x0FFF), fk.VLAN_PRESENT | 0x0FFF, True)
    if mask & 0xE000 == 0xE000:
        parts.append(f"dl_vlan_pcp={value >> 13 & 7}")
        rebuilt.set(fk.VLAN_TCI, fk.VLAN_PRESENT | (value & 0xE000), fk.VLAN_PRESENT | 0xE000, True)
    if parts and rebuilt.fields.get(fk.VLAN_TCI) == (value, mask):
        return parts
    return [f"vlan_tci={value:#06x}/{mask:#06x}"]


def format_match(match: Match) -> str:
    """Canonical text: shorthand first, then fields in a fixed order (as dump-flows)."""
    f = dict(match.fields)
    parts: list[str] = []
    dl_type = match.exact(fk.DL_TYPE)
    proto = match.exact(fk.NW_PROTO) if dl_type in IP_TYPES else None
    shorthand = next(
        (n for n, (t, p) in SHORTHANDS.items() if t == dl_type and p == proto and p is not None),
        None,
    )
    if shorthand:
        f.pop(fk.DL_TYPE)
        f.pop(fk.NW_PROTO)
    elif dl_type in _TYPE_NAMES:
        shorthand = _TYPE_NAMES[dl_type]
        f.pop(fk.DL_TYPE)
    if shorthand:
        parts.append(shorthand)
    if match.in_port is not None:
        parts.append(f"in_port={match.in_port}")
    tci = f.pop(fk.VLAN_TCI, None)
    if tci is not None:
        parts.extend(_vlan_parts(*tci))
    arp = dl_type in ARP_TYPES
    icmp = proto in fk.ICMP_PROTOS
    order = [
        (fk.DL_SRC, "dl_src"),
        (fk.DL_DST, "dl_dst"),
        (fk.DL_TYPE, "dl_type"),
        (fk.ARP_SHA, "arp_sha"),
        (fk.NW_SRC, "arp_spa" if arp else "nw_src"),
        (fk.NW_DST, "arp_tpa" if arp else "nw_dst"),
        (fk.IPV6_SRC, "ipv6_src"),
        (fk.IPV6_DST, "ipv6_dst"),
        (fk.NW_PROTO, "arp_op" if arp else "nw_proto"),
        (fk.NW_TOS, "nw_tos"),
        (fk.NW_TTL, "nw_ttl"),
        (fk.TP_SRC, ("icmpv6_type" if proto == 58 else "icmp_type") if icmp else "tp_src"),
        (fk.TP_DST, ("icmpv6_code" if proto == 58 else "icmp_code") if icmp else "tp_dst"),
        (fk.TUN_ID, "tun_id"),
        (fk.TUN_SRC, "tun_src"),
        (fk.TUN_DST, "tun_dst"),
    ]
    for index, name in order:
        entry = f.pop(index, None)
        if entry is None:
            continue
        value, mask = entry
        full = fk.FULL[index]
        if index in (fk.DL_SRC, fk.DL_DST, fk.ARP_SHA):
            text = _mac_text(value) + ("" if mask == full else "/" + _mac_text(mask))
        elif index in (fk.NW_SRC, fk.NW_DST, fk.TUN_SRC, fk.TUN_DST):
            text = _ip_text(value, mask, 32)
        elif index in (fk.IPV6_SRC, fk.IPV6_DST):
            text = _ip_text(value, mask, 128)
        elif index == fk.DL_TYPE:
            text = f"{value:#06x}"
        elif index == fk.NW_TOS:
            text = str(value)
        else:
            text = _masked_int(value, mask, full, hexa=index == fk.TUN_ID)
        parts.append(f"{name}={text}")
    return ",".join(parts)
