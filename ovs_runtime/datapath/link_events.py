"""Link notifications from the kernel, so a bond sees a lost carrier at once.

A bond in ``carrier`` detection mode (OVS's default) reacts to the kernel's link
notifications, as Open vSwitch does, rather than to its 100 ms poll alone: the datapath
loop watches this socket with its other fds, and a notification for a member's device
makes that bond read its members' carrier in the same loop iteration. The poll stays
as a backstop (a lost notification, a full socket buffer). ``miimon`` mode polls
only, at its interval, as in OVS.
"""

from __future__ import annotations

import logging

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_LINK

log = logging.getLogger(__name__)


class LinkEvents:
    """An rtnetlink socket subscribed to link changes in the daemon's namespace."""

    def __init__(self) -> None:
        self.ipr = IPRoute()
        try:
            self.ipr.bind(groups=RTMGRP_LINK)
        except BaseException:
            self.ipr.close()
            raise

    def fileno(self) -> int:
        return int(self.ipr.fileno())

    def changed(self) -> set[str] | None:
        """Names of the devices in the messages waiting (call when the socket is
        readable); None when some were lost (the receive buffer overflowed), so that
        the caller looks at everything."""
        try:
            messages = self.ipr.get()
        except OSError as exc:  # ENOBUFS: notifications were dropped
            log.debug("link notifications lost: %s", exc)
            return None
        names = set()
        for message in messages:
            name = message.get_attr("IFLA_IFNAME")
            if name:
                names.add(str(name))
        return names

    def close(self) -> None:
        self.ipr.close()
