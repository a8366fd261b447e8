"""``vxlan`` and ``geneve`` ports: Ethernet over UDP, encapsulated in userspace.

All tunnel ports with the same type, ``local_ip`` and ``dst_port`` share one UDP socket,
a ``TunnelEndpoint``. When it is readable the datapath calls ``pump``: each datagram is
checked and decapsulated, and its inner frame queued on the port for (sender address,
VNI); anything else is dropped and counted by reason. A port sends by completing the
frame's offloads in software (``packet.offload``), adding the tunnel header and sending
to ``remote_ip``. The sockets set "don't fragment": a frame too large for the path fails
with a counted error and a message in ``Interface.status``, never silently.

Outer UDP source ports follow the inner flow (RFC 7348, section 5), so an ECMP underlay
spreads a host's tunnel traffic over its paths and keeps each flow on one: an endpoint
sends from a pool of up to ``SOURCE_PORTS`` UDP sockets on ephemeral ports (the range
in ``net.ipv4.ip_local_port_range``, as the kernel's own VXLAN uses), opened as flows
need them, and ``packet.flow_hash`` picks the socket. Each socket keeps the kernel's UDP
segmentation (GSO) and its route and MTU checks, which a raw socket choosing any port
would give up.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
import time
from collections import Counter
from typing import Any

from ovs_runtime.bridge.tunnel_config import MAX_VNI, TunnelConfig
from ovs_runtime.datapath import vnet_header
from ovs_runtime.netdev import kernel_gso
from ovs_runtime.netdev.provider import NetdevGone, NetdevStats, NetdevStatus, Packet
from ovs_runtime.packet.flow_hash import flow_hash
from ovs_runtime.packet.offload import OffloadError
from ovs_runtime.packet.tunnel_header import (
    OVERHEAD_IPV4,
    OVERHEAD_IPV6,
    BadTunnelPacket,
    decapsulate,
    header_for,
)

log = logging.getLogger(__name__)

IP_MTU_DISCOVER = 10
IP_PMTUDISC_DO = 2
IPV6_MTU_DISCOVER = 23
IPV6_PMTUDISC_DO = 2
SOL_UDP = 17
UDP_SEGMENT = 103  # linux/udp.h: the datagram size for UDP GSO
GSO_SEGMENTS = 64  # UDP_MAX_SEGMENTS in the oldest kernels that have UDP GSO
MAX_UDP_PAYLOAD = 65507
IP_FREEBIND = 15  # bind to local_ip before the address exists (it may move onto a bridge)
PUMP_BUDGET = 256
MAX_DATAGRAM = 65535
REACHABILITY_TTL = 2.0
SOURCE_PORTS = 64  # sending sockets per endpoint, so up to 64 outer source ports
SENDER_RCVBUF = 4096  # nothing is ever sent to a sending socket's port
SENDER_RETRY = 5.0  # seconds before trying again to open a sending socket that failed


class TunnelEndpoint:
    """One UDP socket for every tunnel port of a (type, local_ip, dst_port)."""

    def __init__(
        self, kind: str, local_ip: str, port: int, inherited_fd: int | None = None
    ) -> None:
        self.kind = kind
        # (remote, VNI) -> port; None stands for remote_ip=flow / key=flow.
        self.ports: dict[tuple[str | None, int | None], TunnelNetdev] = {}
        self.drops: Counter[str] = Counter()
        self.users = 0
        self.inherited = False
        self.store_name = ""
        self.local_ip = local_ip
        self.family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
        # The sending sockets, by flow hash; None until a flow needs one.
        self.senders: list[socket.socket | None] = [None] * SOURCE_PORTS
        self.sender_retry_at = 0.0  # after a failed open, not before this
        if inherited_fd is not None:
            sock = socket.socket(fileno=inherited_fd)
            bound = sock.getsockname()
            if sock.type == socket.SOCK_DGRAM and bound[1] == port:
                # Kept by systemd across a restart: datagrams that arrived meanwhile wait
                # in its buffer instead of being refused.
                sock.setblocking(False)
                self.sock, self.inherited = sock, True
                self.gso = _gso_supported(sock)
                return
            sock.close()
        self.sock = _udp_socket(self.family)
        self.gso = _gso_supported(self.sock)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind((self.bind_address, port))
        except OSError as exc:
            self.sock.close()
            raise NetdevGone(
                f"cannot open the {kind} socket on UDP port {port}: {exc.strerror}"
            ) from None

    @property
    def bind_address(self) -> str:
        return self.local_ip or ("::" if self.family == socket.AF_INET6 else "0.0.0.0")

    def sender(self, frame: bytes) -> socket.socket:
        """The socket to send ``frame``'s flow from: one of the pool, opened on first
        use; the endpoint's own socket if the pool's cannot be opened."""
        slot = source_slot(frame)
        sock = self.senders[slot]
        if sock is None:
            if time.monotonic() < self.sender_retry_at:
                return self.sock
            opened = self._open_sender()
            if opened is None:
                self.sender_retry_at = time.monotonic() + SENDER_RETRY
                return self.sock
            sock = self.senders[slot] = opened
        return sock

    def _open_sender(self) -> socket.socket | None:
        sock = None
        try:
            sock = _udp_socket(self.family)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SENDER_RCVBUF)
            sock.bind((self.bind_address, 0))
        except OSError as exc:  # out of file descriptors, or of ephemeral ports
            if sock is not None:
                sock.close()
            log.warning(
                "%s endpoint on UDP port %d: cannot open a sending socket (%s); sending "
                "from port %d for %g s, then trying again",
                self.kind,
                self.sock.getsockname()[1],
                exc.strerror,
                self.sock.getsockname()[1],
                SENDER_RETRY,
            )
            return None
        return sock

    def address_text(self) -> str:
        """ADDRESS:PORT of the endpoint's socket ([ADDRESS]:PORT for IPv6)."""
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def source_ports(self) -> list[int]:
        """The outer UDP source ports in use (the pool's sockets opened so far)."""
        return sorted({s.getsockname()[1] for s in self.senders if s is not None})

    def fileno(self) -> int:
        return self.sock.fileno()

    def pump(self) -> int:
        """Read waiting datagrams into the ports' queues; returns how many were read."""
        count = 0
        recvfrom = self.sock.recvfrom
        ports = self.ports
        while count < PUMP_BUDGET:
            try:
                payload, address = recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError:
                self.drops["socket-error"] += 1
                break
            count += 1
            try:
                vni, inner = decapsulate(self.kind, payload)
            except BadTunnelPacket as exc:
                self.drops[exc.args[0]] += 1
                continue
            source = address[0]
            port = ports.get((source, vni))
            if port is None:
                # Ports with key=flow take any VNI, with remote_ip=flow any remote.
                port = (
                    ports.get((source, None)) or ports.get((None, vni)) or ports.get((None, None))
                )
                if port is None:
                    self.drops["unknown-tunnel"] += 1
                    continue
            if port.keyed:
                port.keys.append((vni, source))
            port.queue.append((vnet_header.EMPTY, inner))
        return count

    def close(self) -> None:
        for sock in self.senders:
            if sock is not None:
                sock.close()
        self.senders = [None] * SOURCE_PORTS
        self.sock.close()


class TunnelEndpoints:
    """The open endpoints, so tunnel ports of one (type, local_ip, dst_port) share one.
    With an fd store, each socket is also kept by systemd across restarts."""

    def __init__(self, fd_store: Any = None) -> None:
        self.open: dict[tuple[str, str, int], TunnelEndpoint] = {}
        self.fd_store = fd_store

    @staticmethod
    def store_name(key: tuple[str, str, int]) -> str:
        kind, local_ip, port = key
        return f"udp.{kind}.{(local_ip or 'any').replace(':', '-')}.{port}"

    def port(self, name: str, config: TunnelConfig) -> TunnelNetdev:
        key = config.endpoint_key
        endpoint = self.open.get(key)
        if endpoint is None or endpoint.users == 0:
            if endpoint is not None:
                endpoint.close()
            stored = self.store_name(key)
            inherited = self.fd_store.take(stored) if self.fd_store is not None else None
            endpoint = TunnelEndpoint(config.kind, key[1], config.dst_port, inherited)
            if self.fd_store is not None and not endpoint.inherited:
                self.fd_store.keep(stored, endpoint.fileno())
            endpoint.store_name = stored
            self.open[key] = endpoint
        return TunnelNetdev(name, config, endpoint)

    def forget(self, endpoint: TunnelEndpoint) -> None:
        """The endpoint's last port is gone for good: systemd need not keep it."""
        if self.fd_store is not None:
            self.fd_store.forget(endpoint.store_name)


class TunnelNetdev:
    """One tunnel port: frames in from its endpoint's queue, out encapsulated."""

    def __init__(self, name: str, config: TunnelConfig, endpoint: TunnelEndpoint) -> None:
        self.name = name
        self.config = config
        self.endpoint = endpoint
        self.stats = NetdevStats()
        self.queue: list[Packet] = []
        # key=flow or remote_ip=flow: each frame's VNI and source travel with it.
        self.flow_keyed = config.vni is None or config.remote_ip is None
        self.keyed = self.flow_keyed
        self.keys: list[tuple[int, str]] = []  # (VNI, remote) of each queued frame
        self.header = header_for(config.kind, config.vni or 0)
        self.headers: dict[int, bytes] = {}
        self.address = (config.remote_ip or "", config.dst_port)
        remote = config.remote_ip or ""
        self.overhead = OVERHEAD_IPV6 if ":" in remote else OVERHEAD_IPV4
        self.last_error: str | None = None
        self.offload_errors = 0
        key = (config.remote_ip, config.vni)
        if key in endpoint.ports:
            raise NetdevGone(
                f"{endpoint.ports[key].name} already is the {config.kind} tunnel to "
                f"{config.remote_ip or 'flow'} with key "
                f"{'flow' if config.vni is None else config.vni}"
            )
        endpoint.ports[key] = self
        endpoint.users += 1

    def fileno(self) -> int:
        return -1  # frames arrive through the endpoint's socket (see TunnelEndpoint.pump)

    def receive(self, budget: int) -> list[Packet]:
        taken, self.queue = self.queue[:budget], self.queue[budget:]
        self.stats.rx_packets += len(taken)
        self.stats.rx_bytes += sum(len(f) for _, f in taken)
        return taken

    def receive_keyed(self, budget: int) -> list[tuple[tuple[int, str], list[Packet]]]:
        """key=flow / remote_ip=flow: the waiting frames in runs of one (VNI, remote)."""
        keys, self.keys = self.keys[:budget], self.keys[budget:]
        packets = self.receive(budget)
        runs: list[tuple[tuple[int, str], list[Packet]]] = []
        for meta, packet in zip(keys, packets, strict=True):
            if runs and runs[-1][0] == meta:
                runs[-1][1].append(packet)
            else:
                runs.append((meta, [packet]))
        return runs

    def send_with_key(self, vni: int, remote: str, header: bytes, frame: bytes) -> None:
        """key=flow: encapsulate with this VNI (the packet's tun_id); remote_ip=flow: send
        to this remote (its tun_dst)."""
        if self.config.vni is not None:
            vni = self.config.vni
        tunnel_header = self.headers.get(vni)
        if tunnel_header is None:
            tunnel_header = self.headers[vni] = header_for(self.config.kind, vni & MAX_VNI)
        address = self.address
        if self.config.remote_ip is None:
            if not remote or remote == "0.0.0.0":
                self.stats.tx_dropped += 1
                self.last_error = "remote_ip=flow: a frame had no tun_dst (set_field:IP->tun_dst)"
                return
            address = (remote, self.config.dst_port)
        self._send(tunnel_header, header, frame, address)

    def send(self, header: bytes, frame: bytes) -> None:
        if self.config.remote_ip is None:
            self.stats.tx_dropped += 1  # remote_ip=flow needs a tun_dst: see send_with_key
            return
        self._send(self.header, header, frame, self.address)

    def _send(
        self, tunnel_header: bytes, header: bytes, frame: bytes, address: tuple[str, int]
    ) -> None:
        try:
            frames = kernel_gso.complete(header, frame)
        except OffloadError as exc:
            self.stats.tx_dropped += 1
            self.offload_errors += 1
            self.last_error = f"dropped a frame whose offloads cannot be completed: {exc}"
            return
        sock = self.endpoint.sender(frame)
        if len(frames) > 1 and self.endpoint.gso:
            frames = self._send_segmented(sock, tunnel_header, frames, address)
        sendto = sock.sendto
        for inner in frames:
            try:
                sendto(tunnel_header + inner, address)
            except BlockingIOError:
                self.stats.tx_dropped += 1
                continue
            except OSError as exc:
                self.stats.tx_errors += 1
                if exc.errno == errno.EMSGSIZE:
                    self.last_error = self._too_big(len(inner), address[0])
                else:
                    self.last_error = f"send to {address[0]} failed: {exc.strerror}"
                continue
            self.stats.tx_packets += 1
            self.stats.tx_bytes += len(inner)

    def _send_segmented(
        self,
        sock: socket.socket,
        tunnel_header: bytes,
        frames: list[bytes],
        address: tuple[str, int],
    ) -> list[bytes]:
        """Send the segments of one TCP super-frame with UDP GSO: one system call
        carries up to ``GSO_SEGMENTS`` datagrams of one size (the last may be shorter)
        and the kernel cuts them apart. Returns the frames it could not send this way,
        for the one-by-one path (which reports the error, such as a frame too big for
        the path)."""
        size = len(tunnel_header) + len(frames[0])
        per_call = min(GSO_SEGMENTS, MAX_UDP_PAYLOAD // size)
        if (
            per_call < 2
            or len(frames[-1]) > len(frames[0])
            or any(len(inner) != len(frames[0]) for inner in frames[1:-1])
        ):
            return frames  # not one size, the last no longer: not for UDP GSO
        control = [(SOL_UDP, UDP_SEGMENT, size.to_bytes(2, sys.byteorder))]
        sendmsg = sock.sendmsg
        for first in range(0, len(frames), per_call):
            run = frames[first : first + per_call]
            if len(run) == 1:
                return frames[first:]
            try:
                sendmsg([tunnel_header + inner for inner in run], control, 0, address)
            except BlockingIOError:
                self.stats.tx_dropped += len(run)
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # e.g. IPsec on the path: never for UDP GSO
                    self.endpoint.gso = False
                return frames[first:]
            self.stats.tx_packets += len(run)
            self.stats.tx_bytes += sum(len(inner) for inner in run)
        return []

    def _too_big(self, size: int, address: str) -> str:
        mtu = path_mtu(address)
        limit = f"path MTU {mtu}" if mtu else "the path MTU"
        return (
            f"frame of {size} bytes + {self.overhead} bytes of {self.config.kind} overhead "
            f"exceeds {limit}: lower the MTU of the ports in this network to "
            f"{(mtu or 1500) - self.overhead - 14} or raise the underlay MTU"
        )

    def status(self) -> NetdevStatus:
        if self.config.remote_ip is None:
            extra = {"tunnel_remote_ip": "flow", "tunnel_dst_port": str(self.config.dst_port)}
            extra["tunnel_key"] = "flow" if self.config.vni is None else str(self.config.vni)
            if self.last_error:
                extra["tunnel_last_error"] = self.last_error
            return NetdevStatus(link_state="up", admin_state="up", extra=extra)
        egress, reachable = self._route()
        extra = {
            "tunnel_remote_ip": self.config.remote_ip,
            "tunnel_key": "flow" if self.config.vni is None else str(self.config.vni),
            "tunnel_dst_port": str(self.config.dst_port),
            "tunnel_remote_reachable": "true" if reachable else "false",
        }
        if egress:
            extra["tunnel_egress_iface"] = egress
        if self.last_error:
            extra["tunnel_last_error"] = self.last_error
        return NetdevStatus(link_state="up" if reachable else "down", admin_state="up", extra=extra)

    def _route(self) -> tuple[str | None, bool]:
        return cached_route(self.config.remote_ip or "")

    def close(self) -> None:
        key = (self.config.remote_ip, self.config.vni)
        if self.endpoint.ports.get(key) is self:
            del self.endpoint.ports[key]
        self.endpoint.users -= 1


_routes: dict[str, tuple[float, str | None, bool]] = {}


def source_slot(frame: bytes) -> int:
    """Which of the ``SOURCE_PORTS`` sending sockets carries ``frame``'s flow: the
    CRC's bits mixed by a multiplication (Fibonacci hashing), as CRC-32's low bits alone
    follow runs of consecutive ports too regularly."""
    return ((flow_hash(frame) * 0x9E3779B1) & 0xFFFFFFFF) * SOURCE_PORTS >> 32


def _udp_socket(family: int) -> socket.socket:
    """A non-blocking UDP socket that never fragments and may bind to an address the
    host does not have yet (``local_ip`` may move onto a bridge later)."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)
        # IPv6 only, so an IPv4 endpoint can have the same port; and an address still
        # in duplicate address detection can be bound (IP_FREEBIND below).
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    sock.setblocking(False)
    return sock


def _gso_supported(sock: socket.socket) -> bool:
    """Whether the kernel does UDP GSO (Linux 4.18 and later) on this socket."""
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
    except OSError:
        return False
    return True


def cached_route(address: str) -> tuple[str | None, bool]:
    """``route_to``, asked at most every REACHABILITY_TTL seconds per remote: status is
    read every second for every port, and many tunnels share a remote."""
    now = time.monotonic()
    checked, egress, reachable = _routes.get(address, (0.0, None, False))
    if now - checked >= REACHABILITY_TTL:
        egress, reachable = route_to(address)
        _routes[address] = (now, egress, reachable)
    return egress, reachable


def path_mtu(address: str) -> int:
    """The MTU toward ``address``: the route's own, else its device's; 0 if unknown.
    (``IP_MTU`` on the socket would need a connected socket, and ours sends to many.)"""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            route = ipr.route("get", dst=address)[0]
            metrics = route.get_attr("RTA_METRICS")
            mtu = metrics.get_attr("RTAX_MTU") if metrics is not None else None
            if not mtu:
                mtu = ipr.get_links(route.get_attr("RTA_OIF"))[0].get_attr("IFLA_MTU")
            return int(mtu or 0)
    except (NetlinkError, OSError, IndexError):
        return 0


def route_to(address: str) -> tuple[str | None, bool]:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            routes = ipr.route("get", dst=address)
            if not routes:
                return None, False
            oif = routes[0].get_attr("RTA_OIF")
            links = ipr.get_links(oif)
            name = links[0].get_attr("IFLA_IFNAME")
            carrier = links[0].get_attr("IFLA_OPERSTATE") in ("UP", "UNKNOWN")
            return str(name), bool(carrier) and routes[0]["type"] == 1  # RTN_UNICAST
    except (NetlinkError, OSError, IndexError):
        return None, False
