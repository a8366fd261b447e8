"""``internal`` and ``tap`` ports: TAP devices whose file descriptor the daemon holds.

- ``internal``: gives the host's own network stack a port on the bridge (the bridge's
  local port is the internal interface named like the bridge). It exists while the
  daemon holds it.
- ``tap``: a persistent TAP device for a VM (``TUNSETPERSIST``): it can be moved into
  another network namespace and keeps working, because the daemon holds its fd.

Both use ``IFF_VNET_HDR`` with checksum and TSO offloads enabled, so frames carry the
same virtio-net header as AF_PACKET ports and pass between them unchanged.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from ovs_runtime.datapath.vnet_header import SIZE as VNET_SIZE
from ovs_runtime.netdev import link
from ovs_runtime.netdev.provider import NetdevGone, NetdevStats, NetdevStatus, Packet

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOFFLOAD = 0x400454D0
TUNGETIFF = 0x800454D2
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
READ_SIZE = VNET_SIZE + 65536 + 18


class TapNetdev:
    def __init__(self, name: str, persistent: bool, inherited_fd: int | None = None) -> None:
        if len(name) > 15:
            raise NetdevGone(f"interface name {name!r} is longer than 15 characters")
        self.name = name
        self.persistent = persistent
        self.stats = NetdevStats()
        self.remote_namespace = False
        self.inherited = inherited_fd is not None
        if inherited_fd is not None and _tap_name(inherited_fd) is not None:
            # Still attached to its device, kept alive by systemd meanwhile: the same
            # port, even if the device was moved into a VM's namespace and renamed.
            os.set_blocking(inherited_fd, False)
            self.fd = inherited_fd
            return
        if inherited_fd is not None:
            os.close(inherited_fd)
            self.inherited = False
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise NetdevGone(f"cannot open /dev/net/tun for {name}: {exc.strerror}") from exc
        try:
            ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            if persistent:
                fcntl.ioctl(fd, TUNSETPERSIST, 1)
            link.set_up(name)
        except OSError as exc:
            os.close(fd)
            raise NetdevGone(f"cannot create TAP device {name}: {exc.strerror or exc}") from exc
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def receive(self, budget: int) -> list[Packet]:
        packets: list[Packet] = []
        for _ in range(budget):
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.EBADFD, errno.EIO):
                    raise NetdevGone(f"TAP device {self.name} failed: {exc.strerror}") from exc
                self.stats.rx_errors += 1
                break
            if len(data) <= VNET_SIZE:
                self.stats.rx_errors += 1
                continue
            self.stats.rx_packets += 1
            self.stats.rx_bytes += len(data) - VNET_SIZE
            packets.append((data[:VNET_SIZE], data[VNET_SIZE:]))
        return packets

    def send(self, vnet_header: bytes, frame: bytes) -> None:
        try:
            os.write(self.fd, vnet_header + frame)
        except BlockingIOError:
            self.stats.tx_dropped += 1
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # the TAP device is down: nobody to deliver to
                self.stats.tx_dropped += 1
                return
            self.stats.tx_errors += 1
            return
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(frame)

    def status(self) -> NetdevStatus:
        status = link.read_status(self.name)
        if status.ifindex is None:
            # Moved into another namespace: it still works through our fd.
            return NetdevStatus(link_state="up", admin_state="up", extra={"namespace": "elsewhere"})
        return status

    def unpersist(self) -> None:
        """The port was removed: let the device go when the last fd closes."""
        if self.persistent:
            try:
                fcntl.ioctl(self.fd, TUNSETPERSIST, 0)
            except OSError:
                pass

    def close(self) -> None:
        os.close(self.fd)


def _tap_name(fd: int) -> str | None:
    """The name of the TAP device an fd is attached to (TUNGETIFF), or None."""
    try:
        ifr = fcntl.ioctl(fd, TUNGETIFF, bytes(40))
    except OSError:
        return None
    return ifr[:16].split(b"\0", 1)[0].decode(errors="replace")
