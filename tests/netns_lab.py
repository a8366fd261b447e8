"""Throw-away network namespaces joined to a switch by veth pairs, built with pyroute2.

Each "host" is a namespace holding ``eth0``; the other end of its veth stays in the
test's namespace, named ``<prefix><n>``, ready to be added to a bridge. ``cleanup``
removes every namespace and link it made, and is safe to call after a failure or twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2 import IPRoute, NetNS, netns

SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
ETH_P_ALL = 0x0003


@dataclass
class Host:
    ns: str
    switch_port: str  # the veth end in our namespace
    ip: str | None


@contextlib.contextmanager
def in_namespace(ns: str) -> Iterator[None]:
    """Run the block in network namespace ``ns`` (sockets made here stay in it)."""
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


class NetnsLab:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # keep short: interface names are at most 15 characters
        self.hosts: dict[str, Host] = {}
        self.links: list[str] = []
        self.moved: list[tuple[str, str]] = []  # (host, device) moved into a host's namespace

    def add_host(
        self, name: str, ip: str | None = None, prefixlen: int = 24, disable_ipv6: bool = True
    ) -> Host:
        ns = f"{self.prefix}{name}"
        port = f"{self.prefix}{name}"
        tmp = f"{self.prefix}{name}t"
        netns.create(ns)
        self.hosts[name] = Host(ns, port, ip)
        with IPRoute() as ipr:
            ipr.link("add", ifname=port, kind="veth", peer=tmp)
            self.links.append(port)
            peer = ipr.link_lookup(ifname=tmp)[0]
            ipr.link("set", index=peer, net_ns_fd=ns)
            ipr.link("set", index=ipr.link_lookup(ifname=port)[0], state="up")
        if disable_ipv6:
            self.sysctl(ns, "net/ipv6/conf/all/disable_ipv6", "1")
            self.sysctl(ns, "net/ipv6/conf/default/disable_ipv6", "1")
        with NetNS(ns) as nsr:
            idx = nsr.link_lookup(ifname=tmp)[0]
            nsr.link("set", index=idx, ifname="eth0")
            nsr.link("set", index=idx, state="up")
            lo = nsr.link_lookup(ifname="lo")[0]
            nsr.link("set", index=lo, state="up")
            if ip:
                nsr.addr("add", index=idx, address=ip, prefixlen=prefixlen)
        return self.hosts[name]

    def add_namespace(self, name: str) -> str:
        """A bare namespace (no veth), cleaned up like the hosts."""
        ns = f"{self.prefix}{name}"
        netns.create(ns)
        self.hosts[name] = Host(ns, "", None)
        return ns

    def wire(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        """A veth pair between two namespaces: ``name_a`` in ``ns_a``, ``name_b`` in
        ``ns_b``, both up."""
        tmp_a, tmp_b = f"{self.prefix}w{len(self.links)}a", f"{self.prefix}w{len(self.links)}b"
        with IPRoute() as ipr:
            ipr.link("add", ifname=tmp_a, kind="veth", peer=tmp_b)
            self.links.append(tmp_a)
            for tmp, ns in ((tmp_a, ns_a), (tmp_b, ns_b)):
                ipr.link("set", index=ipr.link_lookup(ifname=tmp)[0], net_ns_fd=ns)
        for tmp, ns, name in ((tmp_a, ns_a, name_a), (tmp_b, ns_b, name_b)):
            with NetNS(ns) as nsr:
                idx = nsr.link_lookup(ifname=tmp)[0]
                nsr.link("set", index=idx, ifname=name, state="up")

    def move_link(self, name: str, from_ns: str, to_ns: str) -> None:
        """Move device ``name`` from one namespace to another, and bring it up."""
        with NetNS(from_ns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname=name)[0], net_ns_fd=to_ns)
        with NetNS(to_ns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname=name)[0], state="up")

    def forget_neighbours(self, name: str) -> None:
        """Flush a host's ARP cache (a re-created peer has a new MAC)."""
        with NetNS(self.hosts[name].ns) as nsr:
            idx = nsr.link_lookup(ifname="eth0")[0]
            for entry in nsr.get_neighbours(ifindex=idx):
                nsr.neigh("del", ifindex=idx, dst=entry.get_attr("NDA_DST"))

    @staticmethod
    def sysctl(ns: str, key: str, value: str) -> None:
        with in_namespace(ns), open(f"/proc/sys/{key}", "w") as f:
            f.write(value)

    def run(
        self, name: str, *argv: str, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        ns = self.hosts[name].ns
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{ns}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def popen(self, name: str, *argv: str) -> subprocess.Popen[str]:
        ns = self.hosts[name].ns
        return subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ping(self, src: str, dst_ip: str, count: int = 3, timeout: float = 1.0) -> bool:
        proc = self.run(
            src, "ping", "-c", str(count), "-i", "0.2", "-W", str(timeout), dst_ip, timeout=30
        )
        return proc.returncode == 0

    def raw_socket(self, name: str) -> RawPort:
        return RawPort(self.hosts[name].ns)

    def delete_link(self, port: str) -> None:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=port)
            if found:
                ipr.link("del", index=found[0])

    def moved_into(self, host: str, device: str) -> None:
        """``device`` now lives in ``host``'s namespace: delete it there at cleanup
        (a persistent TAP would otherwise come back to ours when the namespace goes)."""
        self.moved.append((host, device))

    def cleanup(self) -> None:
        for host_name, device in self.moved:
            host = self.hosts.get(host_name)
            with contextlib.suppress(Exception), NetNS(host.ns if host else "") as nsr:
                found = nsr.link_lookup(ifname=device)
                if found:
                    nsr.link("del", index=found[0])
        self.moved.clear()
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                netns.remove(host.ns)
        for port in self.links:
            with contextlib.suppress(Exception):
                self.delete_link(port)
        self.hosts.clear()


class RawPort:
    """An AF_PACKET socket on ``ifname`` inside a namespace: sends exact frames and
    captures what arrives, with VLAN tags the kernel moved into metadata put back."""

    def __init__(self, ns: str, ifname: str = "eth0") -> None:
        with in_namespace(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.sock.bind((ifname, ETH_P_ALL))
        self.sock.setblocking(False)

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def drain(self, settle: float = 0.15) -> list[bytes]:
        time.sleep(settle)
        frames: list[bytes] = []
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(20))
            except BlockingIOError:
                return frames
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            for level, kind, cdata in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, _l, _s, _m, _n, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
                    if status & TP_STATUS_VLAN_VALID:
                        data = data[:12] + struct.pack("!HH", tpid or 0x8100, tci) + data[12:]
            frames.append(data)

    def close(self) -> None:
        self.sock.close()


def unique_prefix() -> str:
    return f"t{os.getpid() % 10000}"
