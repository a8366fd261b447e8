"""TPACKET_V2 receive and transmit rings for AF_PACKET sockets (packet(7), "PACKET_MMAP").

With a ring, the kernel writes received frames into memory we share with it, and reads
frames we place in the transmit ring when we kick it once per batch: no system call per
packet in either direction, which is what makes a Python datapath fast.

- Slots are ``SLOT_SIZE`` bytes, enough for any standard-MTU frame. Larger frames (GSO
  super-frames from veth/TAP, up to 64 KiB) do not fit: ``PACKET_COPY_THRESH`` makes the
  kernel queue a full copy on the socket as well, flagged ``TP_STATUS_COPY``, which we read
  with ``recvmsg``; on transmit they go out with a plain ``send`` after the ring is kicked,
  so order is kept.
- Each slot holds a ``tpacket2_hdr``; with ``PACKET_VNET_HDR`` the 10-byte virtio-net
  header sits just before the frame on receive and at the start of the data on transmit.
- The kernel strips a received 802.1Q tag into ``tp_vlan_tci``; we put it back.
"""

from __future__ import annotations

import mmap
import socket
import struct

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
TP_STATUS_WRONG_FORMAT = 4
TP_STATUS_SENDING = 2
TX_BUSY = TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING  # the kernel still owns the slot

HEADER = struct.Struct("IIIHHIIHH4x")  # struct tpacket2_hdr, 32 bytes
TX_DATA_OFFSET = 32  # TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
SLOT_SIZE = 2048
BLOCK_SIZE = 1 << 16
RX_SLOTS = 2048  # 4 MiB: frames queue here while the daemon is busy or restarting
TX_SLOTS = 512
STALL_LIMIT = 64
_U32 = struct.Struct("I")
_HEAD = struct.Struct("IIIH")  # tp_status, tp_len, tp_snaplen, tp_mac
_VLAN = struct.Struct("HH")  # tp_vlan_tci, tp_vlan_tpid (at offset 24)


TX_ROOM = SLOT_SIZE - TX_DATA_OFFSET


def _ring_request(slots: int) -> bytes:
    per_block = BLOCK_SIZE // SLOT_SIZE
    return struct.pack("IIII", BLOCK_SIZE, slots // per_block, SLOT_SIZE, slots)


class PacketRing:
    """The rings of one AF_PACKET socket (already created, not yet bound)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _ring_request(RX_SLOTS))
        sock.setsockopt(SOL_PACKET, PACKET_TX_RING, _ring_request(TX_SLOTS))
        self.sock = sock
        self.rx_bytes = RX_SLOTS * SLOT_SIZE
        self.map = mmap.mmap(
            sock.fileno(),
            self.rx_bytes + TX_SLOTS * SLOT_SIZE,
            mmap.MAP_SHARED,
            mmap.PROT_READ | mmap.PROT_WRITE,
        )
        self.rx_index = 0
        self.tx_index = 0
        self.tx_pending = 0
        self.truncated = 0
        self.stalls = 0
        self.resyncs = 0

    # -- receive ------------------------------------------------------------------------

    def receive(self, budget: int, recv_copy: object) -> list[tuple[bytes, bytes]]:
        """Frames the kernel has placed in the ring, oldest first."""
        mm = self.map
        packets: list[tuple[bytes, bytes]] = []
        append = packets.append
        index = self.rx_index
        unpack_head = _HEAD.unpack_from
        release = _U32.pack_into
        for _ in range(budget):
            offset = index * SLOT_SIZE
            status, length, snaplen, mac = unpack_head(mm, offset)
            if not status & TP_STATUS_USER:
                if not packets and self._skip_stuck_slot(index):
                    index = self.rx_index
                    continue
                break
            self.stalls = 0
            if status & TP_STATUS_COPY:
                packet = recv_copy()  # type: ignore[operator]
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

    def _skip_stuck_slot(self, index: int) -> bool:
        """Recover from a slot the kernel passed over.

        Under overload on a multi-core machine, we have seen the kernel leave one slot
        kernel-owned while filling the ones after it, which would stop the ring for good
        (epoll keeps reporting frames we never reach). A slot can also be briefly
        kernel-owned while another CPU still copies into it, so we only skip after the
        slot has stayed empty with later ones full for ``STALL_LIMIT`` looks in a row.
        """
        following = ((index + 1) % RX_SLOTS) * SLOT_SIZE
        if not _U32.unpack_from(self.map, following)[0] & TP_STATUS_USER:
            self.stalls = 0
            return False
        self.stalls += 1
        if self.stalls < STALL_LIMIT:
            return False
        self.stalls = 0
        self.resyncs += 1
        self.rx_index = (index + 1) % RX_SLOTS
        return True

    # -- transmit -----------------------------------------------------------------------

    def queue(self, vnet_header: bytes, frame: bytes) -> bool | None:
        """Place a frame in the transmit ring: True if queued, False if the ring is
        full, None if the frame is too big for a slot (the caller sends it otherwise)."""
        length = len(frame) + VNET_SIZE
        if length > TX_ROOM:
            return None
        mm = self.map
        offset = self.rx_bytes + self.tx_index * SLOT_SIZE
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

    def flush(self) -> None:
        """Ask the kernel to send everything queued in the transmit ring."""
        if not self.tx_pending:
            return
        self.tx_pending = 0
        try:
            self.sock.send(b"", socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.map.close()
