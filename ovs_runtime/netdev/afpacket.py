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
- a large ``SO_RCVBUF``: frames queue in the kernel while the daemon is busy or
  restarting.

``PACKET_QDISC_BYPASS`` is deliberately *not* set: it would skip tc, and QoS uses tc.
"""

from __future__ import annotations

import errno
import socket
import struct

from ovs_runtime.datapath.vnet_header import SIZE as VNET_SIZE
from ovs_runtime.datapath.vnet_header import shifted
from ovs_runtime.netdev import link
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
SOCKET_BUFFER = 8 * 1024 * 1024
GONE_ERRNOS = (errno.ENETDOWN, errno.ENXIO, errno.ENODEV)


class AfPacketNetdev:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = NetdevStats()
        if not link.exists(name):
            raise NetdevGone(f"no network device named {name}")
        link.set_up(name)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            sock.bind((name, ETH_P_ALL))
            ifindex = socket.if_nametoindex(name)
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise NetdevGone(f"cannot attach to {name}: {exc.strerror or exc}") from exc
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self, budget: int) -> list[Packet]:
        packets: list[Packet] = []
        recvmsg = self.sock.recvmsg
        for _ in range(budget):
            try:
                data, ancdata, _flags, _addr = recvmsg(RECV_SIZE, CMSG_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in GONE_ERRNOS:
                    raise NetdevGone(f"device {self.name} went away: {exc.strerror}") from exc
                self.stats.rx_errors += 1
                break
            header, frame = data[:VNET_SIZE], data[VNET_SIZE:]
            for level, kind, cdata in ancdata:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack(
                        cdata[: AUXDATA.size]
                    )
                    if status & TP_STATUS_VLAN_VALID:
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = 0x8100
                        frame = frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
                        header = shifted(header, 4)
            self.stats.rx_packets += 1
            self.stats.rx_bytes += len(frame)
            packets.append((header, frame))
        return packets

    def send(self, vnet_header: bytes, frame: bytes) -> None:
        try:
            self.sock.send(vnet_header + frame)
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

    def status(self) -> NetdevStatus:
        return link.read_status(self.name)

    def close(self) -> None:
        self.sock.close()
