"""QoS on a port's device through the kernel's own traffic control (pyroute2 netlink).

``linux-htb`` as in OVS: root qdisc ``htb 1:`` whose default class is queue 0's; a root
class ``1:fffe`` capped at ``max-rate``; queue N is class ``1:(N+1)`` with rate min-rate
(or 1 kbit/s... of guarantee), ceil max-rate, burst and priority. Frames the datapath
sends on an AF_PACKET port go through this qdisc (no ``PACKET_QDISC_BYPASS``), so queue 0
shapes all of a port's egress; selecting other queues per frame needs flow tables
(``set_queue``). Removing QoS deletes the ``htb 1:`` root qdisc we made, and nothing else.
"""

from __future__ import annotations

from typing import Any

from pyroute2 import IPRoute

from ovs_runtime.bridge.qos_config import QosSpec

ROOT_HANDLE = 0x10000  # 1:
ROOT_CLASS = 0x1FFFE  # 1:fffe
TC_H_ROOT = 0xFFFFFFFF
MIN_GUARANTEE = 8000  # bit/s, the least HTB rate a queue without min-rate gets
ENOENT, EINVAL = 2, 22


def queue_class(queue_id: int) -> int:
    return 0x10000 | (queue_id + 1)


def _index(ipr: IPRoute, device: str) -> int | None:
    found = ipr.link_lookup(ifname=device)
    return int(found[0]) if found else None


def _our_root(ipr: IPRoute, index: int) -> bool:
    for msg in ipr.get_qdiscs(index=index):
        if msg["parent"] == TC_H_ROOT and msg["handle"] == ROOT_HANDLE:
            return msg.get_attr("TCA_KIND") == "htb"
    return False


def remove(device: str) -> bool:
    """Delete our root qdisc (with its classes); True if there was one."""
    with IPRoute() as ipr:
        index = _index(ipr, device)
        if index is None or not _our_root(ipr, index):
            return False
        ipr.tc("del", index=index, handle=ROOT_HANDLE, parent=TC_H_ROOT)
        return True


def install(device: str, spec: QosSpec) -> None:
    """Make the device's egress exactly ``spec`` (replacing our previous setup)."""
    with IPRoute() as ipr:
        index = _index(ipr, device)
        if index is None:
            raise OSError(f"no network device named {device}")
        if _our_root(ipr, index):
            ipr.tc("del", index=index, handle=ROOT_HANDLE, parent=TC_H_ROOT)
        default = queue_class(spec.queues[0].queue_id if spec.queues else 0)
        ipr.tc("add", "htb", index=index, handle=ROOT_HANDLE, default=default)
        ipr.tc(
            "add-class",
            "htb",
            index=index,
            handle=ROOT_CLASS,
            parent=ROOT_HANDLE,
            rate=f"{spec.max_rate}bit",
            ceil=f"{spec.max_rate}bit",
        )
        queues = spec.queues or ()
        if not any(q.queue_id == 0 for q in queues):
            _add_queue(ipr, index, 0, None, spec.max_rate, None, 0)
        for q in queues:
            _add_queue(
                ipr, index, q.queue_id, q.min_rate, q.max_rate or spec.max_rate, q.burst, q.priority
            )


def _add_queue(
    ipr: IPRoute,
    index: int,
    queue_id: int,
    min_rate: int | None,
    ceil: int,
    burst: int | None,
    priority: int,
) -> None:
    rate = min(min_rate or MIN_GUARANTEE, ceil)
    extra: dict[str, Any] = {"prio": priority}
    if burst:
        extra["burst"] = max(burst // 8, 1600)  # bits to bytes; at least one MTU
    ipr.tc(
        "add-class",
        "htb",
        index=index,
        handle=queue_class(queue_id),
        parent=ROOT_CLASS,
        rate=f"{rate}bit",
        ceil=f"{ceil}bit",
        **extra,
    )


def show(device: str) -> list[dict[str, Any]]:
    """The classes of our qdisc with their rates and counters (for ``ovsr qos-show``)."""
    with IPRoute() as ipr:
        index = _index(ipr, device)
        if index is None or not _our_root(ipr, index):
            return []
        out = []
        for msg in ipr.get_classes(index=index):
            handle = msg["handle"]
            options = msg.get_attr("TCA_OPTIONS")
            params = options.get_attr("TCA_HTB_PARMS") if options else None
            stats = msg.get_attr("TCA_STATS") or {}
            entry = {
                "class": f"{handle >> 16:x}:{handle & 0xFFFF:x}",
                "queue": None if handle == ROOT_CLASS else (handle & 0xFFFF) - 1,
                "bytes": stats.get("bytes", 0) if isinstance(stats, dict) else stats["bytes"],
                "packets": stats.get("packets", 0) if isinstance(stats, dict) else stats["packets"],
                "drops": stats.get("drops", 0) if isinstance(stats, dict) else stats["drops"],
            }
            if params:
                entry["rate_bps"] = (
                    params["rate"]["rate"] * 8 if isinstance(params["rate"], dict) else None
                )
                entry["ceil_bps"] = (
                    params["ceil"]["rate"] * 8 if isinstance(params["ceil"], dict) else None
                )
                entry["priority"] = params["prio"]
            out.append(entry)
        return sorted(out, key=lambda e: (e["queue"] is not None, e["queue"] or 0))
