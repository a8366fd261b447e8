"""Netlink operations on links, through pyroute2 (never by running ``ip``)."""

from __future__ import annotations

import os

from pyroute2 import IPRoute

from ovs_runtime.netdev.provider import NetdevStatus


def set_up(name: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise OSError(f"no network device named {name}")
        ipr.link("set", index=found[0], state="up")


def exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _read(name: str, attr: str) -> str | None:
    try:
        with open(f"/sys/class/net/{name}/{attr}", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def read_status(name: str) -> NetdevStatus:
    """Link status from sysfs: cheap enough to poll every second for every port."""
    flags = _read(name, "flags")
    operstate = _read(name, "operstate")
    mtu = _read(name, "mtu")
    ifindex = _read(name, "ifindex")
    admin_up = flags is not None and bool(int(flags, 16) & 1)
    link_up = admin_up and operstate in ("up", "unknown")
    return NetdevStatus(
        link_state="up" if link_up else "down",
        admin_state="up" if admin_up else "down",
        mtu=int(mtu) if mtu else None,
        ifindex=int(ifindex) if ifindex else None,
        mac=_read(name, "address"),
    )


def ifindex(name: str) -> int | None:
    """The device's interface index, None if there is no such device (from sysfs)."""
    text = _read(name, "ifindex")
    return int(text) if text else None


def mtu(name: str) -> int | None:
    """The device's MTU, None if there is no such device (from sysfs)."""
    text = _read(name, "mtu")
    return int(text) if text else None


def first_ipv4(name: str) -> str | None:
    """The first IPv4 address on a device (sFlow's agent address), via netlink."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return None
        for msg in ipr.get_addr(family=2, index=found[0]):
            address = msg.get_attr("IFA_ADDRESS")
            if address:
                return str(address)
    return None
