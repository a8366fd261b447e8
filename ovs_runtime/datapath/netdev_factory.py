"""Opening ports by ``Interface.type``: the kernel-backed netdevs, taking back the fds
kept in systemd's store across a restart, and the in-daemon ``patch`` type."""

from __future__ import annotations

import os
from collections.abc import Callable

from ovs_runtime.bridge.tunnel_config import TUNNEL_TYPES, TunnelConfigError, parse_tunnel
from ovs_runtime.datapath.fd_store import FdStore, fd_name
from ovs_runtime.netdev.provider import Netdev, NetdevGone
from ovs_runtime.netdev.tunnel import TunnelEndpoints

NetdevFactory = Callable[[str, str, dict[str, str]], Netdev]  # (kind, name, options)
SUPPORTED_TYPES = ("", "system", "internal", "tap", "patch", "vxlan", "geneve")


class KernelNetdevs:
    """Opens kernel-backed ports, taking back fds kept across a restart (``fd_store``)."""

    def __init__(self, fd_store: FdStore | None = None) -> None:
        self.fd_store = fd_store
        self.endpoints = TunnelEndpoints(fd_store)

    def __call__(self, kind: str, name: str, options: dict[str, str]) -> Netdev:
        if kind in TUNNEL_TYPES:
            try:
                config = parse_tunnel(name, kind, options)
            except TunnelConfigError as exc:
                raise NetdevGone(str(exc)) from None
            return self.endpoints.port(name, config)
        return open_kernel_netdev(kind, name, options, self.fd_store)

    def forget(self, kind: str, name: str) -> None:
        if self.fd_store is not None and kind not in TUNNEL_TYPES:
            self.fd_store.forget(fd_name(_store_kind(kind), name))


def _store_kind(kind: str) -> str:
    return "pkt" if kind in ("", "system") else "tap"


def open_kernel_netdev(
    kind: str, name: str, options: dict[str, str], fd_store: FdStore | None = None
) -> Netdev:
    from ovs_runtime.netdev.afpacket import AfPacketNetdev, inherited_socket_is_for
    from ovs_runtime.netdev.tap import TapNetdev

    if kind not in ("", "system", "internal", "tap"):
        return _open_virtual(kind, name, options)
    stored = fd_name(_store_kind(kind), name)
    inherited = fd_store.take(stored) if fd_store is not None else None
    if kind in ("", "system"):
        if inherited is not None and not inherited_socket_is_for(inherited, name):
            os.close(inherited)  # the device was re-created: the old socket is dead
            inherited = None
        netdev: Netdev = AfPacketNetdev(name, inherited)
    else:
        netdev = TapNetdev(name, persistent=kind == "tap", inherited_fd=inherited)
        inherited = inherited if getattr(netdev, "inherited", False) else None
    if fd_store is not None and inherited is None:
        fd_store.keep(stored, netdev.fileno())
    return netdev


def _open_virtual(kind: str, name: str, options: dict[str, str]) -> Netdev:
    from ovs_runtime.netdev.patch import PatchNetdev

    if kind == "patch":
        peer = options.get("peer")
        if not peer:
            raise NetdevGone(f"patch port {name} needs options:peer=<peer port>")
        return PatchNetdev(name, peer)
    raise NetdevGone(
        f"interface type {kind!r} is not supported; supported: "
        + ", ".join(repr(t) for t in SUPPORTED_TYPES)
    )
