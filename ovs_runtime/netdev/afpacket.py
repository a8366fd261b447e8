"""``system`` ports: an existing kernel device attached over an AF_PACKET socket.

Socket options, and why:

- ``PACKET_VNET_HDR``: receive and send the virtio-net header, so frames with partial
  checksums and GSO super-frames from veth are forwarded correctly (no ``ethtool -K tx
  off`` needed) and at full size;
- ``PACKET_AUXDATA``: the kernel strips a received 802.1Q tag into metadata; we put it
  back so VLAN switching sees the frame as it was on the wire;
- ``PACKET_IGNORE_OUTGOING``: do not read back the frames we transmit;
- ``PACKET_ADD_MEMBERSHIP``/``PACKET_MR_PROMISC``: see frames for every MAC, for as long
  as the socket lives;
- TPACKET_V2 receive and transmit rings (``packet_ring``): no system call per packet;
- a large ``SO_RCVBUF`` for the GSO super-frames that do not fit a ring slot.

``PACKET_QDISC_BYPASS`` is deliberately *not* set: it would skip tc, and QoS uses tc.
"""

from __future__ import annotations

import errno
import socket
import struct

from ovs_runtime.datapath.vnet_header import SIZE as VNET_SIZE
from ovs_runtime.datapath.vnet_header import shifted
from ovs_runtime.netdev import link
from ovs_runtime.netdev.packet_ring import PacketRing
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


def _set_buffers(sock: socket.socket) -> None:
    """Big socket buffers, past net.core.rmem_max when we may (CAP_NET_ADMIN): the
    receive queue holds the GSO super-frames that do not fit a ring slot."""
    for forced, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)


class AfPacketNetdev:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = NetdevStats()
        if not link.exists(name):
            raise NetdevGone(f"no network device named {name}")
        link.set_up(name)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)  # before the rings
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.ring = PacketRing(sock)
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            _set_buffers(sock)
            sock.bind((name, ETH_P_ALL))
            ifindex = socket.if_nametoindex(name)
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            sock.setblocking(False)
            # With a transmit ring, every send() on that socket sends from the ring; frames
            # too big for a slot leave through a second, ring-less socket (protocol 0:
            # it receives nothing).
            big_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            big_sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            big_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            big_sock.bind((name, 0))
            big_sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise NetdevGone(f"cannot attach to {name}: {exc.strerror or exc}") from exc
        self.sock = sock
        self.big_sock = big_sock
        self.stray_copies = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self, budget: int) -> list[Packet]:
        ring = self.ring
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
                self.stray_copies += 1
            elif self._pending_error():
                raise NetdevGone(f"device {self.name} went away")
        if packets:
            stats = self.stats
            stats.rx_packets += len(packets)
            stats.rx_bytes += sum([len(frame) for _, frame in packets])
        return packets

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
        ring = self.ring
        queued = ring.queue(vnet_header, frame)
        if queued is not None:
            stats = self.stats
            if queued:
                stats.tx_packets += 1
                stats.tx_bytes += len(frame)
            else:
                stats.tx_dropped += 1
            return
        ring.flush()  # keep order: what is queued goes first
        try:
            self.big_sock.send(vnet_header + frame)
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

    def flush(self) -> None:
        self.ring.flush()

    def status(self) -> NetdevStatus:
        return link.read_status(self.name)

    def close(self) -> None:
        self.ring.close()
        self.sock.close()
        self.big_sock.close()
