"""TPACKET_V2 receive and transmit rings for AF_PACKET sockets (packet(7), "PACKET_MMAP").

With a ring, the kernel writes received frames into memory we share with it, and reads
frames we place in the transmit ring when we kick it once per batch: no system call per
packet in either direction, which is what makes a Python datapath fast.

- Receive slots are ``SLOT_SIZE`` bytes, enough for any standard-MTU frame. Larger
  frames (GSO super-frames from veth/TAP, up to 64 KiB) do not fit: ``PACKET_COPY_THRESH``
  makes the kernel also queue a full copy on the socket, flagged ``TP_STATUS_COPY``, which
  the caller reads with ``recvmsg``.
- The receive ring lives on a socket that survives daemon restarts (systemd's
  file-descriptor store). A new process does not know where the kernel will write next,
  so ``RxRing`` finds the oldest unread frame by scanning when it attaches to an
  existing ring, and whenever the ring looks stuck.
- Each slot holds a ``tpacket2_hdr``; with ``PACKET_VNET_HDR`` the 10-byte virtio-net
  header sits just before the frame on receive and at the start of the data on transmit.
- The kernel strips a received 802.1Q tag into ``tp_vlan_tci``; we put it back.
"""

from __future__ import annotations

import mmap
import socket
import struct
from collections.abc import Callable

from ovs_runtime.datapath.vnet_header import SIZE as VNET_SIZE
from ovs_runtime.datapath.vnet_header import shifted

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_COPY_THRESH = 7
PACKET_VERSION = 10
PACKET_TX_RING = 13
TPACKET_V2 = 1

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_COPY = 2
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1
TP_STATUS_SENDING = 2
TX_BUSY = TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING  # the kernel still owns the slot

TX_DATA_OFFSET = 32  # TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
SLOT_SIZE = 2048
BLOCK_SIZE = 1 << 16
RX_SLOTS = 2048  # 4 MiB: frames queue here while the daemon is busy or restarting
TX_SLOTS = 512
STALL_LIMIT = 64
TX_ROOM = SLOT_SIZE - TX_DATA_OFFSET
_U32 = struct.Struct("I")
_HEAD = struct.Struct("IIIH")  # tp_status, tp_len, tp_snaplen, tp_mac
_VLAN = struct.Struct("HH")  # tp_vlan_tci, tp_vlan_tpid (at offset 24)

Packet = tuple[bytes, bytes]


def _ring_request(slots: int) -> bytes:
    per_block = BLOCK_SIZE // SLOT_SIZE
    return struct.pack("IIII", BLOCK_SIZE, slots // per_block, SLOT_SIZE, slots)


class RxRing:
    """The receive ring of an AF_PACKET socket."""

    def __init__(self, sock: socket.socket, inherited: bool) -> None:
        if not inherited:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _ring_request(RX_SLOTS))
        self.map = mmap.mmap(
            sock.fileno(), RX_SLOTS * SLOT_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.rx_index = 0
        self.head_known = not inherited  # a fresh ring starts at slot 0
        self.truncated = 0
        self.stalls = 0
        self.resyncs = 0
        self.idle_since: int | None = None  # rx_index at the last empty-slot check

    def receive(self, budget: int, recv_copy: Callable[[], Packet | None]) -> list[Packet]:
        """Frames the kernel has placed in the ring, oldest first."""
        mm = self.map
        packets: list[Packet] = []
        append = packets.append
        index = self.rx_index
        unpack_head = _HEAD.unpack_from
        release = _U32.pack_into
        for _ in range(budget):
            offset = index * SLOT_SIZE
            status, length, snaplen, mac = unpack_head(mm, offset)
            if not status & TP_STATUS_USER:
                if not packets and self._resync(index):
                    index = self.rx_index
                    continue
                break
            self.stalls = 0
            if status & TP_STATUS_COPY:
                packet = recv_copy()
                if packet is not None:
                    append(packet)
            elif snaplen < length:
                # Too big for a slot and no room for a full copy on the socket: forwarding
                # the truncated frame would corrupt it, so it is dropped and counted.
                self.truncated += 1
            else:
                start = offset + mac
                if status & TP_STATUS_VLAN_VALID:
                    tci, tpid = _VLAN.unpack_from(mm, offset + 24)
                    if not status & TP_STATUS_VLAN_TPID_VALID:
                        tpid = 0x8100
                    frame = (
                        mm[start : start + 12]
                        + struct.pack("!HH", tpid, tci)
                        + mm[start + 12 : start + snaplen]
                    )
                    append((shifted(mm[start - VNET_SIZE : start], 4), frame))
                else:
                    append((mm[start - VNET_SIZE : start], mm[start : start + snaplen]))
            release(mm, offset, TP_STATUS_KERNEL)
            index += 1
            if index == RX_SLOTS:
                index = 0
        self.rx_index = index
        return packets

    def _resync(self, index: int) -> bool:
        """Move to the oldest unread frame when we cannot know or have lost the kernel's
        position: after attaching to a ring a previous process used, or when a slot stays
        empty while the next one is full (seen under overload on two cores: the kernel
        passed over one slot). A slot can also be briefly empty while another CPU still
        copies into it, so that case waits ``STALL_LIMIT`` looks before skipping."""
        if self.head_known:
            following = ((index + 1) % RX_SLOTS) * SLOT_SIZE
            if not _U32.unpack_from(self.map, following)[0] & TP_STATUS_USER:
                self.stalls = 0
                return False
            self.stalls += 1
            if self.stalls < STALL_LIMIT:
                return False
            self.stalls = 0
            self.resyncs += 1
        oldest = self._oldest_unread()
        if oldest is None or oldest == index:
            return False
        self.rx_index = oldest
        self.head_known = True
        return True

    def recover(self) -> bool:
        """Called every second: True if frames wait that the epoll loop would not see.

        The kernel reports the ring readable only while the slot before its own write
        position is unread. If a slot we passed over (a resync under overload) is filled
        afterwards, the kernel's position stops there, the ring counts as full, every new
        frame is dropped and epoll stays silent: the port is dead for good. So when our
        slot has stayed empty for a whole second while other slots hold frames, we move
        to the oldest of them; one second is far longer than any copy in progress."""
        mm = self.map
        if _U32.unpack_from(mm, self.rx_index * SLOT_SIZE)[0] & TP_STATUS_USER:
            self.idle_since = None
            return True
        oldest = self._oldest_unread()
        if oldest is None:
            self.idle_since = None
            return False
        if self.idle_since != self.rx_index:
            self.idle_since = self.rx_index  # look again next time
            return False
        self.idle_since = None
        self.rx_index = oldest
        self.resyncs += 1
        return True

    def _oldest_unread(self) -> int | None:
        mm = self.map
        user = [
            bool(_U32.unpack_from(mm, i * SLOT_SIZE)[0] & TP_STATUS_USER) for i in range(RX_SLOTS)
        ]
        if not any(user):
            return None
        for i in range(RX_SLOTS):
            if user[i] and not user[i - 1]:
                return i
        return self.rx_index  # every slot full: any start is the oldest

    def close(self) -> None:
        self.map.close()


class TxRing:
    """The transmit ring of an AF_PACKET socket (always fresh: nothing to inherit)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_TX_RING, _ring_request(TX_SLOTS))
        self.sock = sock
        self.map = mmap.mmap(
            sock.fileno(), TX_SLOTS * SLOT_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.tx_index = 0
        self.tx_pending = 0

    def queue(self, vnet_header: bytes, frame: bytes) -> bool | None:
        """Place a frame in the ring: True if queued, False if the ring is full, None if
        the frame is too big for a slot (the caller sends it another way)."""
        length = len(frame) + VNET_SIZE
        if length > TX_ROOM:
            return None
        mm = self.map
        offset = self.tx_index * SLOT_SIZE
        if _U32.unpack_from(mm, offset)[0] & TX_BUSY:
            self.flush()
            if _U32.unpack_from(mm, offset)[0] & TX_BUSY:
                return False
        start = offset + TX_DATA_OFFSET
        mm[start : start + VNET_SIZE] = vnet_header
        mm[start + VNET_SIZE : start + length] = frame
        _U32.pack_into(mm, offset + 4, length)  # tp_len, before the status flips
        _U32.pack_into(mm, offset, TP_STATUS_SEND_REQUEST)
        index = self.tx_index + 1
        self.tx_index = 0 if index == TX_SLOTS else index
        self.tx_pending += 1
        return True

    def queue_many(self, packets: list[Packet]) -> tuple[int, int, int, list[Packet]]:
        """Queue frames in order. Returns (frames queued, their bytes, frames dropped on a
        full ring, and the frames from the first one too big for a slot onwards, which
        the caller sends another way)."""
        mm = self.map
        unpack = _U32.unpack_from
        pack = _U32.pack_into
        queued = nbytes = dropped = 0
        for position, (vnet_header, frame) in enumerate(packets):
            length = len(frame) + VNET_SIZE
            if length > TX_ROOM:
                return queued, nbytes, dropped, packets[position:]
            offset = self.tx_index * SLOT_SIZE
            if unpack(mm, offset)[0] & TX_BUSY:
                self.flush()
                if unpack(mm, offset)[0] & TX_BUSY:
                    dropped += 1
                    continue
            start = offset + TX_DATA_OFFSET
            mm[start : start + VNET_SIZE] = vnet_header
            mm[start + VNET_SIZE : start + length] = frame
            pack(mm, offset + 4, length)  # tp_len, before the status flips
            pack(mm, offset, TP_STATUS_SEND_REQUEST)
            index = self.tx_index + 1
            self.tx_index = 0 if index == TX_SLOTS else index
            self.tx_pending += 1
            queued += 1
            nbytes += length - VNET_SIZE
        return queued, nbytes, dropped, []

    def flush(self) -> None:
        """Ask the kernel to send everything queued in the ring."""
        if not self.tx_pending:
            return
        self.tx_pending = 0
        try:
            self.sock.send(b"", socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.map.close()
