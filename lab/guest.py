"""Run on a lab hypervisor (``python3 - NAME PORT ADDRESS MTU [MAC] < guest.py``): turn the
TAP port PORT into the NIC of a "VM", a network namespace NAME with ADDRESS on eth0 (and
MAC, to play a VM that migrated here with its own MAC address). Guests are IPv4-only, so
they send nothing unasked.

``python3 - address NAME CIDR add|del < guest.py`` adds or removes an extra address.
``python3 - pause NAME < guest.py`` plays a paused VM (as before the last step of a live
migration): its NIC stays plugged, but it no longer answers or sends anything.

Idempotent: an existing namespace is reused. Uses only the host's own Python and
pyroute2 (the packages ovs-runtime depends on), so it needs nothing installed.
"""

from __future__ import annotations

import sys
import time

from pyroute2 import IPRoute, NetNS, netns


def _in_namespace(name: str, path: str, value: str) -> None:
    netns.pushns(name)
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(value)
    finally:
        netns.popns()


def pause_guest(name: str) -> None:
    with NetNS(name) as nsr:
        index = nsr.link_lookup(ifname="eth0")[0]
        for addr in nsr.get_addr(index=index):
            nsr.addr(
                "del",
                index=index,
                address=addr.get_attr("IFA_ADDRESS"),
                prefixlen=addr["prefixlen"],
            )
        nsr.link("set", index=index, arp=False)


def guest_address(name: str, cidr: str, action: str) -> None:
    ip, prefixlen = cidr.split("/")
    with NetNS(name) as nsr:
        index = nsr.link_lookup(ifname="eth0")[0]
        nsr.addr(action, index=index, address=ip, prefixlen=int(prefixlen))


def make_guest(name: str, port: str, address: str, mtu: int, mac: str | None = None) -> None:
    if name not in netns.listnetns():
        netns.create(name)
        _in_namespace(name, "/proc/sys/net/ipv6/conf/all/disable_ipv6", "1")
        _in_namespace(name, "/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")
    deadline = time.monotonic() + 10
    with IPRoute() as ipr:
        while not ipr.link_lookup(ifname=port) and time.monotonic() < deadline:
            time.sleep(0.1)  # the daemon creates the TAP device
        found = ipr.link_lookup(ifname=port)
        if found:
            ipr.link("set", index=found[0], net_ns_fd=name)
    with NetNS(name) as nsr:
        found = nsr.link_lookup(ifname=port) or nsr.link_lookup(ifname="eth0")
        if not found:
            raise SystemExit(f"no TAP device {port} on this host or in {name}")
        index = found[0]
        if mac:
            nsr.link("set", index=index, state="down")
            nsr.link("set", index=index, address=mac)
        nsr.link("set", index=index, ifname="eth0", mtu=mtu, state="up")
        nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
        ip, prefixlen = address.split("/")
        if not any(a.get_attr("IFA_ADDRESS") == ip for a in nsr.get_addr(index=index)):
            nsr.addr("add", index=index, address=ip, prefixlen=int(prefixlen))


if __name__ == "__main__" and sys.argv[1] == "pause":
    pause_guest(sys.argv[2])
elif __name__ == "__main__" and sys.argv[1] == "address":
    guest_address(sys.argv[2], sys.argv[3], sys.argv[4])
elif __name__ == "__main__":
    mac = sys.argv[5] if len(sys.argv) > 5 else None
    make_guest(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), mac)
