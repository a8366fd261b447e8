"""The userspace datapath provider: an epoll loop over every port of every bridge.

One thread runs the loop. When a port's fd is readable it drains up to ``BATCH`` frames
and forwards each through the bridge's flow cache, falling back to the NORMAL decision
on a miss. fd-less ports (patch, memory) are serviced in the same iteration, so a frame
crossing a patch pair is delivered without a system call.

The reconciler calls the ``DatapathProvider`` methods from the daemon's main thread; a
lock serialises them with packet processing, so a configuration change takes effect
between two batches and never half-way through one.
"""

from __future__ import annotations

import logging
import select
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from ovs_runtime.bridge.desired_state import MirrorSpec, PortSpec
from ovs_runtime.bridge.tunnel_config import TUNNEL_TYPES
from ovs_runtime.datapath import mirroring, vnet_header
from ovs_runtime.datapath.bridge_state import BridgeState
from ovs_runtime.datapath.flow_cache import (
    KEEP,
    POP,
    PUSH,
    CachedDecision,
    tag_operation,
)
from ovs_runtime.datapath.mirroring import mirror_actions
from ovs_runtime.datapath.netdev_factory import KernelNetdevs, NetdevFactory
from ovs_runtime.datapath.policing import policer_for
from ovs_runtime.datapath.port_handle import PortHandle
from ovs_runtime.datapath.provider import InterfaceState
from ovs_runtime.netdev.provider import Netdev, NetdevGone
from ovs_runtime.ofproto.normal import NormalBridge
from ovs_runtime.ofproto.vlan import DROP, PortVlan
from ovs_runtime.packet.announce import rarp_announcement
from ovs_runtime.packet.ethernet import (
    MalformedFrame,
    mac_text,
    parse_l2,
    pop_vlan,
    push_vlan,
)

log = logging.getLogger(__name__)

BATCH = 64
REFRESH_INTERVAL = 1.0  # how often a cached flow re-stamps its source MAC's age


class UserspaceDatapath:
    def __init__(
        self,
        netdev_factory: NetdevFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.open_netdev: NetdevFactory = netdev_factory or KernelNetdevs()
        self.clock = clock
        self.lock = threading.RLock()
        self.bridges: dict[str, BridgeState] = {}
        self.epoll = select.epoll()
        self.by_fd: dict[int, PortHandle] = {}
        self.fdless: list[PortHandle] = []
        self.endpoints: dict[int, Any] = {}  # shared tunnel sockets, by fd
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.iterations = 0
        self.dirty: set[Netdev] = set()

    # -- the loop ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="datapath", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self.lock:
            for bridge in self.bridges.values():
                for handle in list(bridge.ports.values()):
                    self._detach(handle, removed=False)
            self.bridges.clear()
        self.epoll.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                events = self.epoll.poll(0.2)
            except OSError:
                continue
            with self.lock:
                self.run_once(events)

    def run_once(self, events: list[tuple[int, int]] | None = None) -> int:
        """Service ready fds, then fd-less ports until their queues are empty; returns
        how many frames were handled."""
        now = self.clock()
        self.iterations += 1
        handled = 0
        for fd, mask in events or ():
            handle = self.by_fd.get(fd)
            if handle is None:
                endpoint = self.endpoints.get(fd)
                if endpoint is not None:
                    endpoint.pump()  # fills the tunnel ports' queues, drained below
                continue
            if mask & (select.EPOLLERR | select.EPOLLHUP):
                self._port_failed(handle, f"device {handle.iface} reported an error")
                continue
            handled += self._drain(handle, now)
        for _ in range(64):  # patch chains are short; this bounds a misconfigured loop
            busy = False
            for handle in list(self.fdless):
                netdev = handle.netdev
                if netdev is not None and getattr(netdev, "queue", True):
                    count = self._drain(handle, now)
                    handled += count
                    busy = busy or count > 0
            if not busy:
                break
        self.flush()
        return handled

    def _drain(self, handle: PortHandle, now: float) -> int:
        netdev = handle.netdev
        assert netdev is not None
        try:
            packets = netdev.receive(BATCH)
        except NetdevGone as exc:
            self._port_failed(handle, str(exc))
            return 0
        received = len(packets)
        if handle.policer is not None and packets:
            packets = handle.policer.admit(packets, now)
            netdev.stats.rx_dropped += received - len(packets)
        self._forward_batch(handle, packets, now)
        return received

    def _forward_batch(
        self, handle: PortHandle, packets: list[tuple[bytes, bytes]], now: float
    ) -> None:
        """Forward a batch from one port. The loop body is the hot path: names are
        hoisted, and a cache hit costs a slice, a dict lookup and the sends."""
        bridge = handle.bridge
        normal = bridge.normal
        mac_table = normal.mac_table
        cache = bridge.cache
        entries = cache.entries
        ofport = handle.ofport
        hits = 0
        # Frames for a single output, unchanged, are gathered per port and handed over
        # in one call at the end (or before anything else is sent, to keep order).
        pending: dict[PortHandle, list[tuple[bytes, bytes]]] = {}
        for packet in packets:
            header, frame = packet
            # The cache key is the raw header: MACs, the outer tag if any, and the
            # EtherType after it; exactly what the NORMAL decision reads.
            key = (ofport, frame[:18] if frame[12:14] == b"\x81\x00" else frame[:14])
            decision = entries.get(key)
            if decision is not None and decision.generation == mac_table.generation:
                hits += 1
                if now - decision.refreshed > REFRESH_INTERVAL:
                    # Keep the source MAC from ageing out, without an update per packet.
                    decision.refreshed = now
                    mac_table.learn(decision.vlan, frame[6:12], ofport, now)
            else:
                if decision is not None:
                    cache.invalidations += 1
                cache.misses += 1
                decision = self._decide(handle, key, frame, now)
                if decision is None:
                    continue
            actions = decision.actions
            if decision.mirrors:
                for mirror in decision.mirrors:
                    mirror.tx_packets += 1
                    mirror.tx_bytes += len(frame)
            if len(actions) == 1 and actions[0][1] == KEEP:
                out = actions[0][0]
                queue = pending.get(out)
                if queue is None:
                    pending[out] = [packet]
                else:
                    queue.append(packet)
            else:
                if pending:
                    self._send_pending(pending)
                self._output(actions, header, frame)
        cache.hits += hits
        if pending:
            self._send_pending(pending)

    def _send_pending(self, pending: dict[PortHandle, list[tuple[bytes, bytes]]]) -> None:
        for out, queue in pending.items():
            netdev = out.netdev
            if netdev is None:
                continue
            try:
                send_many = getattr(netdev, "send_many", None)
                if send_many is not None:
                    send_many(queue)
                else:
                    for header, frame in queue:
                        netdev.send(header, frame)
                self.dirty.add(netdev)
            except NetdevGone as exc:
                self._port_failed(out, str(exc))
        pending.clear()

    def _decide(
        self, handle: PortHandle, key: tuple[Any, ...], frame: bytes, now: float
    ) -> CachedDecision | None:
        """A cache miss: parse, run NORMAL, compile the actions and cache them."""
        bridge = handle.bridge
        normal = bridge.normal
        try:
            hdr = parse_l2(frame)
        except MalformedFrame as exc:
            normal.drops[exc.reason] += 1
            handle.netdev.stats.rx_dropped += 1  # type: ignore[union-attr]
            return None
        vlan, outputs = normal.decide(handle.ofport, hdr, now)
        if vlan == DROP:
            handle.netdev.stats.rx_dropped += 1  # type: ignore[union-attr]
            return None
        actions = tuple(
            (bridge.by_ofport[port], tag_operation(hdr.vlan, vid), vid or 0)
            for port, vid in outputs
            if port in bridge.by_ofport
        )
        mirrors: tuple[Any, ...] = ()
        if bridge.mirrors:
            out_names = {a[0].name for a in actions}
            copies, mirrors = mirror_actions(bridge, handle, hdr.vlan, vlan, out_names)
            actions += tuple(copies)
        decision = CachedDecision(normal.generation, vlan, actions, now, mirrors)
        if len(frame) >= 18:  # shorter frames could share a key with a longer one
            bridge.cache.store(key, decision)
        return decision

    def _output(
        self, actions: tuple[tuple[Any, int, int], ...], header: bytes, frame: bytes
    ) -> None:
        """Several outputs, or tag changes: build each variant of the frame once."""
        variants: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        for out, op, vid in actions:
            netdev = out.netdev
            if netdev is None:
                continue
            if op == KEEP:
                out_header, out_frame = header, frame
            else:
                variant = variants.get((op, vid))
                if variant is None:
                    variant = _retag(header, frame, op, vid)
                    variants[(op, vid)] = variant
                out_header, out_frame = variant
            try:
                netdev.send(out_header, out_frame)
            except NetdevGone as exc:
                self._port_failed(out, str(exc))
                continue
            self.dirty.add(netdev)

    def flush(self) -> None:
        """Kick every transmit ring that has frames queued in this iteration."""
        for netdev in self.dirty:
            flush = getattr(netdev, "flush", None)
            if flush is not None:
                try:
                    flush()
                except OSError:
                    pass
        self.dirty.clear()

    # -- ports ------------------------------------------------------------------------

    def _attach(self, handle: PortHandle) -> str | None:
        iface = handle.spec.interfaces[0] if handle.spec.interfaces else None
        options = iface.options if iface else {}
        try:
            netdev = self.open_netdev(handle.kind, handle.iface, options)
        except NetdevGone as exc:
            handle.error = str(exc)
            return handle.error
        handle.netdev = netdev
        handle.error = None
        fd = netdev.fileno()
        if fd >= 0:
            self.epoll.register(fd, select.EPOLLIN)
            self.by_fd[fd] = handle
        else:
            self.fdless.append(handle)
        endpoint = getattr(netdev, "endpoint", None)
        if endpoint is not None and endpoint.fileno() not in self.endpoints:
            self.epoll.register(endpoint.fileno(), select.EPOLLIN)
            self.endpoints[endpoint.fileno()] = endpoint
        self._link_patches()
        return None

    def _detach(self, handle: PortHandle, removed: bool = True) -> None:
        """Close a port's netdev. ``removed``: the port or its device is gone for good, so
        its kept fd leaves systemd's store and a persistent TAP may disappear; on daemon
        shutdown both stay, for the next process to take back."""
        netdev = handle.netdev
        if netdev is None:
            return
        if removed:
            unpersist = getattr(netdev, "unpersist", None)
            if unpersist is not None and handle.error is None:
                unpersist()
            forget = getattr(self.open_netdev, "forget", None)
            if forget is not None:
                forget(handle.kind, handle.iface)
        fd = netdev.fileno()
        if fd >= 0 and self.by_fd.get(fd) is handle:
            self.epoll.unregister(fd)
            del self.by_fd[fd]
        if handle in self.fdless:
            self.fdless.remove(handle)
        self.dirty.discard(netdev)
        netdev.close()
        handle.netdev = None
        endpoint = getattr(netdev, "endpoint", None)
        if endpoint is not None and endpoint.users == 0:
            fd = endpoint.fileno()
            if self.endpoints.pop(fd, None) is not None:
                self.epoll.unregister(fd)
            endpoints = getattr(self.open_netdev, "endpoints", None)
            if removed and endpoints is not None:
                endpoints.forget(endpoint)
            endpoint.close()
        self._link_patches()

    def _port_failed(self, handle: PortHandle, reason: str) -> None:
        log.warning("bridge %s: port %s is down: %s", handle.bridge.name, handle.name, reason)
        self._detach(handle)
        handle.error = reason
        handle.bridge.normal.mac_table.forget_port(handle.ofport)

    def _link_patches(self) -> None:
        from ovs_runtime.netdev.patch import PatchNetdev

        patches = {
            h.iface: h.netdev
            for b in self.bridges.values()
            for h in b.ports.values()
            if isinstance(h.netdev, PatchNetdev)
        }
        for netdev in patches.values():
            assert isinstance(netdev, PatchNetdev)
            peer = patches.get(netdev.peer_name)
            netdev.peer = (
                peer if isinstance(peer, PatchNetdev) and peer.peer_name == netdev.name else None
            )

    # -- DatapathProvider ---------------------------------------------------------------

    def batch(self) -> threading.RLock:
        return self.lock

    def add_bridge(self, name: str, other_config: dict[str, str]) -> None:
        with self.lock:
            bridge = BridgeState(name, NormalBridge(name))
            self.bridges[name] = bridge
            for problem in bridge.configure(other_config):
                log.warning("%s", problem)

    def configure_bridge(self, name: str, other_config: dict[str, str]) -> None:
        with self.lock:
            for problem in self.bridges[name].configure(other_config):
                log.warning("%s", problem)

    def remove_bridge(self, name: str) -> None:
        with self.lock:
            bridge = self.bridges.pop(name, None)
            if bridge is None:
                return
            for handle in list(bridge.ports.values()):
                self._detach(handle)

    def add_port(self, bridge: str, port: PortSpec, ofport: int) -> str | None:
        with self.lock:
            state = self.bridges[bridge]
            kind = port.interfaces[0].type if port.interfaces else ""
            handle = PortHandle(state, port, ofport, kind)
            handle.vlan = PortVlan.from_config(port.vlan_mode, port.tag, port.trunks)
            handle.policer = policer_for(*port.policing, None)
            state.ports[port.name] = handle
            state.by_ofport[ofport] = handle
            state.normal.set_port(ofport, handle.vlan, mesh=kind in TUNNEL_TYPES)
            if len(port.interfaces) > 1:
                handle.error = "ports with several interfaces (bonds) are not supported"
                return handle.error
            return self._attach(handle)

    def update_port(self, bridge: str, port: PortSpec, ofport: int) -> str | None:
        with self.lock:
            state = self.bridges[bridge]
            handle = state.ports.get(port.name)
            kind = port.interfaces[0].type if port.interfaces else ""
            same_device = (
                handle is not None
                and handle.kind == kind
                and handle.ofport == ofport
                and handle.spec.interfaces == port.interfaces
            )
            if not same_device:
                self.remove_port(bridge, port.name)
                return self.add_port(bridge, port, ofport)
            assert handle is not None
            handle.spec = port
            handle.vlan = PortVlan.from_config(port.vlan_mode, port.tag, port.trunks)
            handle.policer = policer_for(*port.policing, handle.policer)
            state.normal.set_port(ofport, handle.vlan, mesh=kind in TUNNEL_TYPES)
            return handle.error

    def remove_port(self, bridge: str, port: str) -> None:
        with self.lock:
            state = self.bridges.get(bridge)
            if state is None:
                return
            handle = state.ports.pop(port, None)
            if handle is None:
                return
            self._detach(handle)
            state.by_ofport.pop(handle.ofport, None)
            state.normal.remove_port(handle.ofport)

    def maintain(self) -> list[str]:
        events = []
        with self.lock:
            now = self.clock()
            for bridge in self.bridges.values():
                if bridge.normal.mac_table.expire(now):
                    events.append(f"bridge {bridge.name}: aged out MAC entries")
                for handle in bridge.ports.values():
                    if handle.netdev is None and len(handle.spec.interfaces) == 1:
                        if self._attach(handle) is None:
                            events.append(f"bridge {bridge.name}: port {handle.name} re-attached")
        return events

    def interface_states(self) -> dict[str, InterfaceState]:
        states = {}
        with self.lock:
            for bridge in self.bridges.values():
                for handle in bridge.ports.values():
                    netdev = handle.netdev
                    if netdev is None:
                        states[handle.iface] = InterfaceState(-1, handle.error)
                        continue
                    status = netdev.status()
                    states[handle.iface] = InterfaceState(
                        ofport=handle.ofport,
                        error=None,
                        link_state=status.link_state,
                        admin_state=status.admin_state,
                        mtu=status.mtu,
                        ifindex=status.ifindex,
                        mac_in_use=status.mac,
                        statistics=netdev.stats.as_dict(),
                        status=status.extra,
                    )
        return states

    def fdb(self, bridge: str) -> list[dict[str, Any]]:
        with self.lock:
            state = self.bridges.get(bridge)
            if state is None:
                raise KeyError(bridge)
            now = self.clock()
            names = {h.ofport: h.name for h in state.ports.values()}
            return [
                {
                    "port": entry.port,
                    "port_name": names.get(entry.port, "?"),
                    "vlan": vlan,
                    "mac": mac_text(mac),
                    "age": int(now - entry.last_seen),
                }
                for (vlan, mac), entry in state.normal.mac_table.entries.items()
                if now - entry.last_seen <= state.normal.mac_table.aging
            ]

    def announce(self, bridge: str, port: str, entries: list[tuple[bytes, int]]) -> int:
        """Send a RARP for each (MAC, VLAN) as if the port had sent it: the bridge learns
        the MAC there and floods the announcement in its VLAN. Returns how many."""
        with self.lock:
            state = self.bridges.get(bridge)
            handle = state.ports.get(port) if state is not None else None
            if handle is None or handle.netdev is None:
                raise KeyError(f"port {port} is not attached to bridge {bridge}")
            packets = [
                (vnet_header.EMPTY, rarp_announcement(mac, handle.vlan.output_tag(vlan)))
                for mac, vlan in entries
                if handle.vlan.carries(vlan)
            ]
            self._forward_batch(handle, packets, self.clock())
            self.flush()
            return len(packets)

    def configure_mirrors(self, bridge: str, mirrors: tuple[MirrorSpec, ...]) -> None:
        with self.lock:
            state = self.bridges[bridge]
            state.mirror_specs = mirrors
            mirroring.configure(state, mirrors)

    def mirror_statistics(self) -> dict[str, dict[str, int]]:
        """Mirror row UUID (text) -> counters."""
        with self.lock:
            return {
                str(m.spec.uuid): m.statistics() for b in self.bridges.values() for m in b.mirrors
            }

    def fdb_flush(self, bridge: str | None) -> int:
        with self.lock:
            targets = [self.bridges[bridge]] if bridge else list(self.bridges.values())
            count = 0
            for state in targets:
                count += len(state.normal.mac_table.entries)
                state.normal.mac_table.flush()
            return count

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {
                "datapath": "userspace",
                "iterations": self.iterations,
                "bridges": {
                    name: {
                        "flow_cache": {
                            "entries": len(b.cache.entries),
                            "hits": b.cache.hits,
                            "misses": b.cache.misses,
                            "invalidations": b.cache.invalidations,
                        },
                        "mac_table": {
                            "entries": len(b.normal.mac_table.entries),
                            "max": b.normal.mac_table.max_entries,
                            "aging": b.normal.mac_table.aging,
                            "evictions": b.normal.mac_table.evictions,
                            "moves": b.normal.mac_table.moves,
                        },
                        "drops": dict(b.normal.drops),
                        "ports": {
                            h.name: {
                                "ofport": h.ofport,
                                "type": h.kind or "system",
                                "state": "up" if h.netdev else "down",
                                "error": h.error,
                                **(h.netdev.stats.as_dict() if h.netdev else {}),
                            }
                            for h in sorted(b.ports.values(), key=lambda h: h.ofport)
                        },
                    }
                    for name, b in sorted(self.bridges.items())
                },
                "tunnel_endpoints": {
                    f"{e.kind} {e.sock.getsockname()[0]}:{e.sock.getsockname()[1]}": {
                        "ports": len(e.ports),
                        "drops": dict(e.drops),
                    }
                    for e in self.endpoints.values()
                },
            }


def _retag(header: bytes, frame: bytes, op: int, vid: int) -> tuple[bytes, bytes]:
    if op == POP:
        return vnet_header.shifted(header, -4), pop_vlan(frame)
    if op == PUSH:
        return vnet_header.shifted(header, 4), push_vlan(frame, vid)
    tci = (frame[14] << 8) | frame[15]
    return header, frame[:14] + struct.pack("!H", (tci & 0xF000) | vid) + frame[16:]
