"""IPFIX bridge sampling: 1 in ``sampling`` packets a bridge receives becomes a flow
record, exported to the ``IPFIX`` row's collectors (RFC 7011 over UDP).

Packets are picked the way the sFlow agent picks them: each one counts down a random
skip whose mean is the sampling rate, so periodic traffic is not aliased. A picked
packet is described from its own headers (``flow_key.extract``): MACs, VLAN, EtherType,
IPv4 or IPv6 addresses, protocol, class of service, ports or ICMP type and code, with
the OpenFlow port it came in on and the one it went out of (0 when dropped or flooded).

Without a cache (``cache_active_timeout`` or ``cache_max_flows`` 0, OVS's default) every
sample is its own record (flowEndReason "end of flow"); records wait at most one
maintenance pass (about a second) so that several share a message. With a cache, the
samples of one flow are added up in one record, sent once it is ``cache_active_timeout``
seconds old (reason "active timeout"); when the cache is full, the oldest record goes
out early (reason "lack of resources"). Switching IPFIX off or changing it sends what
the cache holds (reason "forced end").
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from ovs_runtime.bridge.flow_export_config import IpfixSpec
from ovs_runtime.datapath.flow_export import Exporter
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.packet import ipfix

TEMPLATE_REFRESH = 60.0  # seconds between template sets to each collector (RFC 7011 8.4)


@dataclass
class CachedRecord:
    template: ipfix.Template
    fields: tuple[int | bytes, ...]  # the template's fields before the counts
    first: float  # wall-clock seconds
    last: float
    packets: int = 0
    octets: int = 0


def flow_fields(frame: bytes, in_port: int, out_port: int, point: int) -> tuple[Any, ...]:
    """(template, its fields up to the counts) describing ``frame``."""
    key = fk.extract(frame, in_port)
    common = (
        point,
        in_port,
        out_port,
        0,  # flowDirection: ingress
        key[fk.DL_SRC].to_bytes(6, "big"),
        key[fk.DL_DST].to_bytes(6, "big"),
        key[fk.DL_TYPE],
        key[fk.VLAN_TCI] & 0x0FFF,
    )
    dl_type, proto = key[fk.DL_TYPE], key[fk.NW_PROTO]
    if dl_type == fk.ETH_IP:
        template = ipfix.IPV4
        addresses: tuple[int | bytes, ...] = (key[fk.NW_SRC], key[fk.NW_DST])
    elif dl_type == fk.ETH_IPV6:
        template = ipfix.IPV6
        addresses = (key[fk.IPV6_SRC].to_bytes(16, "big"), key[fk.IPV6_DST].to_bytes(16, "big"))
    else:
        return ipfix.ETHERNET, common
    if proto in fk.PORT_PROTOS:
        l4 = (key[fk.TP_SRC], key[fk.TP_DST], 0)
    elif proto in fk.ICMP_PROTOS:
        l4 = (0, 0, key[fk.TP_SRC] << 8 | key[fk.TP_DST])
    else:
        l4 = (0, 0, 0)
    return template, (*common, *addresses, proto, _class_of_service(frame, dl_type), *l4)


def _class_of_service(frame: bytes, dl_type: int) -> int:
    """The whole IPv4 TOS or IPv6 traffic class byte, ECN bits included (the flow key's
    ``nw_tos`` masks them, as OVS's matches do)."""
    off = 18 if frame[12:14] in fk.VLAN_TPIDS else 14
    if len(frame) < off + 2:
        return 0
    if dl_type == fk.ETH_IP:
        return frame[off + 1]
    return ((frame[off] & 0x0F) << 4) | (frame[off + 1] >> 4)


class IpfixAgent:
    def __init__(self, spec: IpfixSpec, clock: Any = time.time) -> None:
        self.spec = spec
        self.clock = clock  # wall clock: IPFIX times are absolute
        self.exporter = Exporter(spec.targets)
        self.skip = self._next_skip()
        self.countdown = self.skip if spec.input_sampling else 1 << 62
        self.cache: dict[tuple[Any, ...], CachedRecord] = {}
        self.pending: list[tuple[ipfix.Template, bytes]] = []
        self.sequence = 0
        self.templates_sent = -TEMPLATE_REFRESH
        self.samples = 0
        self.records = 0
        self.evicted = 0

    def _next_skip(self) -> int:
        rate = self.spec.sampling
        return 1 if rate <= 1 else random.randint(1, 2 * rate - 1)

    def sample(self, in_port: int, frame: bytes, outputs: list[int]) -> None:
        """The datapath's countdown reached zero: record this packet."""
        self.skip = self._next_skip()
        self.countdown = self.skip
        self.samples += 1
        out_port = outputs[0] if len(outputs) == 1 else 0
        template, fields = flow_fields(frame, in_port, out_port, self.spec.obs_point_id)
        now = self.clock()
        if not self.spec.caching:
            self._emit(template, fields, now, now, 1, len(frame), ipfix.END_OF_FLOW)
            return
        record = self.cache.get(fields)
        if record is None:
            if len(self.cache) >= self.spec.cache_max_flows:
                self._evict_oldest()
            record = self.cache[fields] = CachedRecord(template, fields, now, now)
        record.packets += 1
        record.octets += len(frame)
        record.last = now

    def _evict_oldest(self) -> None:
        oldest = min(self.cache, key=lambda k: self.cache[k].first)
        self._emit_cached(self.cache.pop(oldest), ipfix.LACK_OF_RESOURCES)
        self.evicted += 1

    def _emit_cached(self, record: CachedRecord, reason: int) -> None:
        self._emit(
            record.template,
            record.fields,
            record.first,
            record.last,
            record.packets,
            record.octets,
            reason,
        )

    def _emit(
        self,
        template: ipfix.Template,
        fields: tuple[int | bytes, ...],
        first: float,
        last: float,
        packets: int,
        octets: int,
        reason: int,
    ) -> None:
        rate = self.spec.sampling
        counts = (int(first * 1000), int(last * 1000), packets, octets, rate, 1 / rate, reason)
        self.pending.append((template, ipfix.encode_record(template, (*fields, *counts))))
        self.records += 1

    def expire(self) -> None:
        """Send cached records past the active timeout, and everything pending."""
        now = self.clock()
        timeout = self.spec.cache_active_timeout
        for key, record in list(self.cache.items()):
            if now - record.first >= timeout:
                del self.cache[key]
                self._emit_cached(record, ipfix.ACTIVE_TIMEOUT)
        self.flush(now)

    def flush_all(self) -> None:
        """Send everything (IPFIX switched off or changed, or the bridge going away)."""
        for record in self.cache.values():
            self._emit_cached(record, ipfix.FORCED_END)
        self.cache.clear()
        self.flush(self.clock())

    def flush(self, now: float) -> None:
        with_templates = now - self.templates_sent >= TEMPLATE_REFRESH
        if not self.pending and not with_templates:
            return
        if not self.exporter.targets:
            self.pending = []
            return
        if with_templates:
            self.templates_sent = now
        for message, count in ipfix.messages(
            self.pending, int(now), self.sequence, self.spec.obs_domain_id, with_templates
        ):
            self.exporter.send(message)
            self.sequence += count
        self.pending = []

    def close(self) -> None:
        self.flush_all()
        self.exporter.close()

    def describe(self) -> dict[str, Any]:
        return {
            "targets": [f"{h}:{p}" for h, p in self.spec.targets],
            "sampling": self.spec.sampling,
            "input_sampling": self.spec.input_sampling,
            "obs_domain_id": self.spec.obs_domain_id,
            "obs_point_id": self.spec.obs_point_id,
            "cache_active_timeout": self.spec.cache_active_timeout,
            "cache_max_flows": self.spec.cache_max_flows,
            "samples": self.samples,
            "records_exported": self.records - len(self.pending),
            "cached_flows": len(self.cache),
            "evicted": self.evicted,
            "datagrams": self.exporter.datagrams,
            "send_errors": self.exporter.errors,
        }
