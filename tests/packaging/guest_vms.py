"""Run inside a lab host: two namespace "VMs" on veths, ready to join a bridge.

    python3 guest_vms.py setup     # vm1 (198.51.100.1) and vm2 (198.51.100.2)
    python3 guest_vms.py teardown

Uses the host's own python3-pyroute2 (Debian 12's 0.7.2), like the package does.
"""

from __future__ import annotations

import sys

from pyroute2 import IPRoute, NetNS, netns


def setup() -> None:
    for n in (1, 2):
        ns = f"vm{n}"
        netns.create(ns)
        with IPRoute() as ipr:
            ipr.link("add", ifname=f"vm{n}p", kind="veth", peer=f"vm{n}t")
            ipr.link("set", index=ipr.link_lookup(ifname=f"vm{n}t")[0], net_ns_fd=ns)
            ipr.link("set", index=ipr.link_lookup(ifname=f"vm{n}p")[0], state="up")
        with NetNS(ns) as nsr:
            idx = nsr.link_lookup(ifname=f"vm{n}t")[0]
            nsr.link("set", index=idx, ifname="eth0")
            nsr.link("set", index=idx, state="up")
            nsr.addr("add", index=idx, address=f"198.51.100.{n}", prefixlen=24)


def teardown() -> None:
    for n in (1, 2):
        try:
            netns.remove(f"vm{n}")
        except OSError:
            pass


if __name__ == "__main__":
    {"setup": setup, "teardown": teardown}[sys.argv[1]]()
