"""An sFlow v5 decoder written from the specification (sflow.org/sflow_version_5.txt),
independently of ovs_runtime's encoder, for the tests' collectors."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u32(self) -> int:
        (value,) = struct.unpack_from("!I", self.data, self.pos)
        self.pos += 4
        return int(value)

    def u64(self) -> int:
        (value,) = struct.unpack_from("!Q", self.data, self.pos)
        self.pos += 8
        return int(value)

    def raw(self, n: int) -> bytes:
        value = self.data[self.pos : self.pos + n]
        if len(value) != n:
            raise ValueError("truncated datagram")
        self.pos += n
        return value

    def opaque(self) -> bytes:
        n = self.u32()
        value = self.raw(n)
        self.pos += -n % 4
        return value


def decode(datagram: bytes) -> dict[str, Any]:
    r = Reader(datagram)
    version = r.u32()
    if version != 5:
        raise ValueError(f"sFlow version {version}")
    kind = r.u32()
    agent = ipaddress.ip_address(r.raw(4 if kind == 1 else 16))
    out: dict[str, Any] = {
        "agent": str(agent),
        "sub_agent": r.u32(),
        "sequence": r.u32(),
        "uptime_ms": r.u32(),
        "flow_samples": [],
        "counter_samples": [],
    }
    for _ in range(r.u32()):
        sample_type, length = r.u32(), r.u32()
        body = Reader(r.raw(length))
        if sample_type == 1:
            sample = {
                "sequence": body.u32(),
                "source_id": body.u32(),
                "sampling_rate": body.u32(),
                "sample_pool": body.u32(),
                "drops": body.u32(),
                "input": body.u32(),
                "output": body.u32(),
                "records": [],
            }
            for _ in range(body.u32()):
                fmt, rlen = body.u32(), body.u32()
                rec = Reader(body.raw(rlen))
                if fmt == 1:
                    sample["records"].append(
                        {
                            "protocol": rec.u32(),
                            "frame_length": rec.u32(),
                            "stripped": rec.u32(),
                            "header": rec.opaque(),
                        }
                    )
            out["flow_samples"].append(sample)
        elif sample_type == 2:
            sample = {"sequence": body.u32(), "source_id": body.u32(), "records": []}
            for _ in range(body.u32()):
                fmt, rlen = body.u32(), body.u32()
                rec = Reader(body.raw(rlen))
                if fmt == 1:
                    names = ("ifIndex", "ifType")
                    counters: dict[str, int] = {n: rec.u32() for n in names}
                    counters["ifSpeed"] = rec.u64()
                    counters["ifDirection"] = rec.u32()
                    counters["ifStatus"] = rec.u32()
                    counters["ifInOctets"] = rec.u64()
                    for name in (
                        "ifInUcastPkts",
                        "ifInMulticastPkts",
                        "ifInBroadcastPkts",
                        "ifInDiscards",
                        "ifInErrors",
                        "ifInUnknownProtos",
                    ):
                        counters[name] = rec.u32()
                    counters["ifOutOctets"] = rec.u64()
                    for name in (
                        "ifOutUcastPkts",
                        "ifOutMulticastPkts",
                        "ifOutBroadcastPkts",
                        "ifOutDiscards",
                        "ifOutErrors",
                        "ifPromiscuousMode",
                    ):
                        counters[name] = rec.u32()
                    sample["records"].append(counters)
            out["counter_samples"].append(sample)
    return out
