"""Traffic visibility for one bridge: an sFlow agent and a NetFlow v5 flow cache.

**sFlow.** Each packet a bridge receives counts down a random skip whose mean is the
sampling rate (as sFlow agents do, so periodic traffic is not aliased); when it reaches
zero the packet is sampled: its first ``header`` bytes, its input port and where the
switch sent it. Every ``polling`` seconds each port's counters are sampled too. Samples
leave as sFlow v5 datagrams to every target.

**NetFlow.** With NetFlow on, the bridge counts every IPv4 packet against its flow
(addresses, ports, protocol, TOS, input port), keyed by the same header bytes as the
exact-match cache, so counting is one dict lookup. A flow is exported (NetFlow v5) when
it has been idle for ``IDLE_TIMEOUT`` seconds, and every ``active_timeout`` seconds while
it lasts.

Both send from a non-blocking UDP socket; a send that fails is counted, never raised.
"""

from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.bridge.flow_export_config import IDLE_TIMEOUT, NetflowSpec, SflowSpec
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.packet import netflow, sflow

MAX_SAMPLES_PER_DATAGRAM = 8


class Exporter:
    """A UDP socket that sends each datagram to every target."""

    def __init__(self, targets: tuple[tuple[str, int], ...]) -> None:
        self.targets = targets
        self.socks: dict[int, socket.socket] = {}
        self.datagrams = 0
        self.errors = 0

    def _sock(self, family: int) -> socket.socket:
        sock = self.socks.get(family)
        if sock is None:
            sock = self.socks[family] = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
        return sock

    def send(self, payload: bytes) -> None:
        for host, port in self.targets:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                self._sock(family).sendto(payload, (host, port))
                self.datagrams += 1
            except OSError:
                self.errors += 1

    def local_address(self) -> str:
        """The address datagrams to the first target leave from."""
        host, port = self.targets[0]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((host, port))
                return str(probe.getsockname()[0])
            except OSError:
                return "0.0.0.0"

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


class SflowAgent:
    def __init__(self, spec: SflowSpec, agent_address: str, now: float) -> None:
        self.spec = spec
        self.exporter = Exporter(spec.targets)
        self.agent = agent_address
        self.started = now
        self.skip = self._next_skip()
        self.countdown = self.skip  # decremented per packet by the datapath
        self.pool = 0  # packets seen, up to the last sample
        self.sequence = 0
        self.sample_sequence = 0
        self.pending: list[tuple[int, sflow.FlowSample | sflow.CounterSample]] = []
        self.flow_samples = 0
        self.counter_samples = 0
        self.last_poll = now

    def _next_skip(self) -> int:
        rate = self.spec.sampling
        return 1 if rate <= 1 else random.randint(1, 2 * rate - 1)

    def sample(self, in_port: int, frame: bytes, outputs: list[int]) -> None:
        """The datapath's countdown reached zero: sample this packet."""
        self.pool += self.skip
        self.skip = self._next_skip()
        self.countdown = self.skip
        if not outputs:
            output = 0
        elif len(outputs) == 1:
            output = outputs[0]
        else:
            output = sflow.OUTPUT_MULTIPLE | len(outputs)
        self.sample_sequence += 1
        self.flow_samples += 1
        self.pending.append(
            (
                self.sample_sequence,
                sflow.FlowSample(
                    source_index=in_port,
                    sampling_rate=self.spec.sampling,
                    sample_pool=self.pool,
                    drops=0,
                    input_port=in_port,
                    output_port=output,
                    frame_length=len(frame),
                    header=bytes(frame[: self.spec.header]),
                ),
            )
        )
        if len(self.pending) >= MAX_SAMPLES_PER_DATAGRAM:
            self.flush()

    def poll(self, ports: list[Any], now: float) -> None:
        """Counter samples of every port, every ``polling`` seconds."""
        if not self.spec.polling or now - self.last_poll < self.spec.polling:
            return
        self.last_poll = now
        for handle in ports:
            netdev = handle.netdev
            if netdev is None:
                continue
            stats = netdev.stats
            self.sample_sequence += 1
            self.counter_samples += 1
            self.pending.append(
                (
                    self.sample_sequence,
                    sflow.CounterSample(
                        source_index=handle.ofport,
                        if_speed=10_000_000_000,
                        up=True,
                        in_octets=stats.rx_bytes,
                        in_packets=stats.rx_packets,
                        in_discards=stats.rx_dropped,
                        in_errors=stats.rx_errors,
                        out_octets=stats.tx_bytes,
                        out_packets=stats.tx_packets,
                        out_discards=stats.tx_dropped,
                        out_errors=stats.tx_errors,
                    ),
                )
            )
            if len(self.pending) >= MAX_SAMPLES_PER_DATAGRAM:
                self.flush(now)
        self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if not self.pending:
            return
        now = time.monotonic() if now is None else now
        self.sequence += 1
        uptime = int((now - self.started) * 1000)
        self.exporter.send(sflow.datagram(self.agent, 0, self.sequence, uptime, self.pending))
        self.pending = []

    def describe(self) -> dict[str, Any]:
        return {
            "targets": [f"{h}:{p}" for h, p in self.spec.targets],
            "sampling": self.spec.sampling,
            "polling": self.spec.polling,
            "agent": self.agent,
            "flow_samples": self.flow_samples,
            "counter_samples": self.counter_samples,
            "datagrams": self.exporter.datagrams,
            "send_errors": self.exporter.errors,
        }


@dataclass
class FlowCounters:
    fields: netflow.FlowRecord  # addresses, ports, protocol (counts in it unused)
    first: float
    last: float
    packets: int = 0
    octets: int = 0
    flags_at: int = -1  # offset of the TCP flags byte, -1 if not TCP
    tcp_flags: int = 0
    output_port: int = 0


@dataclass
class NetflowCache:
    spec: NetflowSpec
    started: float
    flows: dict[Any, FlowCounters] = field(default_factory=dict)
    sequence: int = 0
    exported: int = 0

    def __post_init__(self) -> None:
        self.exporter = Exporter(self.spec.targets)

    def count(self, key: Any, frame: bytes, in_port: int, actions: Any, now: float) -> None:
        """One packet of the flow ``key`` (the exact-match cache key); ``actions`` are
        the decision's compiled outputs (port handle first)."""
        counters = self.flows.get(key)
        if counters is not None:
            output = actions[0][0].ofport if len(actions) == 1 else 0
            if output != counters.fields.output_port:
                # The flow goes out elsewhere now (a bond failed over, a MAC moved): as
                # OVS does, its record so far is exported at once and a new one begins.
                if counters.packets:
                    self._send([self._record(counters)], now, None)
                del self.flows[key]
                counters = None
        if counters is None:
            counters = self._new(frame, in_port, [a[0].ofport for a in actions], now)
            if counters is None:
                return
            self.flows[key] = counters
        counters.packets += 1
        counters.octets += len(frame)
        counters.last = now
        if counters.flags_at >= 0 and len(frame) > counters.flags_at:
            counters.tcp_flags |= frame[counters.flags_at]

    def _new(
        self, frame: bytes, in_port: int, outputs: list[int], now: float
    ) -> FlowCounters | None:
        key = fk.extract(frame, in_port)
        if key[fk.DL_TYPE] != fk.ETH_IP:
            return None  # NetFlow v5 describes IPv4 flows only
        off = 18 if key[fk.VLAN_TCI] else 14
        flags_at = off + (frame[off] & 0x0F) * 4 + 13 if key[fk.NW_PROTO] == 6 else -1
        fields = netflow.FlowRecord(
            src=key[fk.NW_SRC],
            dst=key[fk.NW_DST],
            input_port=in_port,
            output_port=outputs[0] if len(outputs) == 1 else 0,
            packets=0,
            octets=0,
            first_ms=0,
            last_ms=0,
            src_port=key[fk.TP_SRC],
            dst_port=key[fk.TP_DST],
            tcp_flags=0,
            protocol=key[fk.NW_PROTO],
            tos=key[fk.NW_TOS],
        )
        return FlowCounters(fields, now, now, flags_at=flags_at)

    def expire(self, now: float, unix_now: float | None = None) -> int:
        """Export idle flows, and active ones past the active timeout; returns how many
        records were sent."""
        records = []
        active = self.spec.active_timeout
        for key, c in list(self.flows.items()):
            idle = now - c.last >= IDLE_TIMEOUT
            if not idle and not (active and now - c.first >= active):
                continue
            if c.packets:
                records.append(self._record(c))
            if idle:
                del self.flows[key]
            else:
                c.first, c.packets, c.octets, c.tcp_flags = now, 0, 0, 0
        self._send(records, now, unix_now)
        return len(records)

    def flush_all(self, now: float) -> None:
        """Export everything (NetFlow switched off, or the bridge going away)."""
        self._send([self._record(c) for c in self.flows.values() if c.packets], now, None)
        self.flows.clear()

    def _record(self, c: FlowCounters) -> netflow.FlowRecord:
        f = c.fields
        return netflow.FlowRecord(
            src=f.src,
            dst=f.dst,
            input_port=f.input_port,
            output_port=f.output_port,
            packets=c.packets,
            octets=c.octets,
            first_ms=int((c.first - self.started) * 1000),
            last_ms=int((c.last - self.started) * 1000),
            src_port=f.src_port,
            dst_port=f.dst_port,
            tcp_flags=c.tcp_flags,
            protocol=f.protocol,
            tos=f.tos,
        )

    def _send(self, records: list[netflow.FlowRecord], now: float, unix_now: float | None) -> None:
        if not records:
            return
        uptime = int((now - self.started) * 1000)
        wall = time.time() if unix_now is None else unix_now
        for payload, count in netflow.datagrams(
            records, uptime, wall, self.sequence, self.spec.engine_type, self.spec.engine_id
        ):
            self.exporter.send(payload)
            self.sequence += count
        self.exported += len(records)

    def describe(self) -> dict[str, Any]:
        return {
            "targets": [f"{h}:{p}" for h, p in self.spec.targets],
            "active_timeout": self.spec.active_timeout,
            "flows": len(self.flows),
            "records_exported": self.exported,
            "datagrams": self.exporter.datagrams,
            "send_errors": self.exporter.errors,
        }
