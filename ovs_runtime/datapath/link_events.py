"""Link notifications from the kernel, so a bond sees a lost carrier at once.

A bond in ``carrier`` detection mode (OVS's default) reacts to the kernel's link
notifications, as Open vSwitch does, rather than to its 100 ms poll alone: the datapath
loop watches this socket with its other fds, and a notification for a member's device
makes that bond read its members' carrier in the same loop iteration. The poll stays
as a backstop (a lost notification, a full socket buffer). ``miimon`` mode polls
only, as in OVS.

The socket is opened and subscribed with pyroute2, but read here: it runs in the
datapath thread, under its lock, so reads never block (an epoll event can be stale) and
only the device name is taken out of each message (pyroute2 decodes a whole link
message, about 0.1 ms each: a host restarting a thousand VMs sends thousands).
"""

from __future__ import annotations

import logging
import struct
from typing import Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_LINK

log = logging.getLogger(__name__)

RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME = 3
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
IFINFOMSG_SIZE = 16  # family, pad, type, index, flags, change
ATTR_HEADER = struct.Struct("=HH")  # length, type
MAX_READS = 64  # datagrams per call; the rest wait for the next loop iteration


def _align(length: int) -> int:
    return (length + 3) & ~3


def link_names(datagram: bytes) -> set[str]:
    """Device names in the RTM_NEWLINK/RTM_DELLINK messages of one datagram; anything
    malformed ends the walk (what was found so far is kept)."""
    names: set[str] = set()
    offset = 0
    while offset + NLMSG_HEADER.size <= len(datagram):
        length, kind, _flags, _seq, _port = NLMSG_HEADER.unpack_from(datagram, offset)
        if length < NLMSG_HEADER.size or offset + length > len(datagram):
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            name = _ifname(datagram, offset + NLMSG_HEADER.size + IFINFOMSG_SIZE, offset + length)
            if name:
                names.add(name)
        offset += _align(length)
    return names


def _ifname(data: bytes, start: int, end: int) -> str | None:
    while start + ATTR_HEADER.size <= end:
        length, kind = ATTR_HEADER.unpack_from(data, start)
        if length < ATTR_HEADER.size or start + length > end:
            return None
        if kind & 0x3FFF == IFLA_IFNAME:
            raw = data[start + ATTR_HEADER.size : start + length].split(b"\0", 1)[0]
            return raw.decode("utf-8", "replace")
        start += _align(length)
    return None


class LinkEventSource(Protocol):
    """What the datapath loop needs from a source of link notifications."""

    def fileno(self) -> int: ...

    def changed(self) -> set[str] | None: ...

    def close(self) -> None: ...


class LinkEvents:
    """A non-blocking rtnetlink socket subscribed to link changes in the daemon's
    namespace."""

    def __init__(self) -> None:
        self.ipr = IPRoute()
        try:
            self.ipr.bind(groups=RTMGRP_LINK)
            self.ipr.setblocking(False)
            self.fd = int(self.ipr.fileno())
        except BaseException:
            self.ipr.close()
            raise

    def fileno(self) -> int:
        return self.fd

    def changed(self) -> set[str] | None:
        """Names of the devices in the messages waiting (none if nothing is, as after a
        stale event); None when some were lost (the receive buffer overflowed), so that
        the caller looks at everything."""
        names: set[str] = set()
        for _ in range(MAX_READS):
            try:
                datagram = self.ipr.recv(65536)
            except BlockingIOError:
                break
            except OSError as exc:  # ENOBUFS: notifications were dropped
                log.debug("link notifications lost: %s", exc)
                return None
            names |= link_names(datagram)
        return names

    def close(self) -> None:
        self.ipr.close()
