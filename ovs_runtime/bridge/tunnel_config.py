"""Tunnel interface options (``vxlan``, ``geneve``), parsed and checked as OVS defines them.

``parse_tunnel`` turns an Interface's ``options`` into a ``TunnelConfig`` or raises
``TunnelConfigError`` naming the option and what is accepted. ``check_tunnels`` is a
database commit check: a transaction that leaves a bad tunnel, or two tunnels to the same
remote with the same key, type and port, fails as a whole with that message, so neither
``ovsr``, ``ovs-vsctl`` nor Ansible can apply half a change.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ovs_runtime.db.datum import as_map, scalar

TUNNEL_TYPES = {"vxlan": 4789, "geneve": 6081}
OPTIONS = (
    "remote_ip",
    "local_ip",
    "key",
    "in_key",
    "out_key",
    "dst_port",
    "tos",
    "ttl",
    "csum",
    "df_default",
)
MAX_VNI = (1 << 24) - 1


class TunnelConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TunnelConfig:
    kind: str
    remote_ip: str | None  # None: options:remote_ip=flow, the remote from tun_dst
    local_ip: str | None
    vni: int | None  # None: options:key=flow, the VNI comes from the flow (set_tunnel)
    dst_port: int
    tos: int | None  # None: inherit (0 for non-IP inner frames)
    ttl: int

    @property
    def endpoint_key(self) -> tuple[str, str, int]:
        """(type, address to bind, UDP port): tunnels with the same key share one socket.
        Without ``local_ip`` the socket binds to the wildcard address of the remote's
        IP version ("" for IPv4, "::" for IPv6), so IPv4 and IPv6 tunnels each get one."""
        wildcard = "::" if self.remote_ip is not None and ":" in self.remote_ip else ""
        return (self.kind, self.local_ip or wildcard, self.dst_port)

    @property
    def identity(self) -> tuple[str, str, str, int | None, int]:
        return (self.kind, self.remote_ip or "flow", self.local_ip or "", self.vni, self.dst_port)


def _ip(name: str, value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise TunnelConfigError(
            f"{what}: options:{name}={value!r} is not an IPv4 or IPv6 address"
        ) from None


def _int(name: str, value: str, low: int, high: int, what: str, extra: str = "") -> int:
    try:
        number = int(value, 0)
    except ValueError:
        number = -1
    if not low <= number <= high:
        raise TunnelConfigError(
            f"{what}: options:{name}={value!r} is not valid; expected {low} to {high}{extra}"
        )
    return number


def parse_tunnel(name: str, kind: str, options: dict[str, str]) -> TunnelConfig:
    what = f"interface {name} (type {kind})"
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TunnelConfigError(
            f"{what}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(OPTIONS)}"
        )
    remote = options.get("remote_ip")
    if not remote:
        raise TunnelConfigError(f"{what}: options:remote_ip is required")
    keys = {options.get(k) for k in ("key", "in_key", "out_key") if k in options}
    if len(keys) > 1:
        raise TunnelConfigError(f"{what}: different in_key and out_key are not supported")
    key = keys.pop() if keys else "0"
    assert key is not None
    vni = None if key == "flow" else _int("key", key, 0, MAX_VNI, what, " (a 24-bit VNI, or flow)")
    tos = options.get("tos", "0")
    ttl = options.get("ttl", "64")
    remote_ip = None if remote == "flow" else _ip("remote_ip", remote, what)
    local_ip = _ip("local_ip", options["local_ip"], what) if "local_ip" in options else None
    if remote_ip and local_ip and (":" in remote_ip) != (":" in local_ip):
        raise TunnelConfigError(
            f"{what}: options:local_ip={local_ip} and options:remote_ip={remote_ip} are not "
            "the same IP version; give a local_ip of the remote's version, or none"
        )
    return TunnelConfig(
        kind=kind,
        remote_ip=remote_ip,
        local_ip=local_ip,
        vni=vni,
        dst_port=_int("dst_port", options.get("dst_port", str(TUNNEL_TYPES[kind])), 1, 65535, what),
        tos=None if tos == "inherit" else _int("tos", tos, 0, 255, what, ", or inherit"),
        ttl=64 if ttl == "inherit" else _int("ttl", ttl, 1, 255, what, ", or inherit"),
    )


def check_tunnels(view: Any) -> None:
    """Commit check over the Interface table as the transaction would leave it."""
    from ovs_runtime.db.errors import OvsdbError

    if not _tunnel_config_touched(view):
        return  # status write-backs and unrelated changes: nothing to check
    seen: dict[tuple[str, str, str, int | None, int], str] = {}
    for _uuid, row in view.rows("Interface"):
        kind = scalar(row["type"], "")
        if kind not in TUNNEL_TYPES:
            continue
        name = scalar(row["name"], "?")
        options = as_map(row["options"])
        try:
            config = parse_tunnel(name, kind, options)
        except TunnelConfigError as exc:
            raise OvsdbError("constraint violation", str(exc)) from None
        other = seen.get(config.identity)
        if other is not None:
            raise OvsdbError(
                "constraint violation",
                f"interfaces {other} and {name} are the same {kind} tunnel (remote_ip "
                f"{config.remote_ip or 'flow'}, key "
                f"{'flow' if config.vni is None else config.vni}, "
                f"dst_port {config.dst_port}); "
                "a remote and key may have only one tunnel",
            )
        seen[config.identity] = name


def _tunnel_config_touched(view: Any) -> bool:
    committed = view.committed["Interface"]
    for row_uuid, new in view.changes["Interface"].items():
        old = committed.get(row_uuid)
        if new is None or old is None:
            return True
        if any(old[c].values != new[c].values for c in ("name", "type", "options")):
            return True
    return False
