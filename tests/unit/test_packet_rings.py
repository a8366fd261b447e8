"""TPACKET rings and the ring-to-ring relay, over anonymous memory laid out as the kernel
lays out a TPACKET_V2 ring (no root). The same code runs against real kernel rings in
every AF_PACKET integration test (``test_switching_real``: frames counted as relayed)."""

from __future__ import annotations

import mmap
import socket
import struct
import uuid
from collections.abc import Iterator

import pytest

from ovs_runtime.bridge.desired_state import InterfaceSpec, PortSpec
from ovs_runtime.bridge.flow_rules import FlowRuleSpec
from ovs_runtime.datapath.userspace import UserspaceDatapath
from ovs_runtime.datapath.vnet_header import SIZE as VNET_SIZE
from ovs_runtime.netdev import packet_ring as ring
from ovs_runtime.netdev.provider import NetdevStats, NetdevStatus, Packet
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.flow_syntax import parse_rule
from ovs_runtime.packet.synthesize import build_frame

MAC_OFFSET = 80  # where the kernel would put the frame in a slot (vnet header before it)
HEAD = struct.Struct("IIIH")


def mac(n: int) -> bytes:
    return bytes([2, 0, 0, 0, 0, n])


def frame(dst: int, src: int, payload: bytes = b"") -> bytes:
    return mac(dst) + mac(src) + b"\x08\x00" + payload.ljust(46, b"\x00")


class KernelSide:
    """Plays the kernel: fills receive slots in the order it chooses."""

    def __init__(self) -> None:
        self.memory = mmap.mmap(-1, ring.RX_SLOTS * ring.SLOT_SIZE)
        self.rx = ring.RxRing(self.memory, head_known=True)

    def fill(self, slot: int, data: bytes, vlan_tci: int | None = None) -> None:
        offset = slot * ring.SLOT_SIZE
        start = offset + MAC_OFFSET
        self.memory[start - VNET_SIZE : start] = bytes(VNET_SIZE)
        self.memory[start : start + len(data)] = data
        status = ring.TP_STATUS_USER
        if vlan_tci is not None:
            status |= ring.TP_STATUS_VLAN_VALID
            struct.pack_into("HH", self.memory, offset + 24, vlan_tci, 0)
        HEAD.pack_into(self.memory, offset, status, len(data), len(data), MAC_OFFSET)

    def status(self, slot: int) -> int:
        return int(struct.unpack_from("I", self.memory, slot * ring.SLOT_SIZE)[0])


def no_copy() -> Packet | None:
    return None


def payloads(packets: list[Packet]) -> list[bytes]:
    return [f[14:15] for _h, f in packets]


def test_a_slot_left_empty_becomes_a_hole_and_its_late_frame_is_still_taken() -> None:
    kernel = KernelSide()
    for slot in (0, 1, 3, 4):
        kernel.fill(slot, frame(2, 1, bytes([slot])))
    assert payloads(kernel.rx.receive(64, no_copy)) == [b"\x00", b"\x01"]
    # Slot 2 is still being filled elsewhere: we wait a while rather than reorder (the
    # call above looked once already).
    for _ in range(ring.STALL_LIMIT - 2):
        assert kernel.rx.receive(64, no_copy) == []
    assert payloads(kernel.rx.receive(64, no_copy)) == [b"\x03", b"\x04"]
    assert kernel.rx.holes == [2]
    assert kernel.status(3) == ring.TP_STATUS_KERNEL  # handed back to the kernel
    assert kernel.rx.recover() is False  # nothing waits
    kernel.fill(2, frame(2, 1, b"\x02"))  # the late frame lands in the hole
    assert kernel.rx.recover() is True  # epoll would not say so: the maintenance does
    kernel.fill(5, frame(2, 1, b"\x05"))
    assert payloads(kernel.rx.receive(64, no_copy)) == [b"\x02", b"\x05"]
    assert kernel.rx.holes == [] and kernel.status(2) == ring.TP_STATUS_KERNEL


def test_a_hole_that_stays_empty_is_forgotten_before_we_come_round_to_it() -> None:
    kernel = KernelSide()
    kernel.rx.holes = [10]
    kernel.rx.rx_index = 10 + ring.HOLE_HORIZON - 1
    kernel.rx.receive(1, no_copy)
    assert kernel.rx.holes == [10]
    kernel.rx.rx_index = 10 + ring.HOLE_HORIZON
    kernel.rx.receive(1, no_copy)
    assert kernel.rx.holes == []  # the slot is simply the kernel's next one again


def test_transmit_ring_asks_for_a_whole_copy_of_frames_that_are_not_gso() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        tx = ring.TxRing(mmap.mmap(-1, ring.TX_SLOTS * ring.SLOT_SIZE), a)
        gso = struct.pack("<BBHHHH", 1, 1, 54, 1448, 34, 16)
        tx.queue_many([(bytes(VNET_SIZE), frame(2, 1)), (gso, frame(2, 1))])
        first = ring.TX_DATA_OFFSET
        second = ring.SLOT_SIZE + ring.TX_DATA_OFFSET
        assert struct.unpack_from("<H", tx.map, first + 2)[0] == 60  # hdr_len: all of it
        assert tx.map[second : second + VNET_SIZE] == gso  # a GSO header is left alone
        assert tx.tx_pending == 2


class RingNetdev:
    """An AF_PACKET port's rings without the socket (``AfPacketNetdev``'s shape)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = NetdevStats()
        self.kernel = KernelSide()
        self.rx_ring = self.kernel.rx
        self.kick, self.kicked = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.kick.setblocking(False)
        self.tx_ring = ring.TxRing(mmap.mmap(-1, ring.TX_SLOTS * ring.SLOT_SIZE), self.kick)
        self.next_slot = 0
        self.sent_slots = 0

    def inject(self, data: bytes, vlan_tci: int | None = None) -> None:
        self.kernel.fill(self.next_slot, data, vlan_tci)
        self.next_slot += 1

    def sent(self) -> list[bytes]:
        """Frames placed in the transmit ring since the last call, in order."""
        out: list[bytes] = []
        while True:
            offset = self.sent_slots * ring.SLOT_SIZE
            status, length = struct.unpack_from("II", self.tx_ring.map, offset)
            if status != ring.TP_STATUS_SEND_REQUEST:
                return out
            data = offset + ring.TX_DATA_OFFSET + VNET_SIZE
            out.append(self.tx_ring.map[data : data + length - VNET_SIZE])
            struct.pack_into("I", self.tx_ring.map, offset, ring.TP_STATUS_AVAILABLE)
            self.sent_slots += 1

    def fileno(self) -> int:
        return -1

    def receive(self, budget: int) -> list[Packet]:
        packets = self.rx_ring.receive(budget, no_copy)
        self.stats.rx_packets += len(packets)
        return packets

    def send(self, vnet_header: bytes, data: bytes) -> None:
        self.send_many([(vnet_header, data)])

    def send_many(self, packets: list[Packet]) -> None:
        queued, nbytes, _dropped, _rest = self.tx_ring.queue_many(packets)
        self.stats.tx_packets += queued

    def flush(self) -> None:
        self.tx_ring.flush()

    def status(self) -> NetdevStatus:
        return NetdevStatus(link_state="up", admin_state="up")

    def close(self) -> None:
        self.kick.close()
        self.kicked.close()


@pytest.fixture
def switch() -> Iterator[tuple[UserspaceDatapath, dict[str, RingNetdev]]]:
    netdevs: dict[str, RingNetdev] = {}

    def open_netdev(kind: str, name: str, options: dict[str, str]) -> RingNetdev:
        netdevs[name] = RingNetdev(name)
        return netdevs[name]

    dp = UserspaceDatapath(open_netdev, clock=lambda: 1000.0)
    dp.add_bridge("br0", {})
    for n, name in enumerate(("a", "b"), 1):
        iface = InterfaceSpec(uuid.uuid4(), name, "", {}, None)
        dp.add_port("br0", PortSpec(uuid.uuid4(), name, None, (), None, (iface,)), n)
    for _ in range(2):  # both stations learned, and the decisions made since cached
        netdevs["b"].inject(frame(1, 2))
        netdevs["a"].inject(frame(2, 1))
        dp.run_once()
    netdevs["a"].sent(), netdevs["b"].sent()
    yield dp, netdevs
    dp.stop()


def test_cache_hits_go_ring_to_ring_in_order_with_the_general_path(
    switch: tuple[UserspaceDatapath, dict[str, RingNetdev]],
) -> None:
    dp, netdevs = switch
    cache = dp.bridges["br0"].cache
    before = cache.relayed
    frames = [frame(2, 1, bytes([n])) for n in range(6)]
    for n, data in enumerate(frames):
        # The fourth comes with a tag the kernel stripped: the general path rebuilds it.
        netdevs["a"].inject(data, vlan_tci=10 if n == 3 else None)
    dp.run_once()
    sent = netdevs["b"].sent()
    tagged = frames[3][:12] + b"\x81\x00\x00\x0a" + frames[3][12:]
    assert sent == [*frames[:3], tagged, *frames[4:]]
    assert cache.relayed - before == 3  # from the tagged one on, the general path took the batch
    assert netdevs["a"].stats.rx_packets >= 6 and netdevs["b"].stats.tx_packets >= 6
    decision = cache.entries[(1, frames[0][:14])]
    assert decision.relay_to is dp.bridges["br0"].ports["b"]


def test_the_relay_never_uses_a_decision_made_before_a_change(
    switch: tuple[UserspaceDatapath, dict[str, RingNetdev]],
) -> None:
    dp, netdevs = switch
    netdevs["a"].inject(frame(2, 1))
    dp.run_once()
    relayed = dp.bridges["br0"].cache.relayed
    dp.fdb_flush("br0")  # b's MAC is unknown again: the frame must be flooded, not relayed
    netdevs["a"].inject(frame(2, 1, b"after"))
    dp.run_once()
    assert dp.bridges["br0"].cache.relayed == relayed
    assert netdevs["b"].sent()[-1] == frame(2, 1, b"after")


def test_with_rules_on_l3_and_l4_each_flow_is_relayed_or_dropped_by_its_own_decision(
    switch: tuple[UserspaceDatapath, dict[str, RingNetdev]],
) -> None:
    dp, netdevs = switch
    line = "priority=100,udp,tp_dst=9,actions=drop"
    rule = parse_rule(line, lambda name: name)
    dp.configure_flows("br0", "standalone", [FlowRuleSpec(uuid.uuid4(), line, rule, 0.0)])
    assert dp.bridges["br0"].deep
    cache = dp.bridges["br0"].cache

    def udp(port: int, payload: bytes) -> bytes:
        fields = {fk.DL_TYPE: fk.ETH_IP, fk.NW_PROTO: 17, fk.NW_TTL: 64}
        fields.update({fk.NW_SRC: 0xC6336401, fk.NW_DST: 0xC6336402})  # 198.51.100.1, .2
        fields.update({fk.TP_SRC: 5000, fk.TP_DST: port})
        return build_frame(fields, payload)

    for _ in range(2):  # the first of each flow is a miss; the second batch is all hits
        netdevs["a"].inject(udp(7, b"echo"))
        netdevs["a"].inject(udp(9, b"discard"))
        dp.run_once()
    assert netdevs["b"].sent() == [udp(7, b"echo")] * 2
    before = cache.relayed
    for n in range(4):
        netdevs["a"].inject(udp(9 if n % 2 else 7, bytes([n])))
    dp.run_once()
    assert netdevs["b"].sent() == [udp(7, b"\x00"), udp(7, b"\x02")]
    # Both flows' cached decisions applied ring to ring: two frames out, two dropped,
    # and the drop rule counted them.
    assert cache.relayed - before == 4
    (stats,) = [s for s in dp.flow_statistics("br0") if s["priority"] == 100]
    assert stats["n_packets"] == 2 + 4 // 2  # the two first batches and this one
