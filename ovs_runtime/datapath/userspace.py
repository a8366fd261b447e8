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

import ipaddress
import logging
import os
import select
import struct
import threading
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

from ovs_runtime.bridge import qos_tc
from ovs_runtime.bridge.bond_config import BondSpec
from ovs_runtime.bridge.desired_state import MirrorSpec, PortSpec
from ovs_runtime.bridge.flow_export_config import IpfixSpec, NetflowSpec, SflowSpec
from ovs_runtime.bridge.flow_rules import FlowRuleSpec
from ovs_runtime.bridge.tunnel_config import TUNNEL_TYPES
from ovs_runtime.datapath import mirroring, vnet_header
from ovs_runtime.datapath.bonding import BUNDLE_BASE, BondMember, BondState
from ovs_runtime.datapath.bridge_flows import BridgeFlows
from ovs_runtime.datapath.bridge_state import BridgeState
from ovs_runtime.datapath.flow_cache import (
    KEEP,
    KEYED,
    POP,
    PUSH,
    QUEUED,
    REFRESH_INTERVAL,
    REWRITE,
    CachedDecision,
    tag_operation,
)
from ovs_runtime.datapath.flow_export import Exporter, NetflowCache, SflowAgent
from ovs_runtime.datapath.ipfix_export import IpfixAgent
from ovs_runtime.datapath.link_events import LinkEvents, LinkEventSource
from ovs_runtime.datapath.mirroring import mirror_actions
from ovs_runtime.datapath.netdev_factory import KernelNetdevs, NetdevFactory
from ovs_runtime.datapath.policing import policer_for
from ovs_runtime.datapath.port_handle import PortHandle
from ovs_runtime.datapath.provider import InterfaceState
from ovs_runtime.datapath.ring_relay import relay
from ovs_runtime.netdev import kernel_gso, link
from ovs_runtime.netdev.provider import Netdev, NetdevGone
from ovs_runtime.ofproto import flow_key
from ovs_runtime.ofproto.flow_key import exact_bytes
from ovs_runtime.ofproto.normal import NormalBridge
from ovs_runtime.ofproto.pipeline import Output, describe_wildcards
from ovs_runtime.ofproto.port_security import nd_violation
from ovs_runtime.ofproto.vlan import PortVlan
from ovs_runtime.packet.announce import rarp_announcement
from ovs_runtime.packet.ethernet import (
    MalformedFrame,
    mac_text,
    parse_l2,
    pop_vlan,
    push_vlan,
)
from ovs_runtime.packet.lacpdu import SLOW_ETHERTYPE, is_lacpdu
from ovs_runtime.packet.offload import OffloadError, complete_frame
from ovs_runtime.packet.rewrite import rewrite

log = logging.getLogger(__name__)

BATCH = 64
FLOW_MAINTENANCE_INTERVAL = 1.0  # rule counters and timeouts are this fresh


class UserspaceDatapath:
    def __init__(
        self,
        netdev_factory: NetdevFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        link_events: Callable[[], LinkEventSource] = LinkEvents,
    ) -> None:
        self.open_netdev: NetdevFactory = netdev_factory or KernelNetdevs()
        self.clock = clock
        self.open_link_events = link_events
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
        self.last_flow_maintenance = 0.0
        self.bonds: list[BondState] = []
        self.link_events: LinkEventSource | None = None  # while there are bonds
        self.link_fd = -1  # its fd, compared with every non-port event's

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
                self._close_exporters(bridge)  # what they hold is sent, not lost
                for handle in bridge.interface_handles():
                    self._detach(handle, removed=False)
            self.bonds.clear()
            self._watch_links()
            self.bridges.clear()
            kernel_gso.close_shared()
        self.epoll.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                events = self.epoll.poll(0.05 if self.bonds else 0.2)
            except OSError:
                continue
            with self.lock:
                handled = self.run_once(events)
            if handled:
                # Whoever our frames just woke (a receiving process, a VM's vCPU thread)
                # may be queued behind us on this CPU: let it run now, rather than at the
                # end of our time slice while its socket overflows. On a core of our own
                # this returns at once.
                os.sched_yield()

    def run_once(self, events: list[tuple[int, int]] | None = None) -> int:
        """Service ready fds, then fd-less ports until their queues are empty; returns
        how many frames were handled."""
        now = self.clock()
        self.iterations += 1
        handled = 0
        for fd, mask in events or ():
            handle = self.by_fd.get(fd)
            if handle is None and fd == self.link_fd:
                self._links_changed(self._read_link_events())
                continue
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
        for bond in self.bonds:
            if bond.due(now):
                self._poll_bond(bond, now)
        self.flush()
        if now - self.last_flow_maintenance >= FLOW_MAINTENANCE_INTERVAL:
            self.last_flow_maintenance = now
            self.maintain_flows(now)
        return handled

    def maintain_flows(self, now: float) -> None:
        """Credit cached decisions' packets to their rules, then expire rules whose
        idle or hard timeout passed (their rows are deleted by the reconciler)."""
        for bridge in self.bridges.values():
            bridge.cache.push_all(now)
            if bridge.flows.expire(now):
                bridge.normal.invalidate()
            if bridge.sflow is not None:
                bridge.sflow.poll(sorted(bridge.interface_handles(), key=lambda h: h.ofport), now)
                bridge.sflow.flush(now)
            if bridge.netflow is not None:
                bridge.netflow.expire(now)
            if bridge.ipfix is not None:
                bridge.ipfix.expire()

    def _drain(self, handle: PortHandle, now: float) -> int:
        netdev = handle.netdev
        assert netdev is not None
        if getattr(netdev, "flow_keyed", False):
            # key=flow tunnel: every frame carries its own VNI, its tun_id.
            runs = netdev.receive_keyed(BATCH)  # type: ignore[attr-defined]
            for (vni, source), run in runs:
                self._forward_batch(handle, run, now, tun=(vni, _ipv4_int(source)))
            return sum(len(run) for _meta, run in runs)
        budget = BATCH
        rx_ring = getattr(netdev, "rx_ring", None)
        if (
            rx_ring is not None
            and not rx_ring.holes
            and handle.policer is None
            and handle.nd_guard is None
            and handle.bridge.relay_ok
        ):
            # Cache hits out of one ring port go ring to ring; the general path below
            # takes over at the first frame that needs more, or when the ring looks
            # empty (it knows how to tell empty from stuck).
            taken, slow = relay(handle, rx_ring, budget, now, self.dirty, handle.bridge.deep)
            budget -= taken
            if (taken and not slow) or not budget:
                return taken
        else:
            taken = 0
        try:
            packets = netdev.receive(budget)
        except NetdevGone as exc:
            self._port_failed(handle, str(exc))
            return 0
        received = len(packets)
        if handle.policer is not None and packets:
            packets = handle.policer.admit(packets, now)
            netdev.stats.rx_dropped += received - len(packets)
        self._forward_batch(handle, packets, now)
        return taken + received

    def _forward_batch(
        self,
        handle: PortHandle,
        packets: list[tuple[bytes, bytes]],
        now: float,
        tun: tuple[int, int] | None = None,
    ) -> None:
        """Forward a batch from one port. The loop body is the hot path: names are
        hoisted, and a cache hit costs a slice, a dict lookup and the sends."""
        bridge = handle.bridge
        normal = bridge.normal
        mac_table = normal.mac_table
        cache = bridge.cache
        entries = cache.entries
        ofport = handle.ofport
        deep = bridge.deep
        sampler = bridge.sflow
        netflow = bridge.netflow
        ipfix = bridge.ipfix
        nd_guard = handle.nd_guard
        bond_port = handle.member_of
        lacp_bond = bond_port.bond if bond_port is not None else None
        if lacp_bond is not None and lacp_bond.lacp is None:
            lacp_bond = None
        hits = 0
        # Frames for a single output, unchanged, are gathered per port and handed over
        # in one call at the end (or before anything else is sent, to keep order).
        pending: dict[PortHandle, list[tuple[bytes, bytes]]] = {}
        for packet in packets:
            header, frame = packet
            if lacp_bond is not None and frame[12:14] == SLOW_ETHERTYPE:
                # The bond's own, never switched (nor decided, so never cached): LACPDUs
                # go to LACP; Marker, OAM and the rest are dropped and counted, as OVS.
                if is_lacpdu(frame):
                    self._lacp_received(lacp_bond, handle, frame, now)
                else:
                    normal.drops["slow-protocol"] += 1
                    handle.netdev.stats.rx_dropped += 1  # type: ignore[union-attr]
                continue
            if nd_guard is not None:  # Neighbour Discovery is checked frame by frame
                nd_drop = nd_violation(nd_guard, frame)
                if nd_drop:
                    normal.drops[nd_drop] += 1
                    handle.netdev.stats.rx_dropped += 1  # type: ignore[union-attr]
                    continue
            # The exact-match key is the raw header: MACs, the outer tag if any, and the
            # EtherType after it; with rules that look deeper, the L3/L4 bytes too.
            if deep:
                key: tuple[Any, ...] = (ofport, exact_bytes(frame))
            else:
                key = (ofport, frame[:18] if frame[12:14] == b"\x81\x00" else frame[:14])
            if tun is not None:  # a flow-based tunnel: the frame's VNI and remote count
                key = (*key, *tun)
            decision = entries.get(key)
            if decision is not None and decision.generation == mac_table.generation:
                hits += 1
                if decision.drop_reason:
                    normal.drops[decision.drop_reason] += 1
                    handle.netdev.stats.rx_dropped += 1  # type: ignore[union-attr]
                elif decision.learned and now - decision.refreshed > REFRESH_INTERVAL:
                    # Keep the source MAC from ageing out, without an update per packet.
                    decision.refreshed = now
                    mac_table.learn(*decision.learned, now)
            else:
                if decision is not None:
                    cache.invalidations += 1
                cache.misses += 1
                cacheable = len(frame) >= 18 and key[1] is not None
                decision = self._decide(handle, key if cacheable else None, frame, now, tun)
                if decision is None:
                    continue
            decision.n_packets += 1
            decision.n_bytes += len(frame)
            actions = decision.actions
            if sampler is not None:
                sampler.countdown -= 1
                if sampler.countdown <= 0:
                    sampler.sample(ofport, frame, [a[0].ofport for a in actions])
            if ipfix is not None:
                ipfix.countdown -= 1
                if ipfix.countdown <= 0:
                    ipfix.sample(ofport, frame, [a[0].ofport for a in actions])
            if netflow is not None and key[1] is not None:  # (NetFlow makes keys deep)
                netflow.count(key, frame, ofport, actions, now)
            if not actions:
                continue
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

    @staticmethod
    def _lacp_received(bond: BondState, handle: PortHandle, frame: bytes, now: float) -> None:
        member = next((m for m in bond.members if m.handle is handle), None)
        if member is not None:
            bond.lacp_received(member, frame, now)

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
        self,
        handle: PortHandle,
        exact_key: tuple[Any, ...] | None,
        frame: bytes,
        now: float,
        tun: tuple[int, int] | None = None,
    ) -> CachedDecision | None:
        """An exact-match miss: parse, try the megaflow cache, else run the pipeline,
        compile its outputs and cache the decision under both keys."""
        bridge = handle.bridge
        normal = bridge.normal
        try:
            parse_l2(frame)
        except MalformedFrame as exc:
            normal.drops[exc.reason] += 1
            handle.netdev.stats.rx_dropped += 1  # type: ignore[union-attr]
            return None
        tun_id, tun_src = (handle.tun_id, handle.tun_src) if tun is None else tun
        key = flow_key.extract(frame, handle.ofport, tun_id, tun_src)
        decision = bridge.cache.megaflow_lookup(key, normal.generation)
        if decision is not None:
            if exact_key is not None:
                bridge.cache.remember(exact_key, decision, now)
            if decision.drop_reason:
                normal.drops[decision.drop_reason] += 1
                handle.netdev.stats.rx_dropped += 1  # type: ignore[union-attr]
            elif decision.learned:
                normal.mac_table.learn(*decision.learned, now)
            return decision
        bridge.now = now
        bridge.normal_vlan = -1
        bridge.normal_learned = None
        result = bridge.flows.pipeline.translate(key, bridge)
        vlan = bridge.normal_vlan
        if result.drop_reason:
            if result.drop_reason.startswith("port-security"):
                normal.drops[result.drop_reason] += 1
            handle.netdev.stats.rx_dropped += 1  # type: ignore[union-attr]
        actions = compile_outputs(bridge, key, result.outputs)
        if any(op == KEYED for _h, op, _a in actions):  # sent with the frame's VNI and remote
            result.wildcards[flow_key.TUN_ID] = flow_key.FULL[flow_key.TUN_ID]
            result.wildcards[flow_key.TUN_DST] = flow_key.FULL[flow_key.TUN_DST]
        if any(_inner(op, arg) == REWRITE for _h, op, arg in actions):
            # A rewrite is built for the frame's tagging and L3 type.
            result.wildcards[flow_key.VLAN_TCI] = 0xFFFF
            result.wildcards[flow_key.DL_TYPE] = 0xFFFF
        mirrors: tuple[Any, ...] = ()
        if bridge.mirrors and not result.drop_reason:
            result.wildcards[flow_key.VLAN_TCI] = 0xFFFF  # mirrors select by VLAN
            frame_vid = key[flow_key.VLAN_TCI] & 0x0FFF if key[flow_key.VLAN_TCI] else None
            out_names = {a[0].name for a in actions}
            mirror_vlan = vlan if vlan >= 0 else handle.vlan.input_vlan(frame_vid)
            copies, mirrors = mirror_actions(
                bridge, handle, frame_vid, max(mirror_vlan, 0), out_names
            )
            actions += tuple(copies)
        decision = CachedDecision(
            normal.generation,
            bridge.normal_learned,
            actions,
            now,
            mirrors,
            tuple(result.rules),
            drop_reason=result.drop_reason if not actions else None,
        )
        bridge.cache.store(exact_key, tuple(result.wildcards), key, decision, now)
        return decision

    def _output(
        self, actions: tuple[tuple[Any, int, Any], ...], header: bytes, frame: bytes
    ) -> None:
        """Several outputs, tag changes or rewrites: build each variant of the frame
        once."""
        variants: dict[tuple[int, Any], list[tuple[bytes, bytes]]] = {}
        for out, op, arg in actions:
            netdev = out.netdev
            if netdev is None:
                continue
            priority = vni = None
            remote = ""
            if op == QUEUED:
                op, arg, priority = arg
            elif op == KEYED:
                op, arg, vni, remote = arg
            if op == KEEP:
                frames = [(header, frame)]
            else:
                frames = variants.get((op, arg))  # type: ignore[assignment]
                if frames is None:
                    try:
                        frames = _variant(header, frame, op, arg)
                    except OffloadError:
                        out.bridge.normal.drops["offload-error"] += 1
                        frames = []
                    variants[(op, arg)] = frames
            try:
                for out_header, out_frame in frames:
                    if priority is not None:
                        netdev.send_with_priority(priority, out_header, out_frame)
                    elif vni is not None:
                        netdev.send_with_key(vni, remote, out_header, out_frame)
                    else:
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
        interfaces = handle.spec.interfaces
        iface = interfaces[handle.member_index] if interfaces else None
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
        if handle.bond is not None:  # sending on the bond failed: on its active member
            active = handle.bond.active
            if active is None:
                return
            handle = active.handle
        log.warning("bridge %s: port %s is down: %s", handle.bridge.name, handle.iface, reason)
        self._detach(handle)
        handle.error = reason
        bond_port = handle.member_of
        if bond_port is None:
            handle.bridge.normal.mac_table.forget_port(handle.ofport)
        elif bond_port.bond is not None:
            # A device that is gone leaves the bond at once; one set down (its socket
            # reports ENETDOWN) is a carrier loss, which waits for bond_downdelay.
            for member in bond_port.bond.members:
                if member.handle is handle:
                    member.vanished = not link.exists(handle.iface)
            self._poll_bond(bond_port.bond, self.clock())

    def _watch_links(self) -> None:
        """Link notifications on while there are bonds (``link_events``)."""
        if self.bonds and self.link_events is None:
            try:
                self.link_events = self.open_link_events()
            except Exception as exc:  # (pyroute2 raises more than OSError)
                log.warning("no link notifications, bonds poll their carrier only: %s", exc)
                return
            self.link_fd = self.link_events.fileno()
            self.epoll.register(self.link_fd, select.EPOLLIN)
        elif not self.bonds and self.link_events is not None:
            self.epoll.unregister(self.link_fd)
            self.link_events.close()
            self.link_events, self.link_fd = None, -1

    def _read_link_events(self) -> set[str] | None:
        assert self.link_events is not None
        try:
            return self.link_events.changed()
        except Exception:  # never the datapath thread's end: every bond looks instead
            log.exception("cannot read link notifications")
            return None

    def _links_changed(self, names: set[str] | None) -> None:
        """Bonds with a member among ``names`` (all bonds: None) read their carrier in
        this iteration, if they use carrier detection."""
        for bond in self.bonds:
            if bond.spec.notified and (names is None or any(m.name in names for m in bond.members)):
                bond.last_poll = float("-inf")

    def _poll_bond(self, bond: BondState, now: float) -> None:
        if bond.poll(now):
            self._failed_over(bond, now)
        self._log_bond_events(bond)
        for member, frame in bond.lacp_frames(now):
            netdev = member.handle.netdev
            if netdev is None:
                continue
            try:
                netdev.send(vnet_header.EMPTY, frame)
            except NetdevGone as exc:
                self._port_failed(member.handle, str(exc))
                continue
            self.dirty.add(netdev)

    @staticmethod
    def _log_bond_events(bond: BondState) -> None:
        for event in bond.events:
            log.info("bridge %s: %s", bond.port.bridge.name, event)
        bond.events.clear()

    def _failed_over(self, bond: BondState, now: float) -> None:
        """A new active member (or none): NORMAL drops frames from the others, cached
        decisions are re-made, and upstream switches learn where the bridge's other
        MACs are now."""
        state = bond.port.bridge
        members = {m.handle.ofport for m in bond.members}
        state.normal.set_bond(bond.port.ofport, members, bond.backup_ofports())
        self._log_bond_events(bond)
        if bond.active is None:
            bond.announced = None  # whichever member comes back announces the MACs
        netdev = bond.port.netdev
        if netdev is None or bond.announced is bond.active:
            return
        bond.announced = bond.active
        table = state.normal.mac_table
        entries = [
            (vid, mac, entry.port)
            for (vid, mac), entry in table.entries.items()
            if now - entry.last_seen <= table.aging
        ]
        frames = bond.learning_frames(entries)
        try:
            for header, frame in frames:
                netdev.send(header, frame)
        except NetdevGone as exc:
            self._port_failed(bond.port, str(exc))
            return
        bond.learning_packets += len(frames)
        self.dirty.add(netdev)

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

    def add_bridge(
        self, name: str, other_config: dict[str, str], flood_vlans: frozenset[int] = frozenset()
    ) -> None:
        with self.lock:
            bridge = BridgeState(name, NormalBridge(name), flows=BridgeFlows(self.clock()))
            self.bridges[name] = bridge
            for problem in bridge.configure(other_config):
                log.warning("%s", problem)
            bridge.normal.set_flood_vlans(flood_vlans)

    def configure_bridge(
        self, name: str, other_config: dict[str, str], flood_vlans: frozenset[int] = frozenset()
    ) -> None:
        with self.lock:
            bridge = self.bridges[name]
            for problem in bridge.configure(other_config):
                log.warning("%s", problem)
            bridge.normal.set_flood_vlans(flood_vlans)

    def remove_bridge(self, name: str) -> None:
        with self.lock:
            bridge = self.bridges.pop(name, None)
            if bridge is None:
                return
            self._close_exporters(bridge)
            for handle in list(bridge.ports.values()):
                if handle.bond is not None:
                    self._remove_bond(bridge, handle)
                else:
                    self._detach(handle)

    def _close_exporters(self, bridge: BridgeState) -> None:
        """Send what sFlow, NetFlow and IPFIX hold, and close their sockets."""
        now = self.clock()
        if bridge.sflow is not None:
            bridge.sflow.flush(now)
            bridge.sflow.exporter.close()
        if bridge.netflow is not None:
            bridge.netflow.flush_all(now)
            bridge.netflow.exporter.close()
        if bridge.ipfix is not None:
            bridge.ipfix.close()

    def add_port(
        self,
        bridge: str,
        port: PortSpec,
        ofport: int,
        member_ofports: dict[str, int] | None = None,
    ) -> str | None:
        with self.lock:
            state = self.bridges[bridge]
            if len(port.interfaces) > 1:
                return self._add_bond(state, port, member_ofports or {})
            kind = port.interfaces[0].type if port.interfaces else ""
            handle = PortHandle(state, port, ofport, kind)
            handle.vlan = PortVlan.from_config(port.vlan_mode, port.tag, port.trunks)
            handle.policer = policer_for(*port.policing, None)
            handle.tun_id, handle.tun_src = _tunnel_key(port), _tunnel_remote(port)
            state.ports[port.name] = handle
            state.by_ofport[ofport] = handle
            state.normal.set_port(
                ofport, handle.vlan, mesh=kind in TUNNEL_TYPES, protected=port.protected
            )
            self._ports_changed(state, handle)
            return self._attach(handle)

    def _add_bond(self, state: BridgeState, port: PortSpec, numbers: dict[str, int]) -> str | None:
        # Members in name order: the first one up is active, as a person reading the
        # configuration would guess; the bond is numbered after it in NORMAL.
        order = sorted(range(len(port.interfaces)), key=lambda i: port.interfaces[i].name)
        first = port.interfaces[order[0]].name
        bond_port = PortHandle(state, port, BUNDLE_BASE + numbers.get(first, 0), "bond")
        bond_port.vlan = PortVlan.from_config(port.vlan_mode, port.tag, port.trunks)
        members = []
        for index in order:
            iface = port.interfaces[index]
            handle = PortHandle(
                state, port, numbers.get(iface.name, -1), iface.type, member_index=index
            )
            handle.member_of, handle.vlan = bond_port, bond_port.vlan
            handle.policer = policer_for(*iface.policing, None)
            state.by_ofport[handle.ofport] = handle
            members.append(BondMember(handle))
        bond = bond_port.bond = BondState(bond_port, members, port.bond or BondSpec())
        bond.preferred_mac = port.bond_active_mac
        state.ports[port.name] = bond_port
        state.bundles[bond_port.ofport] = bond_port
        state.normal.set_port(bond_port.ofport, bond_port.vlan, protected=port.protected)
        self._ports_changed(state, bond_port)
        errors = []
        for member in members:
            if member.handle.kind not in ("", "system"):
                member.handle.error = (
                    f"interface {member.name}: a bond's interfaces must be system devices "
                    f'(type ""), not {member.handle.kind}'
                )
            else:
                self._attach(member.handle)
            if member.handle.error:
                errors.append(member.handle.error)
        bond.start_lacp(self._bridge_mac(state, members))
        self.bonds.append(bond)
        self._watch_links()
        bond.poll(self.clock())
        self._failed_over(bond, self.clock())  # (NORMAL learns the members either way)
        return errors[0] if errors else None

    @staticmethod
    def _bridge_mac(state: BridgeState, members: list[BondMember]) -> bytes:
        """The bridge's MAC (its local port's), else the first member's: LACP's
        system ID."""
        local = state.ports.get(state.name)
        candidates = [local.netdev] if local is not None and local.netdev is not None else []
        candidates += [m.handle.netdev for m in members if m.handle.netdev is not None]
        for netdev in candidates:
            mac = netdev.status().mac
            if mac and mac != "00:00:00:00:00:00":
                return bytes.fromhex(mac.replace(":", ""))
        return bytes.fromhex("020000000001")

    def _remove_bond(self, state: BridgeState, bond_port: PortHandle) -> None:
        bond = bond_port.bond
        assert bond is not None
        for member in bond.members:
            self._detach(member.handle)
            _forget_number(state, member.handle)
        bond_port.netdev = None
        self.bonds.remove(bond)
        self._watch_links()
        if state.bundles.get(bond_port.ofport) is bond_port:  # (not a new bond's number)
            del state.bundles[bond_port.ofport]
            state.normal.set_bond(bond_port.ofport, set(), set())
            state.normal.remove_port(bond_port.ofport)

    def update_port(
        self,
        bridge: str,
        port: PortSpec,
        ofport: int,
        member_ofports: dict[str, int] | None = None,
    ) -> str | None:
        with self.lock:
            state = self.bridges[bridge]
            handle = state.ports.get(port.name)
            kind = port.interfaces[0].type if port.interfaces else ""
            if handle is not None and handle.bond is not None:
                if handle.spec.interfaces == port.interfaces and len(port.interfaces) > 1:
                    return self._update_bond(state, handle, port)
                self.remove_port(bridge, port.name)
                return self.add_port(bridge, port, ofport, member_ofports)
            same_device = (
                handle is not None
                and handle.kind == kind
                and handle.ofport == ofport
                and handle.spec.interfaces == port.interfaces
            )
            if not same_device:
                self.remove_port(bridge, port.name)
                return self.add_port(bridge, port, ofport, member_ofports)
            assert handle is not None
            handle.spec = port
            handle.vlan = PortVlan.from_config(port.vlan_mode, port.tag, port.trunks)
            handle.policer = policer_for(*port.policing, handle.policer)
            handle.tun_id, handle.tun_src = _tunnel_key(port), _tunnel_remote(port)
            state.normal.set_port(
                ofport, handle.vlan, mesh=kind in TUNNEL_TYPES, protected=port.protected
            )
            self._ports_changed(state, handle)
            return handle.error

    def _update_bond(self, state: BridgeState, bond_port: PortHandle, port: PortSpec) -> str | None:
        """Same interfaces: VLAN config, policing, security and bond settings change in
        place, without touching the members' devices."""
        bond = bond_port.bond
        assert bond is not None
        bond_port.spec = port
        bond_port.vlan = PortVlan.from_config(port.vlan_mode, port.tag, port.trunks)
        for member in bond.members:
            member.handle.spec, member.handle.vlan = port, bond_port.vlan
            iface = port.interfaces[member.handle.member_index]
            member.handle.policer = policer_for(*iface.policing, member.handle.policer)
        state.normal.set_port(bond_port.ofport, bond_port.vlan, protected=port.protected)
        self._ports_changed(state, bond_port)
        if bond.reconfigure(port.bond or BondSpec()):
            self._failed_over(bond, self.clock())
        self._log_bond_events(bond)
        return next((m.handle.error for m in bond.members if m.handle.error), None)

    def remove_port(self, bridge: str, port: str) -> None:
        with self.lock:
            state = self.bridges.get(bridge)
            if state is None:
                return
            handle = state.ports.pop(port, None)
            if handle is None:
                return
            if handle.bond is not None:
                self._remove_bond(state, handle)
                self._ports_changed(state, None)
                return
            self._detach(handle)
            owned = state.by_ofport.get(handle.ofport) is handle
            _forget_number(state, handle)
            if owned:  # (an interface moved to another port keeps its number there)
                state.normal.remove_port(handle.ofport)
            else:  # but what was learned on it is not the new owner's
                state.normal.mac_table.forget_port(handle.ofport)
            self._ports_changed(state, None)

    def _ports_changed(self, state: BridgeState, handle: PortHandle | None) -> None:
        """Port security and rules naming ports follow the port set."""
        for each in handle.interface_handles() if handle is not None else ():
            security = each.spec.port_security
            if security is not None:
                state.security[each.ofport] = security
            else:
                state.security.pop(each.ofport, None)
            each.nd_guard = security if security is not None and security.uses_l3 else None
        state.flows.recompile_ports(state.port_numbers())
        state.normal.invalidate()

    def maintain(self) -> list[str]:
        events = []
        with self.lock:
            now = self.clock()
            for bridge in self.bridges.values():
                if bridge.normal.mac_table.expire(now):
                    events.append(f"bridge {bridge.name}: aged out MAC entries")
                for handle in bridge.interface_handles():
                    stalled = getattr(handle.netdev, "rx_stalled", None)
                    if stalled is not None and stalled():
                        self._drain(handle, now)
                        self.flush()
                    reattach = handle.member_of is not None or len(handle.spec.interfaces) == 1
                    if handle.netdev is None and reattach and not _refused(handle):
                        if self._attach(handle) is None:
                            events.append(f"bridge {bridge.name}: port {handle.iface} re-attached")
        return events

    def interface_states(self) -> dict[str, InterfaceState]:
        states = {}
        with self.lock:
            for bridge in self.bridges.values():
                for handle in bridge.interface_handles():
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
                        lacp_current=_lacp_current(handle),
                    )
        return states

    def bond_states(self) -> dict[str, str | None]:
        with self.lock:
            return {bond.port.name: bond.active_mac() for bond in self.bonds}

    def bond_show(self, port: str | None) -> dict[str, Any]:
        """Every bond's state (or one bond's), as ``ovs-appctl bond/show``."""
        with self.lock:
            bonds = {bond.port.name: bond.describe() for bond in self.bonds}
        if port is not None:
            if port not in bonds:
                raise KeyError(f"no bond named {port}")
            return {port: bonds[port]}
        return bonds

    def lacp_show(self, port: str | None) -> dict[str, Any]:
        """Every LACP bond's negotiation (or one bond's), as ``ovs-appctl lacp/show``."""
        with self.lock:
            bonds = {b.port.name: b.lacp.describe() for b in self.bonds if b.lacp is not None}
        if port is not None:
            if port not in bonds:
                raise KeyError(f"no bond named {port} runs LACP")
            return {port: bonds[port]}
        return bonds

    def bond_set_active(self, port: str, member: str) -> None:
        """Switch a bond to ``member`` now, with learning packets, as a failover."""
        with self.lock:
            bond = next((b for b in self.bonds if b.port.name == port), None)
            if bond is None:
                raise KeyError(f"no bond named {port}")
            before = bond.active
            bond.set_active(member)
            if bond.active is not before:
                self._failed_over(bond, self.clock())
                self.flush()

    def fdb(self, bridge: str) -> list[dict[str, Any]]:
        with self.lock:
            state = self.bridges.get(bridge)
            if state is None:
                raise KeyError(bridge)
            now = self.clock()
            names = {h.ofport: h.name for h in state.ports.values()}
            return [
                {
                    "port": _shown_number(entry.port),
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

    def configure_flows(self, bridge: str, fail_mode: str, rules: list[FlowRuleSpec]) -> None:
        """Install the bridge's rules (the full set) and its fail mode."""
        with self.lock:
            state = self.bridges[bridge]
            now = self.clock()
            changed = state.flows.set_fail_mode(fail_mode, now)
            if state.flows.configure(rules, state.port_numbers(), now) or changed:
                state.cache.clear(now)
                state.normal.invalidate()

    def configure_flow_export(
        self,
        bridge: str,
        sflow_spec: SflowSpec | None,
        netflow_spec: NetflowSpec | None,
        ipfix_spec: IpfixSpec | None = None,
    ) -> None:
        """Start, change or stop the bridge's sFlow agent, NetFlow cache and IPFIX
        sampler."""
        with self.lock:
            state = self.bridges[bridge]
            now = self.clock()
            if state.ipfix is None or state.ipfix.spec != ipfix_spec:
                if state.ipfix is not None:
                    state.ipfix.close()
                state.ipfix = IpfixAgent(ipfix_spec) if ipfix_spec is not None else None
            if state.sflow is None or state.sflow.spec != sflow_spec:
                if state.sflow is not None:
                    state.sflow.flush(now)
                    state.sflow.exporter.close()
                state.sflow = None
                if sflow_spec is not None:
                    state.sflow = SflowAgent(sflow_spec, _agent_address(sflow_spec), now)
            if state.netflow is None or state.netflow.spec != netflow_spec:
                if state.netflow is not None:
                    state.netflow.flush_all(now)
                    state.netflow.exporter.close()
                state.netflow = None
                if netflow_spec is not None:
                    state.netflow = NetflowCache(netflow_spec, now)
                state.cache.clear(now)  # exact-match keys follow "deep"
                state.normal.invalidate()

    def flow_statistics(
        self, bridge: str, only: Collection[uuid.UUID] | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            state = self.bridges[bridge]
            now = self.clock()
            state.cache.push_all(now)
            return state.flows.statistics(now, only)

    def expired_flows(self) -> list[tuple[str, str, str]]:
        """(bridge, rule UUID, idle|hard) for rules that timed out since the last call."""
        with self.lock:
            gone = []
            for name, state in self.bridges.items():
                gone += [(name, str(u), why) for u, why in state.flows.expired]
                state.flows.expired.clear()
            return gone

    def trace(self, bridge: str, frame: bytes, in_port: str) -> dict[str, Any]:
        """What the bridge would do with ``frame`` arriving on ``in_port``, without
        sending it or learning from it."""
        with self.lock:
            state = self.bridges[bridge]
            handle = state.ports.get(in_port) or next(
                (h for h in state.interface_handles() if h.iface == in_port), None
            )
            if handle is None:
                raise KeyError(f"bridge {bridge} has no port {in_port}")
            key = flow_key.extract(frame, handle.ofport, handle.tun_id)
            nd_drop = nd_violation(handle.nd_guard, frame) if handle.nd_guard else None
            if nd_drop:
                return {
                    "bridge": bridge,
                    "in_port": in_port,
                    "steps": [{"depth": 0, "step": "port_security", "verdict": nd_drop}],
                    "outputs": [],
                    "drop_reason": nd_drop,
                    "megaflow": "(not cached: Neighbour Discovery is checked frame by frame)",
                }
            drops = state.normal.drops.copy()
            state.now = self.clock()
            state.normal_vlan = -1
            try:
                result = state.flows.pipeline.translate(key, state, trace=True, learn=False)
            finally:
                state.normal.drops = drops
            outputs = []
            for out in result.outputs:
                compiled = compile_outputs(state, key, [out])
                if not compiled:
                    continue
                out_handle, op, arg = compiled[0]
                op = _inner(op, arg)
                tci = out.key[flow_key.VLAN_TCI]
                outputs.append(
                    {
                        "port": out_handle.name,
                        "vlan": tci & 0x0FFF if tci else None,
                        "rewritten": op == REWRITE,
                        "queue": out.queue,
                    }
                )
            return {
                "bridge": bridge,
                "in_port": in_port,
                "steps": result.trace,
                "outputs": outputs,
                "drop_reason": result.drop_reason,
                "megaflow": describe_wildcards(key, result.wildcards, in_port),
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
                        "flow_cache": b.cache.describe(),
                        "flow_rules": len(b.flows.rules),
                        "sflow": b.sflow.describe() if b.sflow else None,
                        "netflow": b.netflow.describe() if b.netflow else None,
                        "ipfix": b.ipfix.describe() if b.ipfix else None,
                        "fail_mode": b.flows.fail_mode,
                        "mac_table": {
                            "entries": len(b.normal.mac_table.entries),
                            "max": b.normal.mac_table.max_entries,
                            "aging": b.normal.mac_table.aging,
                            "evictions": b.normal.mac_table.evictions,
                            "moves": b.normal.mac_table.moves,
                        },
                        "drops": dict(b.normal.drops),
                        "ports": {
                            (h.iface if h.member_of else h.name): {
                                "ofport": h.ofport,
                                "type": h.kind or "system",
                                "state": "up" if h.netdev else "down",
                                "error": h.error,
                                **({"bond": h.name} if h.member_of else {}),
                                **(h.netdev.stats.as_dict() if h.netdev else {}),
                            }
                            for h in sorted(b.interface_handles(), key=lambda h: h.ofport)
                        },
                        "bonds": {
                            h.name: h.bond.describe()
                            for h in sorted(b.ports.values(), key=lambda h: h.name)
                            if h.bond is not None
                        },
                    }
                    for name, b in sorted(self.bridges.items())
                },
                "tunnel_endpoints": {
                    f"{e.kind} {e.address_text()}": {
                        "ports": len(e.ports),
                        "source_ports": e.source_ports(),
                        "drops": dict(e.drops),
                    }
                    for e in self.endpoints.values()
                },
            }


def _agent_address(spec: SflowSpec) -> str:
    """sFlow's ``agent``: an IP as given, or an interface's first IPv4 address, or the
    address the datagrams leave from."""
    if spec.agent:
        try:
            return str(ipaddress.ip_address(spec.agent))
        except ValueError:
            address = link.first_ipv4(spec.agent)
            if address is not None:
                return address
    return Exporter(spec.targets).local_address()


def _forget_number(state: BridgeState, handle: PortHandle) -> None:
    """Drop what is filed under the handle's number, unless another handle owns it now
    (an interface moved to another port in the same change keeps its number)."""
    if state.by_ofport.get(handle.ofport) is handle:
        del state.by_ofport[handle.ofport]
        if state.security.get(handle.ofport) is handle.spec.port_security:
            state.security.pop(handle.ofport, None)


def _shown_number(port: int) -> int:
    """A MAC table entry's port number as OVS shows it: for a bond, its first member's."""
    return port - BUNDLE_BASE if port >= BUNDLE_BASE else port


def _refused(handle: PortHandle) -> bool:
    """A bond member of a type bonds cannot have: never attached."""
    return handle.member_of is not None and handle.kind not in ("", "system")


def _inner(op: int, arg: Any) -> int:
    """The operation a QUEUED output wraps (or the operation itself)."""
    return int(arg[0]) if op in (QUEUED, KEYED) else op


def _tunnel_key(port: PortSpec) -> int:
    """The fixed VNI of a tunnel port (its frames' tun_id); 0 otherwise or for key=flow
    (those frames carry their own)."""
    if not port.interfaces or port.interfaces[0].type not in TUNNEL_TYPES:
        return 0
    try:
        return int(port.interfaces[0].options.get("key", "0"), 0)
    except ValueError:
        return 0


def _tunnel_remote(port: PortSpec) -> int:
    """A tunnel port's fixed IPv4 remote (its frames' tun_src), else 0."""
    if not port.interfaces or port.interfaces[0].type not in TUNNEL_TYPES:
        return 0
    return _ipv4_int(port.interfaces[0].options.get("remote_ip", ""))


def _ipv4_int(text: str) -> int:
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        return 0


def _variant(header: bytes, frame: bytes, op: int, arg: Any) -> list[tuple[bytes, bytes]]:
    if op == REWRITE:
        old, new = arg
        return [
            (vnet_header.EMPTY, rewrite(complete, old, new))
            for complete in complete_frame(header, frame)
        ]
    return [_retag(header, frame, op, arg)]


def compile_outputs(
    bridge: BridgeState, key: flow_key.Key, outputs: list[Output]
) -> tuple[tuple[Any, int, Any], ...]:
    """The pipeline's outputs as (port handle, operation, argument): a tag operation
    where only the VLAN tag changes, else a rewrite from the original key to the
    output's."""
    in_tci = key[flow_key.VLAN_TCI]
    in_vid = in_tci & 0x0FFF if in_tci else None
    compiled: list[tuple[Any, int, Any]] = []
    for out in outputs:
        handle = bridge.by_ofport.get(out.port) or bridge.bundles.get(out.port)
        if handle is not None and handle.bond is not None:
            # The active member sends (and is what sFlow, IPFIX and NetFlow report);
            # a change of member re-makes every decision.
            active = handle.bond.active
            handle = active.handle if active is not None else None
        if handle is None:
            continue
        out_key = out.key
        out_tci = out_key[flow_key.VLAN_TCI]
        out_vid = out_tci & 0x0FFF if out_tci else None
        op = tag_operation(in_vid, out_vid)
        changed = any(out_key[i] != key[i] for i in REWRITTEN_FIELDS)
        if op == PUSH and out_tci & 0xE000:
            changed = True  # a priority to set: only a rewrite carries it
        if in_tci and out_tci and (in_tci ^ out_tci) & 0xE000:
            changed = True
        operation: tuple[Any, int, Any] = (
            (handle, REWRITE, (key, out_key)) if changed else (handle, op, out_vid or 0)
        )
        if out.queue is not None and hasattr(handle.netdev, "send_with_priority"):
            priority = qos_tc.queue_class(out.queue)
            operation = (handle, QUEUED, (operation[1], operation[2], priority))
        elif getattr(handle.netdev, "flow_keyed", False):
            remote = str(ipaddress.IPv4Address(out_key[flow_key.TUN_DST]))
            operation = (
                handle,
                KEYED,
                (operation[1], operation[2], out_key[flow_key.TUN_ID], remote),
            )
        compiled.append(operation)
    return tuple(compiled)


REWRITTEN_FIELDS = (
    flow_key.DL_SRC,
    flow_key.DL_DST,
    flow_key.NW_SRC,
    flow_key.NW_DST,
    flow_key.NW_TOS,
    flow_key.NW_TTL,
)


def _retag(header: bytes, frame: bytes, op: int, vid: int) -> tuple[bytes, bytes]:
    if op == POP:
        return vnet_header.shifted(header, -4), pop_vlan(frame)
    if op == PUSH:
        return vnet_header.shifted(header, 4), push_vlan(frame, vid)
    tci = (frame[14] << 8) | frame[15]
    return header, frame[:14] + struct.pack("!H", (tci & 0xF000) | vid) + frame[16:]


def _lacp_current(handle: PortHandle) -> bool | None:
    """``Interface.lacp_current`` of a member of an LACP bond (None for others)."""
    bond = handle.member_of.bond if handle.member_of is not None else None
    if bond is None or bond.lacp is None:
        return None
    member = next((m for m in bond.members if m.handle is handle), None)
    return None if member is None or member.lacp is None else member.lacp.status == "current"
