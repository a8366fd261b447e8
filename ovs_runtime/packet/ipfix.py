"""IPFIX messages (RFC 7011) for the flow records OVS's ``IPFIX`` table asks for.

A message is a 16-byte header (version 10, length, export time, sequence number,
observation domain) and sets: a *template set* (set ID 2) describes a record layout as
a list of information elements (IANA numbers and lengths), and a *data set* (set ID =
the template's ID) carries records in that layout. Over UDP the exporter sends its
templates with the first message and again periodically (RFC 7011 section 8.4), so a
collector that starts later learns them.

Three layouts, chosen by the sampled frame's EtherType: Ethernet only, IPv4 and IPv6.
Every record carries the observation point, the OpenFlow input and output ports, the
direction (ingress), MAC addresses, EtherType, VLAN, the sampled packets and their
layer-2 bytes, first and last packet times, the sampling rate (so a collector can scale
the counts up: ``samplingProbability`` 1/N, the IPFIX element for random sampling, and
``samplingInterval`` N, the NetFlow v9 one many collectors read) and why the record was
exported. IP layouts add addresses,
protocol, class of service, and transport ports or the ICMP type and code.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VERSION = 10
SET_TEMPLATE = 2
HEADER = struct.Struct("!HHIII")
SET_HEADER = struct.Struct("!HH")
MAX_MESSAGE = 1400  # stays inside an Ethernet MTU with IPv6 and UDP headers

# Information elements (IANA "IPFIX Information Elements" registry): (number, length).
OBSERVATION_POINT_ID = (138, 4)
INGRESS_INTERFACE = (10, 4)
EGRESS_INTERFACE = (14, 4)
FLOW_DIRECTION = (61, 1)
SOURCE_MAC = (56, 6)
DESTINATION_MAC = (80, 6)
ETHERNET_TYPE = (256, 2)
VLAN_ID = (58, 2)
SOURCE_IPV4 = (8, 4)
DESTINATION_IPV4 = (12, 4)
SOURCE_IPV6 = (27, 16)
DESTINATION_IPV6 = (28, 16)
PROTOCOL = (4, 1)
CLASS_OF_SERVICE = (5, 1)
SOURCE_PORT = (7, 2)
DESTINATION_PORT = (11, 2)
ICMP_TYPE_CODE_IPV4 = (32, 2)
ICMP_TYPE_CODE_IPV6 = (139, 2)
FLOW_START_MS = (152, 8)
FLOW_END_MS = (153, 8)
PACKET_DELTA_COUNT = (2, 8)
LAYER2_OCTET_DELTA_COUNT = (352, 8)
SAMPLING_INTERVAL = (34, 4)  # 1 in N (deprecated in IPFIX, still what collectors read)
SAMPLING_PROBABILITY = (311, 8)  # 1/N, a float64
FLOW_END_REASON = (136, 1)
FLOAT_ELEMENTS = {SAMPLING_PROBABILITY[0]}

# flowEndReason values
IDLE_TIMEOUT, ACTIVE_TIMEOUT, END_OF_FLOW, FORCED_END, LACK_OF_RESOURCES = 1, 2, 3, 4, 5

_COMMON = (
    OBSERVATION_POINT_ID,
    INGRESS_INTERFACE,
    EGRESS_INTERFACE,
    FLOW_DIRECTION,
    SOURCE_MAC,
    DESTINATION_MAC,
    ETHERNET_TYPE,
    VLAN_ID,
)
_COUNTS = (
    FLOW_START_MS,
    FLOW_END_MS,
    PACKET_DELTA_COUNT,
    LAYER2_OCTET_DELTA_COUNT,
    SAMPLING_INTERVAL,
    SAMPLING_PROBABILITY,
    FLOW_END_REASON,
)
_L3 = (PROTOCOL, CLASS_OF_SERVICE, SOURCE_PORT, DESTINATION_PORT)


@dataclass(frozen=True)
class Template:
    template_id: int
    fields: tuple[tuple[int, int], ...]

    @property
    def record(self) -> struct.Struct:
        return struct.Struct(
            "!" + "".join("d" if ie in FLOAT_ELEMENTS else _FORMATS[n] for ie, n in self.fields)
        )

    def definition(self) -> bytes:
        head = struct.pack("!HH", self.template_id, len(self.fields))
        return head + b"".join(struct.pack("!HH", ie, length) for ie, length in self.fields)


_FORMATS = {1: "B", 2: "H", 4: "I", 6: "6s", 8: "Q", 16: "16s"}

ETHERNET = Template(256, (*_COMMON, *_COUNTS))
IPV4 = Template(257, (*_COMMON, SOURCE_IPV4, DESTINATION_IPV4, *_L3, ICMP_TYPE_CODE_IPV4, *_COUNTS))
IPV6 = Template(258, (*_COMMON, SOURCE_IPV6, DESTINATION_IPV6, *_L3, ICMP_TYPE_CODE_IPV6, *_COUNTS))
TEMPLATES = (ETHERNET, IPV4, IPV6)
_RECORD = {t.template_id: t.record for t in TEMPLATES}


def template_set(templates: tuple[Template, ...] = TEMPLATES) -> bytes:
    body = b"".join(t.definition() for t in templates)
    return SET_HEADER.pack(SET_TEMPLATE, SET_HEADER.size + len(body)) + body


def encode_record(template: Template, values: tuple[int | float | bytes, ...]) -> bytes:
    """One data record: ``values`` in the template's field order."""
    return _RECORD[template.template_id].pack(*values)


def messages(
    records: list[tuple[Template, bytes]],
    export_time: int,
    sequence: int,
    domain: int,
    with_templates: bool,
) -> list[tuple[bytes, int]]:
    """(message, data records in it) for ``records``, each message at most
    ``MAX_MESSAGE`` bytes. ``sequence`` counts the data records exported before in this
    observation domain (RFC 7011: the header's sequence number); templates, when asked
    for, open the first message."""
    out: list[tuple[bytes, int]] = []
    sets: list[bytes] = [template_set()] if with_templates else []
    size = HEADER.size + sum(len(s) for s in sets)
    count = 0
    group: list[bytes] = []
    group_id = 0

    def close_group() -> None:
        nonlocal group, size
        if group:
            body = b"".join(group)
            sets.append(SET_HEADER.pack(group_id, SET_HEADER.size + len(body)) + body)
            group = []

    def close_message() -> None:
        nonlocal sets, size, count, sequence
        close_group()
        if sets:
            body = b"".join(sets)
            head = HEADER.pack(
                VERSION, HEADER.size + len(body), export_time, sequence & 0xFFFFFFFF, domain
            )
            out.append((head + body, count))
        sequence += count
        sets, size, count = [], HEADER.size, 0

    for template, record in records:
        grows = len(record) + (0 if group and group_id == template.template_id else 4)
        if count and size + grows > MAX_MESSAGE:
            close_message()
            grows = len(record) + 4
        if not group or group_id != template.template_id:
            close_group()
            group_id = template.template_id
        group.append(record)
        size += grows
        count += 1
    close_message()
    return out
