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
  existing ring (and, as a safety net, when the ring has looked stuck for a second).
  Slots filled late are stepped over as holes and read when they fill (``RxRing``).
- Each slot holds a ``tpacket2_hdr``; with ``PACKET_VNET_HDR`` the 10-byte virtio-net
  header sits just before the frame on receive and at the start of the data on transmit.
- The kernel strips a received 802.1Q tag into ``tp_vlan_tci``; we put it back.
- On transmit, the kernel copies only the virtio-net header's ``hdr_len`` bytes into
  the packet and attaches the rest as page fragments of the ring, which a veth peer
  must then copy again into fresh pages. For frames that are not GSO, where
  ``hdr_len`` means nothing else, we set it to the whole frame: one small copy, as a
  plain ``send`` makes, instead of a page allocation per frame.
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
STALL_LIMIT = 16  # looks at an empty slot, with the next one full, before stepping over
HOLE_HORIZON = RX_SLOTS * 3 // 4  # a hole this far behind us is forgotten
TX_ROOM = SLOT_SIZE - TX_DATA_OFFSET
_U32 = struct.Struct("I")
_U16 = struct.Struct("<H")  # virtio-net header fields are little-endian
VNET_GSO_TYPE = 1  # offsets in the virtio-net header
VNET_HDR_LEN = 2
_HEAD = struct.Struct("IIIH")  # tp_status, tp_len, tp_snaplen, tp_mac
_VLAN = struct.Struct("HH")  # tp_vlan_tci, tp_vlan_tpid (at offset 24)

Packet = tuple[bytes, bytes]


def _ring_request(slots: int) -> bytes:
    per_block = BLOCK_SIZE // SLOT_SIZE
    return struct.pack("IIII", BLOCK_SIZE, slots // per_block, SLOT_SIZE, slots)


class RxRing:
    """The receive ring of an AF_PACKET socket.

    The kernel claims slots strictly in order but fills them in parallel (one CPU may
    still copy into slot N while another has finished N+1), and under overload on
    few cores we see a slot stay empty long after later ones are full. Waiting for it
    would stall the port; skipping it for good would wedge the ring, because if it is
    filled later, the kernel stops there when it comes round again (the slot is still
    ours) and drops everything. So a slot that stays empty while the next one is full
    becomes a *hole*: we step over it, and take its frame as soon as it arrives."""

    def __init__(self, memory: mmap.mmap, head_known: bool) -> None:
        self.map = memory  # RX_SLOTS slots of SLOT_SIZE bytes
        self.rx_index = 0
        self.head_known = head_known  # a fresh ring starts at slot 0
        self.holes: list[int] = []  # slots stepped over while still empty
        self.truncated = 0
        self.stalls = 0
        self.resyncs = 0
        self.idle_since: int | None = None  # rx_index at the last empty-slot check

    @classmethod
    def on_socket(cls, sock: socket.socket, inherited: bool) -> RxRing:
        """The ring of an AF_PACKET socket: set up on a new one, or mapped again on one
        a previous process left (``inherited``)."""
        if not inherited:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _ring_request(RX_SLOTS))
        memory = mmap.mmap(
            sock.fileno(), RX_SLOTS * SLOT_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        return cls(memory, head_known=not inherited)

    def receive(self, budget: int, recv_copy: Callable[[], Packet | None]) -> list[Packet]:
        """Frames the kernel has placed in the ring, oldest first (a hole's frame comes
        when it arrives: slightly out of order, as it was slightly late)."""
        mm = self.map
        packets: list[Packet] = []
        if self.holes:
            self._fill_holes(packets, recv_copy)
        index = self.rx_index
        unpack_head = _HEAD.unpack_from
        release = _U32.pack_into
        read_slot = self._read_slot
        for _ in range(budget):
            offset = index * SLOT_SIZE
            status, length, snaplen, mac = unpack_head(mm, offset)
            if not status & TP_STATUS_USER:
                if self._step_over(index):
                    index = self.rx_index
                    continue
                break
            self.stalls = 0
            packet = read_slot(offset, status, length, snaplen, mac, recv_copy)
            if packet is not None:
                packets.append(packet)
            release(mm, offset, TP_STATUS_KERNEL)
            index += 1
            if index == RX_SLOTS:
                index = 0
        self.rx_index = index
        return packets

    def _read_slot(
        self,
        offset: int,
        status: int,
        length: int,
        snaplen: int,
        mac: int,
        recv_copy: Callable[[], Packet | None],
    ) -> Packet | None:
        mm = self.map
        if status & TP_STATUS_COPY:
            return recv_copy()
        if snaplen < length:
            # Too big for a slot and no room for a full copy on the socket: forwarding
            # the truncated frame would corrupt it, so it is dropped and counted.
            self.truncated += 1
            return None
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
            return shifted(mm[start - VNET_SIZE : start], 4), frame
        return mm[start - VNET_SIZE : start], mm[start : start + snaplen]

    def _fill_holes(self, packets: list[Packet], recv_copy: Callable[[], Packet | None]) -> None:
        """Take the frames that arrived in holes; forget holes we are about to reach
        again in order (by then an empty one is just the kernel's next slot)."""
        mm = self.map
        waiting = []
        for hole in self.holes:
            offset = hole * SLOT_SIZE
            status, length, snaplen, mac = _HEAD.unpack_from(mm, offset)
            if status & TP_STATUS_USER:
                packet = self._read_slot(offset, status, length, snaplen, mac, recv_copy)
                if packet is not None:
                    packets.append(packet)
                _U32.pack_into(mm, offset, TP_STATUS_KERNEL)
            elif (self.rx_index - hole) % RX_SLOTS < HOLE_HORIZON:
                waiting.append(hole)
        self.holes = waiting

    def _step_over(self, index: int) -> bool:
        """Our slot is empty: is it a hole to step over (the next slot has a frame and
        ours stayed empty for ``STALL_LIMIT`` looks), or, after attaching to a ring a
        previous process used, is the oldest unread frame elsewhere?"""
        if self.head_known:
            following = ((index + 1) % RX_SLOTS) * SLOT_SIZE
            if not _U32.unpack_from(self.map, following)[0] & TP_STATUS_USER:
                self.stalls = 0
                return False
            self.stalls += 1
            if self.stalls < STALL_LIMIT:
                return False
            self.stalls = 0
            self.holes.append(index)
            self.rx_index = (index + 1) % RX_SLOTS
            return True
        oldest = self._oldest_unread()
        if oldest is None or oldest == index:
            return False
        self.rx_index = oldest
        self.head_known = True
        return True

    def recover(self) -> bool:
        """Called every second: True if frames wait that the epoll loop would not see.

        The kernel reports the ring readable only while the slot before its own write
        position is unread, so a frame that lands in a hole after we caught up raises
        no event: it is taken here. And as a safety net, should a slot we no longer
        track be filled (a hole forgotten after three quarters of a ring), the kernel's
        position would stop there, every new frame would be dropped and epoll would stay
        silent: so when our slot has stayed empty for a whole second while other slots
        hold frames, we move to the oldest of them (counted as an rx error)."""
        mm = self.map
        if _U32.unpack_from(mm, self.rx_index * SLOT_SIZE)[0] & TP_STATUS_USER or any(
            _U32.unpack_from(mm, hole * SLOT_SIZE)[0] & TP_STATUS_USER for hole in self.holes
        ):
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

    def __init__(self, memory: mmap.mmap, sock: socket.socket) -> None:
        self.map = memory  # TX_SLOTS slots of SLOT_SIZE bytes
        self.sock = sock  # a send on it asks the kernel to transmit what the ring holds
        self.tx_index = 0
        self.tx_pending = 0

    @classmethod
    def on_socket(cls, sock: socket.socket) -> TxRing:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_TX_RING, _ring_request(TX_SLOTS))
        memory = mmap.mmap(
            sock.fileno(), TX_SLOTS * SLOT_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        return cls(memory, sock)

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
        if not vnet_header[VNET_GSO_TYPE]:
            _U16.pack_into(mm, start + VNET_HDR_LEN, length - VNET_SIZE)
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
        pack_u16 = _U16.pack_into
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
            if not vnet_header[VNET_GSO_TYPE]:
                pack_u16(mm, start + VNET_HDR_LEN, length - VNET_SIZE)
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
