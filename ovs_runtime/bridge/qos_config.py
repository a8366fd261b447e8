"""QoS and Queue rows, parsed and checked as OVS's ``linux-htb`` defines them.

``QoS.other_config:max-rate`` caps the port (bits per second); each ``Queue`` may set
``min-rate``, ``max-rate``, ``burst`` (bits) and ``priority`` (0 is served first, up to
7). ``check_qos`` is a commit check: a rate that does not parse, a min-rate above its
max-rate or an unknown QoS type fails the whole transaction with a message naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovs_runtime.db.datum import as_map, scalar

QOS_TYPES = ("linux-htb",)
DEFAULT_MAX_RATE = 10_000_000_000  # 10 Gbit/s when nothing caps the port
MAX_QUEUE = 0xFFFD  # HTB minor numbers: queue N is class 1:(N+1); 1:fffe is the root


class QosConfigError(ValueError):
    pass


@dataclass(frozen=True)
class QueueSpec:
    queue_id: int
    min_rate: int | None
    max_rate: int | None
    burst: int | None
    priority: int


@dataclass(frozen=True)
class QosSpec:
    type: str
    max_rate: int
    queues: tuple[QueueSpec, ...]


def _rate(config: dict[str, str], key: str, what: str) -> int | None:
    text = config.get(key)
    if text is None:
        return None
    if not text.isdigit() or int(text) <= 0:
        raise QosConfigError(
            f"{what}: other_config:{key}={text!r} is not a rate; expected a positive "
            "whole number of bits per second (e.g. 100000000 for 100 Mbit/s)"
        )
    return int(text)


def parse_queue(queue_id: int, config: dict[str, str], what: str) -> QueueSpec:
    if not 0 <= queue_id <= MAX_QUEUE:
        raise QosConfigError(f"{what}: queue {queue_id} is out of range; 0 to {MAX_QUEUE}")
    priority_text = config.get("priority", "0")
    if not priority_text.isdigit() or int(priority_text) > 7:
        raise QosConfigError(f"{what}: other_config:priority={priority_text!r}; expected 0 to 7")
    spec = QueueSpec(
        queue_id,
        _rate(config, "min-rate", what),
        _rate(config, "max-rate", what),
        _rate(config, "burst", what),
        int(priority_text),
    )
    if spec.min_rate and spec.max_rate and spec.min_rate > spec.max_rate:
        raise QosConfigError(f"{what}: min-rate {spec.min_rate} is above max-rate {spec.max_rate}")
    return spec


def parse_qos(
    kind: str, config: dict[str, str], queues: dict[int, dict[str, str]], what: str
) -> QosSpec:
    if kind not in QOS_TYPES:
        raise QosConfigError(
            f"{what}: type {kind!r} is not supported; supported: {', '.join(QOS_TYPES)}"
        )
    max_rate = _rate(config, "max-rate", what) or DEFAULT_MAX_RATE
    specs = tuple(
        parse_queue(qid, qconfig, f"{what} queue {qid}") for qid, qconfig in sorted(queues.items())
    )
    return QosSpec(kind, max_rate, specs)


def qos_from_rows(qos_row: Any, queue_rows: dict[Any, Any], what: str) -> QosSpec:
    queues = {
        qid: as_map(queue_rows[qref]["other_config"])
        for qid, qref in as_map(qos_row["queues"]).items()
        if qref in queue_rows
    }
    return parse_qos(scalar(qos_row["type"], ""), as_map(qos_row["other_config"]), queues, what)


def check_qos(view: Any) -> None:
    """Commit check: every QoS row the transaction leaves must be usable."""
    from ovs_runtime.db.errors import OvsdbError

    if not (view.changes.get("QoS") or view.changes.get("Queue")):
        return
    queues = dict(view.rows("Queue"))
    for qos_uuid, row in view.rows("QoS"):
        try:
            qos_from_rows(row, queues, f"QoS {qos_uuid}")
        except QosConfigError as exc:
            raise OvsdbError("constraint violation", str(exc)) from None
