"""TCP segmentation by the kernel, for frames that must leave over a tunnel.

A VM or a veth with offloads on sends TCP as 64 KiB super-frames (GSO) with partial
checksums. A tunnel port sends each frame inside UDP, where nobody will cut it up, so
it must be segmented and checksummed first. ``packet.offload.segment_tcp`` does that in
Python at about 6.5 µs per segment; the kernel does it in C.

``KernelSegmenter`` borrows the kernel's own software GSO: it owns a TAP device
(``ovsr-gsoN``) opened *without* offloads, so anything transmitted to it must be
segmented and checksummed before the TAP hands it over. A super-frame is sent to the
device over an AF_PACKET socket with its virtio-net header, and its segments are read
back from the TAP's fd, before ``send`` returns (transmission runs in our thread).

The device is private plumbing, like Open vSwitch's ``ovs-netdev``: it has no
addresses (not even an IPv6 link-local one), and it disappears when the daemon closes it or
exits (it is not persistent). Anything unexpected (no ``/dev/net/tun``, a frame the
kernel refuses, segments that are not exactly the expected ones, more segments than
the device queues, repeated device errors) falls back to ``segment_tcp``.

The two differ in one respect. Like a NIC doing TSO, the kernel updates each segment's
checksum from the one the sender left in the frame, the pseudo-header sum over the
whole super-frame (what Linux senders, veths and virtio guests leave); ``segment_tcp``
computes each from scratch. For such senders the bytes are identical (tested).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import struct

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ovs_runtime.datapath import vnet_header
from ovs_runtime.netdev.afpacket import PACKET_VNET_HDR, SOL_PACKET
from ovs_runtime.netdev.tap import IFF_NO_PI, IFF_TAP, TUNSETIFF
from ovs_runtime.packet.offload import (
    GSO_ECN,
    GSO_TCPV4,
    GSO_TCPV6,
    complete_frame,
    tcp_offsets,
)

log = logging.getLogger(__name__)

NAME_PATTERN = b"ovsr-gso%d"
READ_SIZE = 65535 + 256  # any segment of a 64 KiB super-frame, headers included
MAX_SEGMENTS = 256  # a TAP's queue holds 500 frames by default
FAILURE_LIMIT = 8  # consecutive device errors before giving the device up
_SEQ = struct.Struct("!I")
_HEADER = struct.Struct("<BBHHHH")
IN6_ADDR_GEN_MODE_NONE = 1
_NO_IPV6_ADDRESSES = {
    "attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE]]}]]
}


class KernelSegmenter:
    """A private TAP device that segments TCP super-frames in the kernel."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.sock: socket.socket | None = None
        self.fallbacks = 0  # super-frames segmented in Python after all
        self.failures = 0  # device errors in a row
        try:
            ifr = fcntl.ioctl(
                self.fd, TUNSETIFF, struct.pack("16sH22x", NAME_PATTERN, IFF_TAP | IFF_NO_PI)
            )
            self.name = ifr[:16].split(b"\0", 1)[0].decode()
            with IPRoute() as ipr:
                index = ipr.link_lookup(ifname=self.name)[0]
                # No IPv6 link-local address, so the kernel sends nothing of its own
                # (DAD, router solicitations) to the device.
                try:
                    ipr.link("set", index=index, IFLA_AF_SPEC=_NO_IPV6_ADDRESSES)
                except NetlinkError:
                    pass  # no IPv6 in this kernel: nothing to silence
                ipr.link("set", index=index, state="up")
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            # Through the device's qdisc: PACKET_QDISC_BYPASS would drop a frame that
            # needs software segmentation. The qdisc runs in this call, so the
            # segments are there when it returns; were one deferred to a softirq, the
            # count check below sends the frame the Python way.
            self.sock.setblocking(False)
            self.sock.bind((self.name, 0))
        except Exception:
            self.close()
            raise

    def complete(self, header: bytes, frame: bytes) -> list[bytes]:
        """The frame(s) to put on a wire that knows nothing of offloads: TCP
        super-frames segmented by the kernel, everything else as ``complete_frame``
        does it."""
        if len(header) < _HEADER.size or self.sock is None:
            return complete_frame(header, frame)
        _flags, gso_type, _hdr_len, gso_size, _start, _offset = _HEADER.unpack_from(header)
        if gso_type & ~GSO_ECN not in (GSO_TCPV4, GSO_TCPV6) or gso_size <= 0:
            return complete_frame(header, frame)
        _l3, _ethertype, l4, start = tcp_offsets(frame)  # OffloadError if not TCP
        payload = len(frame) - start
        count = max(1, -(-payload // gso_size))
        segments = None
        if count <= MAX_SEGMENTS:  # more would overflow the device's queue
            lengths = [start + min(gso_size, payload - i * gso_size) for i in range(count)]
            segments = self._through_kernel(header, frame, l4, gso_size, lengths)
        if segments is None:
            self.fallbacks += 1
            return complete_frame(header, frame)
        return segments

    def _through_kernel(
        self, header: bytes, frame: bytes, l4: int, gso_size: int, lengths: list[int]
    ) -> list[bytes] | None:
        """The kernel's segments, if they are exactly the expected ones: as many, as
        long, with the expected sequence numbers, and nothing after them."""
        assert self.sock is not None
        try:
            self._discard()  # nothing of ours is ever left behind; anything else is noise
            self.sock.send(header[: vnet_header.SIZE] + frame)
            segments: list[bytes] = []
            addresses = frame[:12]
            seq = _SEQ.unpack_from(frame, l4 + 4)[0]
            while len(segments) < len(lengths):
                segment = os.read(self.fd, READ_SIZE)
                if segment[:12] != addresses:
                    continue  # not ours (the kernel's own traffic, were there any)
                i = len(segments)
                if (
                    len(segment) != lengths[i]
                    or _SEQ.unpack_from(segment, l4 + 4)[0] != (seq + i * gso_size) & 0xFFFFFFFF
                ):
                    return None
                segments.append(segment)
            if self._discard():
                return None  # more than expected: the kernel saw another frame
        except BlockingIOError:
            return None  # fewer than expected
        except OSError as exc:
            self._failed(exc)
            return None
        self.failures = 0
        return segments

    def _failed(self, exc: OSError) -> None:
        if exc.errno in (errno.EINVAL, errno.EMSGSIZE, errno.ENOBUFS):
            return  # this frame only (the kernel found its header inconsistent)
        self.failures += 1
        if self.failures == FAILURE_LIMIT:
            log.warning(
                "kernel segmentation on %s failed %d times in a row (%s): segmenting in Python",
                self.name,
                self.failures,
                exc.strerror,
            )
            self.close()

    def _discard(self) -> int:
        """Empty the device's queue; how many frames were in it."""
        count = 0
        while True:
            try:
                os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return count
            count += 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.fd >= 0:
            os.close(self.fd)  # not persistent: the device goes with its last fd
            self.fd = -1


_shared: KernelSegmenter | None = None
_unavailable = False


def shared_segmenter() -> KernelSegmenter | None:
    """The daemon's segmenter, created on first use; None where the kernel cannot
    provide one (then ``complete_frame`` segments in Python)."""
    global _shared, _unavailable
    if _shared is None and not _unavailable:
        try:
            _shared = KernelSegmenter()
        except (OSError, IndexError, NetlinkError) as exc:
            _unavailable = True
            log.info("segmenting TCP for tunnels in Python: no kernel segmenter (%s)", exc)
    return _shared


def close_shared() -> None:
    """Remove the daemon's segmenter and its device (the datapath is stopping)."""
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


def complete(header: bytes, frame: bytes) -> list[bytes]:
    """``complete_frame``, by the kernel where it can."""
    global _shared, _unavailable
    if header[1:2] in (b"", b"\x00"):  # not GSO: nothing for the kernel to do
        return complete_frame(header, frame)
    segmenter = shared_segmenter()
    if segmenter is None:
        return complete_frame(header, frame)
    if segmenter.sock is None:  # given up after repeated device errors
        _shared, _unavailable = None, True
        return complete_frame(header, frame)
    return segmenter.complete(header, frame)


__all__ = ["KernelSegmenter", "close_shared", "complete", "shared_segmenter"]
