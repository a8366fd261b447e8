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
kernel refuses, a segment count that does not add up) falls back to ``segment_tcp``,
so the result is the same either way.
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
from ovs_runtime.packet.offload import (
    GSO_ECN,
    GSO_TCPV4,
    GSO_TCPV6,
    OffloadError,
    complete_frame,
    tcp_payload_offset,
)

log = logging.getLogger(__name__)

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SOL_PACKET = 263
PACKET_VNET_HDR = 15
ETH_P_ALL = 0x0003
NAME_PATTERN = b"ovsr-gso%d"
READ_SIZE = 65536
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
        payload = len(frame) - tcp_payload_offset(frame)  # raises OffloadError if not TCP
        expected = max(1, -(-payload // gso_size))
        segments = self._through_kernel(header, frame, expected)
        if segments is None:
            self.fallbacks += 1
            return complete_frame(header, frame)
        return segments

    def _through_kernel(self, header: bytes, frame: bytes, expected: int) -> list[bytes] | None:
        assert self.sock is not None
        self._discard()  # nothing of ours is ever left behind; anything else is noise
        try:
            self.sock.send(header[: vnet_header.SIZE] + frame)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOBUFS, errno.EAGAIN, errno.EMSGSIZE):
                log.warning("kernel segmentation failed on %s: %s", self.name, exc)
            return None
        segments: list[bytes] = []
        addresses = frame[:12]
        while len(segments) < expected:
            try:
                segment = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                break
            if segment[:12] == addresses:
                segments.append(segment)
        if len(segments) != expected:
            return None
        return segments

    def _discard(self) -> None:
        while True:
            try:
                os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return

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


def complete(header: bytes, frame: bytes) -> list[bytes]:
    """``complete_frame``, by the kernel where it can."""
    segmenter = shared_segmenter()
    if segmenter is None:
        return complete_frame(header, frame)
    return segmenter.complete(header, frame)


__all__ = ["KernelSegmenter", "OffloadError", "complete", "shared_segmenter"]
