"""Moving an uplink's IP addresses and routes to its bridge's local port, and back.

When the device that carries a host's management address is put into a bridge, the
address belongs on the bridge's internal port (named like the bridge), as on any OVS
host. A port asks for this with ``other_config:move-addresses=true``. The move happens in
the same reconciliation pass that attaches the port, so one ``ovsr apply`` (guarded by
``--confirm-timeout``) does both, and a rollback that removes the port moves everything
back.

What moves: global IPv4/IPv6 addresses of the uplink, and the main-table routes whose
output device is the uplink (not the kernel's own prefix routes, which follow the
addresses). The bridge port takes the uplink's MAC address, so peers' ARP caches and
DHCP reservations stay valid; the uplink takes the bridge port's old MAC and stops
answering ARP (``IFF_NOARP``). An AF_PACKET datapath cannot keep frames from the uplink's
own IP stack, so this swap is what makes every frame reach the host once, through the
bridge: frames for the host's MAC are "other host" frames on the uplink, and its stack
drops them. Moving back restores both MACs and ARP. For a bond, the addresses of its first
interface (by name) move, and the other interfaces stop answering ARP too.

A record of what moved is kept under the run directory, so a daemon restart (which may
re-create the internal port) puts the addresses back where they were.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger(__name__)

MOVE_KEY = "move-addresses"
RT_TABLE_MAIN = 254
RTPROT_KERNEL = 2
RT_SCOPE_UNIVERSE = 0
EEXIST = 17
ESRCH = 3
EADDRNOTAVAIL = 99
IFF_NOARP = 0x80


@dataclass
class Address:
    family: int
    address: str
    prefixlen: int


@dataclass
class Route:
    family: int
    dst: str | None
    dst_len: int
    gateway: str | None
    priority: int | None


@dataclass
class Handover:
    uplink: str
    bridge: str
    addresses: list[Address] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    uplink_mac: str | None = None
    bridge_mac: str | None = None
    silent: bool = False  # another member of a bond: only stopped answering ARP

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Handover:
        data = json.loads(text)
        return cls(
            uplink=data["uplink"],
            bridge=data["bridge"],
            addresses=[Address(**a) for a in data["addresses"]],
            routes=[Route(**r) for r in data["routes"]],
            uplink_mac=data.get("uplink_mac"),
            bridge_mac=data.get("bridge_mac"),
            silent=bool(data.get("silent", False)),
        )


def wants_move(other_config: dict[str, str]) -> bool:
    return other_config.get(MOVE_KEY, "false").lower() == "true"


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def read_addresses(ipr: IPRoute, index: int) -> list[Address]:
    found = []
    for msg in ipr.get_addr(index=index):
        if msg["scope"] != RT_SCOPE_UNIVERSE:
            continue  # link-local (fe80::) and host-scope addresses stay put
        found.append(Address(msg["family"], msg.get_attr("IFA_ADDRESS"), msg["prefixlen"]))
    return found


def read_routes(ipr: IPRoute, index: int) -> list[Route]:
    found = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.get_routes(family=family, table=RT_TABLE_MAIN):
            if msg.get_attr("RTA_OIF") != index or msg["proto"] == RTPROT_KERNEL:
                continue
            dst = msg.get_attr("RTA_DST")
            if family == socket.AF_INET6 and dst is not None and dst.startswith("fe80"):
                continue
            found.append(
                Route(
                    family,
                    dst,
                    msg["dst_len"],
                    msg.get_attr("RTA_GATEWAY"),
                    msg.get_attr("RTA_PRIORITY"),
                )
            )
    return found


def _tolerate(*codes: int) -> Any:
    @contextlib.contextmanager
    def guard() -> Any:
        try:
            yield
        except NetlinkError as exc:
            if exc.code not in codes:
                raise

    return guard()


def _add_addresses(ipr: IPRoute, index: int, addresses: list[Address]) -> None:
    for a in addresses:
        with _tolerate(EEXIST):
            ipr.addr("add", index=index, address=a.address, prefixlen=a.prefixlen, family=a.family)


def _del_addresses(ipr: IPRoute, index: int, addresses: list[Address]) -> None:
    for a in addresses:
        with _tolerate(EADDRNOTAVAIL, ESRCH):
            ipr.addr("del", index=index, address=a.address, prefixlen=a.prefixlen, family=a.family)


def _add_routes(ipr: IPRoute, index: int, routes: list[Route]) -> None:
    for r in routes:
        spec: dict[str, Any] = {"family": r.family, "oif": index, "dst_len": r.dst_len}
        if r.dst is not None:
            spec["dst"] = r.dst
        if r.gateway is not None:
            spec["gateway"] = r.gateway
        if r.priority is not None:
            spec["priority"] = r.priority
        try:
            ipr.route("replace", **spec)
        except NetlinkError as exc:
            log.warning(
                "route %s/%s via %s not restored: %s", r.dst or "default", r.dst_len, r.gateway, exc
            )


class AddressHandover:
    """Keeps a record per uplink under ``state_dir`` and moves addresses both ways."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def _path(self, uplink: str) -> Path:
        return self.state_dir / f"{uplink}.json"

    def active(self) -> dict[str, Handover]:
        found = {}
        if self.state_dir.is_dir():
            for path in sorted(self.state_dir.glob("*.json")):
                try:
                    record = Handover.from_json(path.read_text())
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring unreadable address record %s: %s", path, exc)
                    continue
                found[record.uplink] = record
        return found

    def _save(self, record: Handover) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._path(record.uplink).with_suffix(".tmp")
        tmp.write_text(record.to_json())
        os.replace(tmp, self._path(record.uplink))

    def move_to_bridge(self, uplink: str, bridge: str) -> str | None:
        """Move the uplink's addresses and routes to the bridge port; returns a log line
        when something moved. Addresses recorded earlier are re-added to the bridge port
        if it lost them (it was re-created)."""
        record = self.active().get(uplink) or Handover(uplink, bridge)
        record.bridge = bridge
        with IPRoute() as ipr:
            src, dst = _index(ipr, uplink), _index(ipr, bridge)
            if src is None or dst is None:
                return None
            addresses = read_addresses(ipr, src)
            routes = read_routes(ipr, src)
            if record.uplink_mac is None or record.bridge_mac is None:
                record.uplink_mac = _mac(ipr, src)
                record.bridge_mac = _mac(ipr, dst)
            ipr.link("set", index=src, address=record.bridge_mac, flags=IFF_NOARP, change=IFF_NOARP)
            ipr.link("set", index=dst, address=record.uplink_mac, state="up")
            _add_addresses(ipr, dst, record.addresses + addresses)
            _del_addresses(ipr, src, addresses)
            _add_routes(ipr, dst, record.routes + routes)
        for a in addresses:
            if a not in record.addresses:
                record.addresses.append(a)
        for r in routes:
            if r not in record.routes:
                record.routes.append(r)
        self._save(record)
        if not addresses and not routes:
            return None
        return f"moved {_describe(addresses)} and {len(routes)} route(s) from {uplink} to {bridge}"

    def silence(self, member: str, bridge: str) -> str | None:
        """Another interface of a bond whose first interface's addresses moved: it stops
        answering ARP for them (the host answers through the bridge port only)."""
        with IPRoute() as ipr:
            index = _index(ipr, member)
            if index is None:
                return None
            ipr.link("set", index=index, flags=IFF_NOARP, change=IFF_NOARP)
        known = self.active().get(member)
        if known is not None and known.silent and known.bridge == bridge:
            return None
        self._save(Handover(member, bridge, silent=True))
        return f"{member} (in a bond with the uplink moved to {bridge}) stops answering ARP"

    def move_back(self, uplink: str) -> str | None:
        """Return what was moved to the uplink; forget the record."""
        record = self.active().get(uplink)
        if record is None:
            return None
        if record.silent:
            with IPRoute() as ipr:
                index = _index(ipr, uplink)
                if index is not None:
                    ipr.link("set", index=index, flags=0, change=IFF_NOARP)
            self._path(uplink).unlink(missing_ok=True)
            return f"{uplink} answers ARP again"
        with IPRoute() as ipr:
            src, dst = _index(ipr, record.bridge), _index(ipr, uplink)
            if src is not None and record.bridge_mac:
                ipr.link("set", index=src, address=record.bridge_mac)
            if dst is not None and record.uplink_mac:
                ipr.link("set", index=dst, address=record.uplink_mac, flags=0, change=IFF_NOARP)
            if dst is not None:
                _add_addresses(ipr, dst, record.addresses)
                if src is not None:
                    _del_addresses(ipr, src, record.addresses)
                _add_routes(ipr, dst, record.routes)
        self._path(uplink).unlink(missing_ok=True)
        where = uplink if dst is not None else f"{uplink} (gone: addresses dropped)"
        return f"moved {_describe(record.addresses)} back from {record.bridge} to {where}"


def _mac(ipr: IPRoute, index: int) -> str:
    return str(ipr.get_links(index)[0].get_attr("IFLA_ADDRESS"))


def _describe(addresses: list[Address]) -> str:
    if not addresses:
        return "no addresses"
    return ", ".join(f"{a.address}/{a.prefixlen}" for a in addresses)
