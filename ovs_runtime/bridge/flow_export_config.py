"""sFlow, NetFlow and IPFIX settings, as the ``sFlow``, ``NetFlow`` and ``IPFIX`` tables
hold them (with Open vSwitch's columns and defaults), checked at commit time.

- ``sFlow``: ``targets`` (collectors, ``IP:PORT``), ``sampling`` (1 in N packets, default
  400), ``polling`` (seconds between counter samples, default 30, 0 = none), ``header``
  (bytes of each sampled frame, default 128), ``agent`` (the agent address: an IP, or an
  interface whose first IPv4 address is used; default: the address the datagrams leave
  from).
- ``NetFlow``: ``targets``, ``active_timeout`` (seconds after which a long-lived flow is
  reported anyway; 0 means the default 600, -1 never), ``engine_type``, ``engine_id``.
  A flow is also reported once it has been idle for ``IDLE_TIMEOUT`` seconds.
- ``IPFIX`` (bridge sampling): ``targets``, ``sampling`` (1 in N packets, default 400),
  ``obs_domain_id`` and ``obs_point_id`` (default 0), ``cache_active_timeout`` (seconds
  a record aggregates sampled packets before it is sent) and ``cache_max_flows`` (records
  held at once); if either is 0 (the default) there is no cache and each sampled packet
  is its own record. ``other_config:enable-input-sampling=false`` stops the sampling.

A target that is not ``IP:PORT`` fails the transaction, naming the row and the value.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ovs_runtime.db.datum import Row, as_list, as_map, scalar

DEFAULT_SAMPLING, DEFAULT_POLLING, DEFAULT_HEADER = 400, 30, 128
DEFAULT_ACTIVE_TIMEOUT = 600
IDLE_TIMEOUT = 15  # seconds without a packet before a NetFlow flow is reported


class FlowExportError(ValueError):
    pass


@dataclass(frozen=True)
class SflowSpec:
    targets: tuple[tuple[str, int], ...]
    sampling: int = DEFAULT_SAMPLING
    polling: int = DEFAULT_POLLING
    header: int = DEFAULT_HEADER
    agent: str | None = None


@dataclass(frozen=True)
class IpfixSpec:
    targets: tuple[tuple[str, int], ...]
    sampling: int = DEFAULT_SAMPLING
    obs_domain_id: int = 0
    obs_point_id: int = 0
    cache_active_timeout: int = 0  # 0: no cache
    cache_max_flows: int = 0  # 0: no cache
    input_sampling: bool = True

    @property
    def caching(self) -> bool:
        return self.cache_active_timeout > 0 and self.cache_max_flows > 0


@dataclass(frozen=True)
class NetflowSpec:
    targets: tuple[tuple[str, int], ...]
    active_timeout: float = DEFAULT_ACTIVE_TIMEOUT  # 0: never
    engine_type: int = 0
    engine_id: int = 0


def parse_target(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 1 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise FlowExportError(
            f"{what}: target {text!r} is not IP:PORT (like 203.0.113.5:6343, or [2001:db8::5]:6343)"
        ) from None
    return str(address), number


def _targets(row: Row, what: str) -> tuple[tuple[str, int], ...]:
    return tuple(parse_target(t, what) for t in as_list(row["targets"]))


def sflow_from_row(row: Row, what: str) -> SflowSpec:
    return SflowSpec(
        targets=_targets(row, what),
        sampling=int(scalar(row["sampling"], DEFAULT_SAMPLING)),
        polling=int(scalar(row["polling"], DEFAULT_POLLING)),
        header=int(scalar(row["header"], DEFAULT_HEADER)),
        agent=scalar(row["agent"]),
    )


def netflow_from_row(row: Row, what: str) -> NetflowSpec:
    active = int(scalar(row["active_timeout"], 0))
    return NetflowSpec(
        targets=_targets(row, what),
        active_timeout=0 if active < 0 else (active or DEFAULT_ACTIVE_TIMEOUT),
        engine_type=int(scalar(row["engine_type"], 0)),
        engine_id=int(scalar(row["engine_id"], 0)),
    )


def ipfix_from_row(row: Row, what: str) -> IpfixSpec:
    flag = str(as_map(row["other_config"]).get("enable-input-sampling", "true"))
    if flag not in ("true", "false"):
        raise FlowExportError(
            f"{what}: other_config:enable-input-sampling={flag!r} is not true or false"
        )
    return IpfixSpec(
        targets=_targets(row, what),
        sampling=int(scalar(row["sampling"], DEFAULT_SAMPLING)),
        obs_domain_id=int(scalar(row["obs_domain_id"], 0)),
        obs_point_id=int(scalar(row["obs_point_id"], 0)),
        cache_active_timeout=int(scalar(row["cache_active_timeout"], 0)),
        cache_max_flows=int(scalar(row["cache_max_flows"], 0)),
        input_sampling=flag == "true",
    )


def check_flow_export(view: Any) -> None:
    from ovs_runtime.db.errors import OvsdbError

    readers = (("sFlow", sflow_from_row), ("NetFlow", netflow_from_row), ("IPFIX", ipfix_from_row))
    for table, reader in readers:
        for row_uuid, row in view.changes.get(table, {}).items():
            if row is None:
                continue
            try:
                reader(row, f"{table} {row_uuid}")
            except FlowExportError as exc:
                raise OvsdbError("constraint violation", str(exc)) from None
