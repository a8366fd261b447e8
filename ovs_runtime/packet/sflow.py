"""sFlow version 5 datagrams (sflow.org/sflow_version_5.txt), encoded with ``struct``.

A datagram carries the agent's address, a sequence number, its uptime and samples:
- a **flow sample** (enterprise 0, format 1): one sampled packet, as a *raw packet
  header* record (the first bytes of the frame), with the sampling rate, the sample
  pool (packets seen) and the input and output ports;
- a **counter sample** (enterprise 0, format 2): a port's *generic interface counters*.
Everything is XDR: big-endian 32-bit words, opaque data padded to 4 bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

VERSION = 5
FLOW_SAMPLE, COUNTER_SAMPLE = 1, 2
RAW_PACKET_HEADER, GENERIC_INTERFACE_COUNTERS = 1, 1
HEADER_PROTOCOL_ETHERNET = 1
FCS_LENGTH = 4  # the wire frame's FCS, which we never see: "stripped"
OUTPUT_MULTIPLE = 0x80000000  # output "port" when a sample went to several ports
IF_TYPE_ETHERNET = 6


@dataclass(frozen=True)
class FlowSample:
    source_index: int  # the sampling port's index (its OpenFlow port number)
    sampling_rate: int
    sample_pool: int
    drops: int
    input_port: int
    output_port: int  # a port index, 0 for "dropped", or OUTPUT_MULTIPLE | count
    frame_length: int
    header: bytes


@dataclass(frozen=True)
class CounterSample:
    source_index: int
    if_speed: int  # bit/s
    up: bool
    in_octets: int
    in_packets: int
    in_discards: int
    in_errors: int
    out_octets: int
    out_packets: int
    out_discards: int
    out_errors: int


def _opaque(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data + b"\0" * (-len(data) % 4)


def _record(format_: int, body: bytes) -> bytes:
    return struct.pack("!II", format_, len(body)) + body


def _flow_sample(sequence: int, sample: FlowSample) -> bytes:
    raw = struct.pack(
        "!III", HEADER_PROTOCOL_ETHERNET, sample.frame_length + FCS_LENGTH, FCS_LENGTH
    ) + _opaque(sample.header)
    body = struct.pack(
        "!IIIIIIII",
        sequence,
        sample.source_index & 0xFFFFFF,
        sample.sampling_rate,
        sample.sample_pool,
        sample.drops,
        sample.input_port,
        sample.output_port,
        1,
    ) + _record(RAW_PACKET_HEADER, raw)
    return _record(FLOW_SAMPLE, body)


def _counter_sample(sequence: int, sample: CounterSample) -> bytes:
    status = 3 if sample.up else 0  # bit 0: admin up, bit 1: oper up
    c32 = 0xFFFFFFFF
    counters = struct.pack(
        "!IIQIIQIIIIIIQIIIIII",
        sample.source_index,
        IF_TYPE_ETHERNET,
        sample.if_speed,
        1,  # full duplex
        status,
        sample.in_octets,
        sample.in_packets & c32,  # ifInUcastPkts
        0,
        0,
        sample.in_discards & c32,
        sample.in_errors & c32,
        0,  # ifInUnknownProtos
        sample.out_octets,
        sample.out_packets & c32,
        0,
        0,
        sample.out_discards & c32,
        sample.out_errors & c32,
        0,  # ifPromiscuousMode
    )
    body = struct.pack("!III", sequence, sample.source_index & 0xFFFFFF, 1)
    return _record(COUNTER_SAMPLE, body + _record(GENERIC_INTERFACE_COUNTERS, counters))


def datagram(
    agent: str,
    sub_agent: int,
    sequence: int,
    uptime_ms: int,
    samples: list[tuple[int, FlowSample | CounterSample]],
) -> bytes:
    """One datagram; ``samples`` are (sample sequence number, sample) pairs."""
    address = ipaddress.ip_address(agent)
    head = struct.pack("!II", VERSION, 1 if address.version == 4 else 2) + address.packed
    head += struct.pack("!IIII", sub_agent, sequence, uptime_ms & 0xFFFFFFFF, len(samples))
    parts = [head]
    for number, sample in samples:
        if isinstance(sample, FlowSample):
            parts.append(_flow_sample(number, sample))
        else:
            parts.append(_counter_sample(number, sample))
    return b"".join(parts)
