"""The ring-to-ring relay: the fast path for the commonest frame on a busy port.

Most frames a busy port receives are exact-match cache hits whose decision is "out of
one port, unchanged". When the input and the output are both AF_PACKET ports with
TPACKET rings, such a frame can go from its receive-ring slot to a transmit-ring slot
in one copy (the virtio-net header travels with it: on receive it sits just before the
frame, on transmit at the start of the slot's data) without ever becoming a
``(header, frame)`` pair, a list entry or a per-frame function call.

``relay`` takes a run of such frames (and of frames the cached decision drops) and
stops at the first one that needs anything else: a cache miss or stale decision,
several outputs, a tag change, a rewrite, a mirror, a kernel-stripped VLAN tag, a frame
too big for a slot. The general path then continues from that very slot, so frame
order is kept. Counters (ports, cache hits, the decision's packets and bytes) and the
refresh of learned MACs are exactly those of the general path.

The caller decides whether the relay applies at all: not while a policer, sFlow or
NetFlow needs to see every frame.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ovs_runtime.datapath.flow_cache import REFRESH_INTERVAL
from ovs_runtime.datapath.vnet_header import SIZE as VNET_SIZE
from ovs_runtime.netdev.packet_ring import (
    RX_SLOTS,
    SLOT_SIZE,
    TP_STATUS_COPY,
    TP_STATUS_KERNEL,
    TP_STATUS_SEND_REQUEST,
    TP_STATUS_USER,
    TP_STATUS_VLAN_VALID,
    TX_BUSY,
    TX_DATA_OFFSET,
    TX_ROOM,
    TX_SLOTS,
    VNET_GSO_TYPE,
    VNET_HDR_LEN,
    RxRing,
    TxRing,
)
from ovs_runtime.ofproto.flow_key import exact_bytes

if TYPE_CHECKING:
    from ovs_runtime.datapath.flow_cache import CachedDecision
    from ovs_runtime.datapath.port_handle import PortHandle
    from ovs_runtime.netdev.provider import Netdev

_U32 = struct.Struct("I")
_U16 = struct.Struct("<H")
_TX_HEAD = struct.Struct("II")  # tp_status, tp_len
VNET_GSO_TYPE_BACK = VNET_SIZE - VNET_GSO_TYPE  # gso_type, counted back from the frame
# A slot's tp_status, tp_len, tp_snaplen and tp_mac, and the Ethernet header where the
# kernel puts it for a ring with virtio-net headers (TPACKET_ALIGN(32 + 20 + 16) + 10 -
# 14): one read instead of two; frames placed elsewhere are read again.
USUAL_MAC_OFFSET = 76
_SLOT = struct.Struct(f"IIIH{USUAL_MAC_OFFSET - 14}x14s")
_SLOW = TP_STATUS_COPY | TP_STATUS_VLAN_VALID  # frames the general path must rebuild
MIN_FRAME = 18  # shorter frames go the general way, which drops runts and counts them
MAX_FRAME = TX_ROOM - VNET_SIZE


def relay(
    handle: PortHandle,
    rx: RxRing,
    budget: int,
    now: float,
    dirty: set[Netdev],
    deep: bool,
) -> tuple[int, bool]:
    """Relay up to ``budget`` frames from ``handle``'s receive ring. Returns how many
    were taken and whether the ring's next frame needs the general path. ``deep``: the
    exact-match keys hold the L3/L4 bytes rules read (``flow_key.exact_bytes``)."""
    bridge = handle.bridge
    mac_table = bridge.normal.mac_table
    generation = mac_table.generation
    entries = bridge.cache.entries
    ofport = handle.ofport
    mm = rx.map
    unpack_slot = _SLOT.unpack_from
    pack_u32 = _U32.pack_into
    pack_u16 = _U16.pack_into
    pack_slot_head = _TX_HEAD.pack_into
    index = rx.rx_index
    taken = taken_bytes = 0
    slow = False
    # The current run of frames with one decision: its transmit ring (None: a drop),
    # position in it, and counts.
    current: CachedDecision | None = None
    tx: TxRing | None = None
    out_netdev: Netdev | None = None
    tmm = mm
    tx_index = run_packets = run_bytes = run_dropped = dropped_bytes = 0
    for _ in range(budget):
        offset = index * SLOT_SIZE
        status, length, snaplen, mac, head = unpack_slot(mm, offset)
        if not status & TP_STATUS_USER:
            break
        if status & _SLOW or snaplen != length or not MIN_FRAME <= snaplen <= MAX_FRAME:
            slow = True
            break
        start = offset + mac
        if deep:
            head = exact_bytes(mm[start : start + snaplen])
            if head is None:  # too short for its headers: never cached
                slow = True
                break
        else:
            if mac != USUAL_MAC_OFFSET:
                head = mm[start : start + 14]
            if head[12] == 0x81 and head[13] == 0:  # an in-band tag: an 18-byte key
                slow = True
                break
        decision = entries.get((ofport, head))
        if decision is None or decision is not current:
            if decision is None or decision.generation != generation:
                slow = True
                break
            out = decision.relay_to
            if out is not None:
                netdev = out.netdev
                ring = getattr(netdev, "tx_ring", None)
                if ring is None:
                    slow = True
                    break
            elif decision.actions:  # several outputs, a tag change, a rewrite...
                slow = True
                break
            else:
                netdev = ring = None  # a drop
            if decision.learned and now - decision.refreshed > REFRESH_INTERVAL:
                decision.refreshed = now
                mac_table.learn(*decision.learned, now)
                if mac_table.generation != generation:  # the decision may be stale now
                    slow = True
                    break
            if current is not None:
                _settle(
                    handle,
                    current,
                    tx,
                    out_netdev,
                    tx_index,
                    run_packets,
                    run_bytes,
                    run_dropped,
                    dropped_bytes,
                )
                taken += run_packets
                taken_bytes += run_bytes
            current, tx, out_netdev = decision, ring, netdev
            if ring is not None:
                tmm, tx_index = ring.map, ring.tx_index
                dirty.add(netdev)
            run_packets = run_bytes = run_dropped = dropped_bytes = 0
        run_packets += 1
        run_bytes += snaplen
        if tx is not None:
            toffset = tx_index * SLOT_SIZE
            if tmm[toffset] & TX_BUSY:  # (both bits are in tp_status's low byte)
                tx.tx_pending = 1  # make sure the kick goes out
                tx.flush()
            if tmm[toffset] & TX_BUSY:
                run_dropped += 1
                dropped_bytes += snaplen
            else:
                data = toffset + TX_DATA_OFFSET
                tmm[data : data + snaplen + VNET_SIZE] = mm[start - VNET_SIZE : start + snaplen]
                if not mm[start - VNET_GSO_TYPE_BACK]:  # not GSO: copied whole (packet_ring)
                    pack_u16(tmm, data + VNET_HDR_LEN, snaplen)
                # Status and tp_len in one write: the kernel reads this ring only when we
                # kick it, in our own thread, so their order cannot matter.
                pack_slot_head(tmm, toffset, TP_STATUS_SEND_REQUEST, snaplen + VNET_SIZE)
                tx_index += 1
                if tx_index == TX_SLOTS:
                    tx_index = 0
        pack_u32(mm, offset, TP_STATUS_KERNEL)
        index += 1
        if index == RX_SLOTS:
            index = 0
    if current is not None:
        _settle(
            handle,
            current,
            tx,
            out_netdev,
            tx_index,
            run_packets,
            run_bytes,
            run_dropped,
            dropped_bytes,
        )
        taken += run_packets
        taken_bytes += run_bytes
    if taken:
        rx.rx_index = index
        rx.stalls = 0
        stats = handle.netdev.stats  # type: ignore[union-attr]
        stats.rx_packets += taken
        stats.rx_bytes += taken_bytes
        cache = bridge.cache
        cache.hits += taken
        cache.relayed += taken
    return taken, slow


def _settle(
    handle: PortHandle,
    decision: CachedDecision,
    tx: TxRing | None,
    netdev: Netdev | None,
    tx_index: int,
    packets: int,
    nbytes: int,
    dropped: int,
    dropped_bytes: int,
) -> None:
    """A run's counts, as the general path keeps them: the decision (and so its rules)
    counts every frame; a drop the pipeline named is counted under its reason; the
    output port counts what its transmit ring had room for."""
    decision.n_packets += packets
    decision.n_bytes += nbytes
    if tx is None:
        if decision.drop_reason:
            handle.bridge.normal.drops[decision.drop_reason] += packets
            handle.netdev.stats.rx_dropped += packets  # type: ignore[union-attr]
        return
    assert netdev is not None
    tx.tx_index = tx_index
    tx.tx_pending += packets - dropped
    stats = netdev.stats
    stats.tx_packets += packets - dropped
    stats.tx_bytes += nbytes - dropped_bytes
    stats.tx_dropped += dropped
