"""``system`` ports: an existing kernel device attached over AF_PACKET sockets.

Three sockets per port, each for one job:

- **receive**: ``ETH_P_ALL`` with a TPACKET_V2 receive ring. This is the one that must
  outlive the process: it is handed to systemd's file-descriptor store, so frames that
  arrive while the daemon restarts or upgrades wait in its ring and are forwarded when
  the new process takes it back. Its options: ``PACKET_VNET_HDR`` (checksum/GSO offload
  state with each frame: TCP works with offloads on), ``PACKET_AUXDATA`` (the kernel
  strips a received 802.1Q tag into metadata; we put it back), ``PACKET_IGNORE_OUTGOING``
  (never read back what we send), ``PACKET_MR_PROMISC`` (frames for every MAC, for as
  long as the socket lives), and a large receive buffer for frames too big for a slot.
- **transmit**: a TPACKET_V2 transmit ring, kicked once per loop iteration.
- **big frames**: GSO super-frames that do not fit a ring slot, sent after a kick so
  order is kept.

``PACKET_QDISC_BYPASS`` is deliberately *not* set: it would skip tc, and QoS uses tc.
"""

from __future__ import annotations

import errno
import socket
import struct

from ovs_runtime.datapath.vnet_header import SIZE as VNET_SIZE
from ovs_runtime.datapath.vnet_header import shifted
from ovs_runtime.netdev import link
from ovs_runtime.netdev.packet_ring import RxRing, TxRing
from ovs_runtime.netdev.provider import NetdevGone, NetdevStats, NetdevStatus, Packet

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_AUXDATA = 8
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
ETH_P_ALL = 0x0003
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
AUXDATA = struct.Struct("IIIHHHH")
RECV_SIZE = VNET_SIZE + 65536 + 18
CMSG_SIZE = socket.CMSG_SPACE(AUXDATA.size)
SOCKET_BUFFER = 32 * 1024 * 1024
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
GONE_ERRNOS = (errno.ENETDOWN, errno.ENXIO, errno.ENODEV)


def _set_buffer(sock: socket.socket, forced: int, plain: int) -> None:
    """A big buffer, past net.core.[rw]mem_max when we may (CAP_NET_ADMIN)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)


def _open_receive_socket(name: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)  # before the ring
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF)
        return sock
    except OSError:
        sock.close()
        raise


def _open_send_socket(name: str) -> socket.socket:
    """A socket that only sends (protocol 0: it receives nothing)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF)
        return sock
    except OSError:
        sock.close()
        raise


def inherited_socket_is_for(fd: int, name: str) -> bool:
    """Is a socket from the previous process still bound to this very device?"""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        bound = sock.getsockname()
        return bool(bound[0] == name and socket.if_nametoindex(name) > 0)
    except OSError:
        return False
    finally:
        sock.detach()


class AfPacketNetdev:
    def __init__(self, name: str, inherited_fd: int | None = None) -> None:
        self.name = name
        self.stats = NetdevStats()
        if not link.exists(name):
            raise NetdevGone(f"no network device named {name}")
        link.set_up(name)
        opened: list[socket.socket] = []
        try:
            if inherited_fd is not None:
                rx = socket.socket(fileno=inherited_fd)
            else:
                rx = _open_receive_socket(name)
            opened.append(rx)
            self.rx_ring = RxRing.on_socket(rx, inherited=inherited_fd is not None)
            if inherited_fd is None:
                rx.bind((name, ETH_P_ALL))
                ifindex = socket.if_nametoindex(name)
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                rx.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            rx.setblocking(False)
            tx = _open_send_socket(name)
            opened.append(tx)
            self.tx_ring = TxRing.on_socket(tx)
            tx.bind((name, 0))
            tx.setblocking(False)
            big = _open_send_socket(name)
            opened.append(big)
            big.bind((name, 0))
            big.setblocking(False)
        except OSError as exc:
            for sock in opened:
                sock.close()
            raise NetdevGone(f"cannot attach to {name}: {exc.strerror or exc}") from exc
        self.sock, self.tx_sock, self.big_sock = rx, tx, big
        self.inherited = inherited_fd is not None
        self.priority_socks: dict[int, socket.socket] = {}

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self, budget: int) -> list[Packet]:
        ring = self.rx_ring
        packets = ring.receive(budget, self._receive_copy)
        if ring.truncated:
            self.stats.rx_dropped += ring.truncated
            ring.truncated = 0
        if ring.resyncs:
            self.stats.rx_errors += ring.resyncs
            ring.resyncs = 0
        if not packets:
            # Readable but nothing in the ring: a full-size copy whose ring slot was lost
            # (the ring was full) may wait on the socket queue; take it, or epoll would
            # report this socket ready forever.
            copy = self._receive_copy()
            if copy is not None:
                packets.append(copy)
            elif self._pending_error():
                raise NetdevGone(f"device {self.name} went away")
        if packets:
            stats = self.stats
            stats.rx_packets += len(packets)
            stats.rx_bytes += sum([len(frame) for _, frame in packets])
        return packets

    def rx_stalled(self) -> bool:
        """Frames wait in the receive ring that epoll will not report (see
        ``RxRing.recover``); the datapath then drains the port itself."""
        return self.rx_ring.recover()

    def _pending_error(self) -> bool:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in GONE_ERRNOS:
            return True
        if err:
            self.stats.rx_errors += 1
        return False

    def _receive_copy(self) -> Packet | None:
        """A frame too big for a ring slot, from the socket's queue (TP_STATUS_COPY)."""
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(RECV_SIZE, CMSG_SIZE)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise NetdevGone(f"device {self.name} went away: {exc.strerror}") from exc
            self.stats.rx_errors += 1
            return None
        header, frame = data[:VNET_SIZE], data[VNET_SIZE:]
        for level, kind, cdata in ancdata:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack(cdata[: AUXDATA.size])
                if status & TP_STATUS_VLAN_VALID:
                    if not status & TP_STATUS_VLAN_TPID_VALID:
                        tpid = 0x8100
                    frame = frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
                    header = shifted(header, 4)
        return header, frame

    def send(self, vnet_header: bytes, frame: bytes) -> None:
        queued = self.tx_ring.queue(vnet_header, frame)
        if queued is not None:
            stats = self.stats
            if queued:
                stats.tx_packets += 1
                stats.tx_bytes += len(frame)
            else:
                stats.tx_dropped += 1
            return
        self._send_on(self.big_sock, vnet_header, frame)

    def _send_on(self, sock: socket.socket, vnet_header: bytes, frame: bytes) -> None:
        """One frame on a plain socket, after whatever the ring holds (order kept)."""
        self.tx_ring.flush()
        try:
            sock.send(vnet_header + frame)
        except (BlockingIOError, InterruptedError):
            self.stats.tx_dropped += 1
            return
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise NetdevGone(f"device {self.name} went away: {exc.strerror}") from exc
            self.stats.tx_errors += 1
            return
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(frame)

    def send_with_priority(self, priority: int, vnet_header: bytes, frame: bytes) -> None:
        """Send with this skb priority, which the port's qdisc classifies by (the
        ``set_queue`` action: HTB puts priority 1:N+1 into queue N's class). One socket
        per priority, made on first use, carries it."""
        sock = self.priority_socks.get(priority)
        if sock is None:
            try:
                sock = _open_send_socket(self.name)
            except OSError:
                self.stats.tx_errors += 1
                return
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, priority)
                sock.bind((self.name, 0))
                sock.setblocking(False)
            except OSError:
                sock.close()
                self.stats.tx_errors += 1
                return
            self.priority_socks[priority] = sock
        self._send_on(sock, vnet_header, frame)

    def send_many(self, packets: list[Packet]) -> None:
        """Several frames in order: the transmit ring takes them in one loop."""
        queued, nbytes, dropped, rest = self.tx_ring.queue_many(packets)
        stats = self.stats
        stats.tx_packets += queued
        stats.tx_bytes += nbytes
        stats.tx_dropped += dropped
        for header, frame in rest:  # from the first frame too big for a slot: one by one
            self.send(header, frame)

    def flush(self) -> None:
        self.tx_ring.flush()

    def status(self) -> NetdevStatus:
        return link.read_status(self.name)

    def close(self) -> None:
        self.rx_ring.close()
        self.tx_ring.close()
        for sock in (self.sock, self.tx_sock, self.big_sock, *self.priority_socks.values()):
            sock.close()
