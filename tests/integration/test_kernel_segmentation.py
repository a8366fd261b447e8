"""The kernel segmenter (``netdev.kernel_gso``) against Python's ``segment_tcp``: the
same bytes, on a real TAP device, which goes away with the segmenter."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute
from scapy.compat import raw
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet

from ovs_runtime.datapath import vnet_header
from ovs_runtime.netdev.kernel_gso import FAILURE_LIMIT, KernelSegmenter
from ovs_runtime.packet.offload import ones_complement_sum, segment_tcp, tcp_payload_offset

GSO_SIZE = 1448


@pytest.fixture
def segmenter() -> Iterator[KernelSegmenter]:
    found = KernelSegmenter()
    try:
        yield found
    finally:
        found.close()


def as_veth_sends_it(packet: Packet, gso_type: int) -> tuple[bytes, bytes]:
    """Virtio-net header (GSO, partial checksum) and frame, the TCP checksum field
    holding the pseudo-header sum over the whole super-frame, as Linux leaves it."""
    frame = bytearray(raw(packet))
    l4 = frame.index(raw(packet[TCP])[:4], 14)
    length = len(frame) - l4
    if IP in packet:
        pseudo = frame[l4 - 8 : l4] + struct.pack("!xBH", 6, length)
    else:
        pseudo = frame[l4 - 32 : l4] + struct.pack("!IxxxB", length, 6)
    struct.pack_into("=H", frame, l4 + 16, ones_complement_sum(pseudo))
    header = struct.pack(
        "<BBHHHH", vnet_header.FLAG_NEEDS_CSUM, gso_type, l4 + 32, GSO_SIZE, l4, 16
    )
    return header, bytes(frame)


def checksums_valid(segment: bytes) -> bool:
    parsed = Ether(segment)
    sent = parsed[TCP].chksum
    del parsed[TCP].chksum
    return bool(Ether(raw(parsed))[TCP].chksum == sent)


ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
TCP_DATA = TCP(sport=40000, dport=5201, flags="PA", seq=1000, options=[("NOP", None)] * 12)


@pytest.mark.parametrize(
    ("packet", "gso_type"),
    [
        (ETH / IP(src="198.51.100.1", dst="198.51.100.2", id=9) / TCP_DATA, 1),
        (ETH / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP_DATA, 4),
        (ETH / Dot1Q(vlan=10) / IP(src="198.51.100.1", dst="198.51.100.2") / TCP_DATA, 1),
    ],
    ids=["ipv4", "ipv6", "ipv4-in-802.1q"],
)
def test_the_kernel_cuts_the_same_segments_as_python(
    segmenter: KernelSegmenter, packet: Packet, gso_type: int
) -> None:
    header, frame = as_veth_sends_it(packet / os.urandom(GSO_SIZE * 44 + 100), gso_type)
    by_kernel = segmenter.complete(header, frame)
    assert segmenter.fallbacks == 0, "the kernel refused the super-frame"
    assert by_kernel == segment_tcp(frame, GSO_SIZE)
    assert len(by_kernel) == 45 and all(checksums_valid(s) for s in by_kernel)
    start = tcp_payload_offset(frame)
    assert b"".join(s[start:] for s in by_kernel) == frame[start:]


def test_stray_frames_on_the_device_are_not_taken_for_segments(
    segmenter: KernelSegmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert segmenter.sock is not None
    stray = raw(Ether(src="02:00:00:00:00:09", dst="ff:ff:ff:ff:ff:ff") / IP() / (b"x" * 40))
    segmenter.sock.send(vnet_header.EMPTY + stray)
    # Left in the queue, ahead of the segments: the reader must step over it.
    monkeypatch.setattr(segmenter, "_discard", lambda: 0)
    header, frame = as_veth_sends_it(ETH / IP(src="198.51.100.1") / TCP_DATA / bytes(5000), 1)
    assert segmenter.complete(header, frame) == segment_tcp(frame, GSO_SIZE)
    assert segmenter.fallbacks == 0


def test_more_segments_than_the_device_queues_go_to_python(segmenter: KernelSegmenter) -> None:
    header, frame = as_veth_sends_it(ETH / IP(src="198.51.100.1") / TCP_DATA / bytes(30000), 1)
    small = header[:4] + struct.pack("<H", 100) + header[6:]  # gso_size 100: 300 segments
    assert segmenter.complete(small, frame) == segment_tcp(frame, 100)
    assert segmenter.fallbacks == 1


def test_a_deleted_device_means_python_segmentation_not_a_crash(
    segmenter: KernelSegmenter,
) -> None:
    with IPRoute() as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=segmenter.name)[0])
    header, frame = as_veth_sends_it(ETH / IP(src="198.51.100.1") / TCP_DATA / bytes(5000), 1)
    for _ in range(FAILURE_LIMIT):
        assert segmenter.complete(header, frame) == segment_tcp(frame, GSO_SIZE)
    assert segmenter.fallbacks == FAILURE_LIMIT
    assert segmenter.sock is None  # given up: the module-level path drops it


def test_a_super_frame_the_kernel_refuses_is_segmented_in_python(
    segmenter: KernelSegmenter,
) -> None:
    header, frame = as_veth_sends_it(ETH / IP(src="198.51.100.1") / TCP_DATA / bytes(5000), 1)
    # hdr_len beyond the frame: the kernel says EINVAL; Python does not need it.
    too_long = header[:2] + struct.pack("<H", len(frame) + 100) + header[4:]
    assert segmenter.complete(too_long, frame) == segment_tcp(frame, GSO_SIZE)
    assert segmenter.fallbacks == 1


def test_the_device_goes_with_the_segmenter() -> None:
    segmenter = KernelSegmenter()
    name = segmenter.name
    try:
        assert name.startswith("ovsr-gso") and os.path.exists(f"/sys/class/net/{name}")
        with IPRoute() as ipr:
            assert ipr.get_addr(index=ipr.link_lookup(ifname=name)[0]) == ()
        time.sleep(1.5)  # time enough for IPv6 DAD, were a link-local address made:
        # the kernel has sent nothing to the device
        with pytest.raises(BlockingIOError):
            os.read(segmenter.fd, 2048)
    finally:
        segmenter.close()
    deadline = time.monotonic() + 2
    while os.path.exists(f"/sys/class/net/{name}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/sys/class/net/{name}")
