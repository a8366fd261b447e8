"""The flow key: every header field a rule can match, as one tuple of integers.

``extract`` parses a frame into the key once per cache miss. The positions below are
the indexes into that tuple; a match or a megaflow mask is a tuple of the same shape,
so masking a key is one ``zip``. ``exact_bytes`` is the cheap per-packet alternative
used by the exact-match cache: the bytes of the frame that ``extract`` reads, and only
those, so two frames with equal ``exact_bytes`` always have equal keys.

Layouts follow OVS: ``vlan_tci`` carries the CFI bit (0x1000) as "a tag is present",
``nw_src``/``nw_dst`` are the IPv4 addresses or, for ARP, the sender and target
protocol addresses, ``nw_proto`` is the IP protocol or the ARP opcode (0 above 255),
and ``tp_src``/``tp_dst`` are ICMP type and code for ICMP.
"""

from __future__ import annotations

IN_PORT, TUN_ID, DL_SRC, DL_DST, VLAN_TCI, DL_TYPE = range(6)
NW_SRC, NW_DST, IPV6_SRC, IPV6_DST, NW_PROTO, NW_TOS, NW_TTL = range(6, 13)
TP_SRC, TP_DST, ARP_SHA = range(13, 16)
TUN_SRC, TUN_DST = 16, 17  # the outer IPv4 addresses a frame arrived with / leaves with
KEY_SIZE = 18

FIELD_BITS = (32, 64, 48, 48, 16, 16, 32, 32, 128, 128, 8, 8, 8, 16, 16, 48, 32, 32)
FULL = tuple((1 << bits) - 1 for bits in FIELD_BITS)
NO_MASK = (0,) * KEY_SIZE

ETH_IP, ETH_IPV6, ETH_ARP, ETH_RARP = 0x0800, 0x86DD, 0x0806, 0x8035
VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")
PORT_PROTOS = (6, 17, 132)  # TCP, UDP, SCTP: tp_src/tp_dst are ports
ICMP_PROTOS = (1, 58)  # ICMP, ICMPv6: tp_src/tp_dst are type and code
VLAN_PRESENT = 0x1000
IPV6_OPTION_HEADERS = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH
IPV6_FRAGMENT = 44
IPV6_EXTENSION_HEADERS = (*IPV6_OPTION_HEADERS, IPV6_FRAGMENT)
MAX_EXTENSION_HEADERS = 8  # a longer chain is not followed (nor by OVS, in practice)

Key = tuple[int, ...]


def extract(frame: bytes, in_port: int, tun_id: int = 0, tun_src: int = 0) -> Key:
    """The flow key of ``frame`` (at least 14 bytes). Fields a short frame lacks are 0,
    as OVS does for a truncated header."""
    n = len(frame)
    key = [0] * KEY_SIZE
    key[IN_PORT] = in_port
    key[TUN_ID] = tun_id
    key[TUN_SRC] = tun_src
    key[DL_DST] = int.from_bytes(frame[0:6], "big")
    key[DL_SRC] = int.from_bytes(frame[6:12], "big")
    off = 14
    if frame[12:14] in VLAN_TPIDS and n >= 18:
        key[VLAN_TCI] = ((frame[14] << 8) | frame[15]) & 0xEFFF | VLAN_PRESENT
        off = 18
    dl_type = (frame[off - 2] << 8) | frame[off - 1]
    key[DL_TYPE] = dl_type
    l4 = -1
    proto = 0
    if dl_type == ETH_IP and n >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        key[NW_TOS] = frame[off + 1] & 0xFC
        key[NW_TTL] = frame[off + 8]
        proto = key[NW_PROTO] = frame[off + 9]
        key[NW_SRC] = int.from_bytes(frame[off + 12 : off + 16], "big")
        key[NW_DST] = int.from_bytes(frame[off + 16 : off + 20], "big")
        if ((frame[off + 6] & 0x1F) << 8 | frame[off + 7]) == 0:
            l4 = off + ihl  # later fragments carry no L4 header
    elif dl_type == ETH_IPV6 and n >= off + 40:
        key[NW_TOS] = (((frame[off] & 0x0F) << 4) | (frame[off + 1] >> 4)) & 0xFC
        key[NW_TTL] = frame[off + 7]
        key[IPV6_SRC] = int.from_bytes(frame[off + 8 : off + 24], "big")
        key[IPV6_DST] = int.from_bytes(frame[off + 24 : off + 40], "big")
        proto, l4 = _after_extension_headers(frame, frame[off + 6], off + 40)
        key[NW_PROTO] = proto
    elif dl_type in (ETH_ARP, ETH_RARP) and n >= off + 28:
        key[NW_PROTO] = frame[off + 7] if frame[off + 6] == 0 else 0  # (OVS: 0 above 255)
        key[ARP_SHA] = int.from_bytes(frame[off + 8 : off + 14], "big")
        key[NW_SRC] = int.from_bytes(frame[off + 14 : off + 18], "big")
        key[NW_DST] = int.from_bytes(frame[off + 24 : off + 28], "big")
    if l4 >= 0:
        if proto in PORT_PROTOS and n >= l4 + 4:
            key[TP_SRC] = (frame[l4] << 8) | frame[l4 + 1]
            key[TP_DST] = (frame[l4 + 2] << 8) | frame[l4 + 3]
        elif proto in ICMP_PROTOS and n >= l4 + 2:
            key[TP_SRC] = frame[l4]
            key[TP_DST] = frame[l4 + 1]
    return tuple(key)


def _after_extension_headers(frame: bytes, proto: int, pos: int) -> tuple[int, int]:
    """(upper-layer protocol, its offset) past IPv6 extension headers, as OVS reads
    them: hop-by-hop, routing, destination options, AH and fragment headers are skipped,
    so ``tcp6,tp_dst=80`` matches TCP behind them. A later fragment has no upper-layer
    header (offset -1); a truncated chain stops at the header it could not read."""
    n = len(frame)
    for _ in range(MAX_EXTENSION_HEADERS):
        if proto in IPV6_OPTION_HEADERS and n >= pos + 2:
            length = (frame[pos + 1] + 2) * 4 if proto == 51 else (frame[pos + 1] + 1) * 8
            if n < pos + length:
                break
            proto, pos = frame[pos], pos + length
        elif proto == IPV6_FRAGMENT and n >= pos + 8:
            later = (frame[pos + 2] << 8 | frame[pos + 3]) & 0xFFF8
            proto, pos = frame[pos], pos + 8
            if later:
                return proto, -1
        else:
            break
    return proto, pos


def exact_bytes(frame: bytes) -> bytes | None:
    """The bytes ``extract`` reads (never the IP length, ID or checksum, so a TCP stream
    keeps one entry), or None if the frame is too short to hold the headers its
    EtherType announces, or is IPv6 with extension headers: such frames are never
    cached."""
    off = 18 if frame[12:14] in VLAN_TPIDS else 14
    n = len(frame)
    if n < off:
        return None
    dl_type = frame[off - 2 : off]
    if dl_type == b"\x08\x00":
        if n < off + 20:
            return None
        l4 = off + (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        width = 4 if proto in PORT_PROTOS else 2 if proto in ICMP_PROTOS else 0
        if n < l4 + width:
            return None
        return (
            frame[: off + 2]
            + frame[off + 6 : off + 10]
            + frame[off + 12 : off + 20]
            + frame[l4 : l4 + width]
        )
    if dl_type == b"\x86\xdd":
        if n < off + 40:
            return None
        proto = frame[off + 6]
        if proto in IPV6_EXTENSION_HEADERS:
            return None  # rare (MLD, fragments): never cached, extracted every time
        width = 4 if proto in PORT_PROTOS else 2 if proto in ICMP_PROTOS else 0
        if n < off + 40 + width:
            return None
        return frame[: off + 2] + frame[off + 6 : off + 40] + frame[off + 40 : off + 40 + width]
    if dl_type in (b"\x08\x06", b"\x80\x35"):
        return frame[: off + 28] if n >= off + 28 else None
    return frame[:off]


def masked(key: Key, mask: Key) -> Key:
    return tuple([k & m for k, m in zip(key, mask, strict=True)])
