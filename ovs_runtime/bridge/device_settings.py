"""Settings the daemon writes onto kernel devices, as Open vSwitch does:

- ``Interface.mtu_request``: the device's MTU, for ports with a device (system,
  internal, tap). The MTU in effect is reported back in ``Interface.mtu``. As in OVS,
  an internal port without one is lowered to the smallest MTU of the bridge's other
  ports (never raised, so a lower MTU set by hand stays); clearing it on another port
  leaves the device as it is.
- ``Interface.mac``: the MAC address of an internal or tap port (devices the daemon
  made). OVS ignores it on other ports and on a bridge's own port; here it is refused
  there, since the daemon would not set it.
- ``Bridge.other_config:hwaddr``: the MAC address of the bridge's own (local) port.

A device that is deleted and created again (a VM's tap re-created on reboot, a veth
re-plugged) loses what was set on it; the reconciler notices the new ifindex and sets
it again. ``check_device_settings`` is a commit check: a malformed or multicast MAC, an
MTU outside 68-65535, or a setting on a port type without a device fails the whole
transaction, naming the row. Only rows whose settings the transaction changes are
checked, so a row written before these checks existed never blocks other changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ovs_runtime.db.datum import as_map, scalar

DEVICE_TYPES = ("", "system", "internal", "tap")
OWN_DEVICE_TYPES = ("internal", "tap")  # devices the daemon creates
MIN_MTU, MAX_MTU = 68, 65535
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class DeviceSettingError(ValueError):
    pass


@dataclass(frozen=True)
class DeviceSettings:
    mtu: int | None = None
    mac: str | None = None
    # The MTU is the bridge's smallest (an internal port without mtu_request): as OVS,
    # only lower the device to it, never raise it.
    mtu_is_ceiling: bool = False


def check_mac(text: str, what: str) -> str:
    """A unicast, non-zero MAC address in the usual form, lower-cased."""
    if not _MAC.match(text):
        raise DeviceSettingError(f"{what}: {text!r} is not a MAC address (like 02:00:00:00:00:01)")
    if int(text[:2], 16) & 1 or text.replace(":", "").strip("0") == "":
        raise DeviceSettingError(f"{what}: {text} is a multicast or all-zero address")
    return text.lower()


def check_mtu(value: int, what: str) -> int:
    if not MIN_MTU <= value <= MAX_MTU:
        raise DeviceSettingError(f"{what}: {value} is outside {MIN_MTU}-{MAX_MTU}")
    return value


def interface_settings(row: Any, what: str) -> DeviceSettings:
    """What an Interface row asks of its device (raises ``DeviceSettingError``)."""
    kind = scalar(row["type"], "")
    mtu, mac = scalar(row["mtu_request"]), scalar(row["mac"])
    if mtu is not None:
        if kind not in DEVICE_TYPES:
            raise DeviceSettingError(
                f"{what}: mtu_request needs a port with a device (system, internal or tap); "
                f"type {kind!r} has none"
            )
        check_mtu(mtu, f"{what} mtu_request")
    if mac is not None:
        if kind not in OWN_DEVICE_TYPES:
            raise DeviceSettingError(
                f"{what}: mac is set only on internal and tap ports; set a system "
                "device's address with the host's network configuration"
            )
        mac = check_mac(mac, f"{what} mac")
    return DeviceSettings(mtu, mac)


def bridge_hwaddr(row: Any, what: str) -> str | None:
    text = as_map(row["other_config"]).get("hwaddr")
    return None if text is None else check_mac(text, f"{what} other_config:hwaddr")


def check_device_settings(view: Any) -> None:
    from ovs_runtime.db.errors import OvsdbError

    bridges: set[str] | None = None
    new_bridges = {scalar(b["name"]) for _u, b in view.changed_rows("Bridge", ("name",))}
    try:
        changed = dict(view.changed_rows("Interface", ("type", "mtu_request", "mac")))
        if new_bridges:  # a new bridge named like an interface makes it a local port
            changed.update(
                (u, r) for u, r in view.rows("Interface") if scalar(r["name"]) in new_bridges
            )
        for row_uuid, row in changed.items():
            name = scalar(row["name"])
            settings = interface_settings(row, f"Interface {name} ({row_uuid})")
            if settings.mac is not None:
                if bridges is None:
                    bridges = {scalar(b["name"]) for _u, b in view.rows("Bridge")}
                if name in bridges:
                    raise DeviceSettingError(
                        f"Interface {name} ({row_uuid}) is bridge {name}'s own port: set its "
                        f"address with Bridge {name} other_config:hwaddr, as in OVS"
                    )
        for row_uuid, row in view.changed_rows("Bridge", ("other_config",)):
            bridge_hwaddr(row, f"Bridge {scalar(row['name'])} ({row_uuid})")
    except DeviceSettingError as exc:
        raise OvsdbError("constraint violation", str(exc)) from None


def apply(device: str, settings: DeviceSettings) -> None:
    """Set the device's MTU and address (only what differs); raises OSError naming what
    the kernel refused."""
    with IPRoute() as ipr:
        try:
            found = ipr.link_lookup(ifname=device)
            if not found:
                raise OSError(f"no network device named {device}")
            (link,) = ipr.get_links(found[0])
        except NetlinkError as exc:  # (the device went away meanwhile)
            raise OSError(f"cannot read device {device}: {exc}") from exc
        current_mtu = link.get_attr("IFLA_MTU")
        lower_only = settings.mtu_is_ceiling
        if settings.mtu is not None and (
            current_mtu > settings.mtu if lower_only else current_mtu != settings.mtu
        ):
            what = "the bridge's smallest MTU" if lower_only else "mtu_request"
            try:
                ipr.link("set", index=found[0], mtu=settings.mtu)
            except (NetlinkError, OSError) as exc:
                raise OSError(f"{what} {settings.mtu}: the device refused it ({exc})") from exc
        current = str(link.get_attr("IFLA_ADDRESS") or "").lower()
        if settings.mac is not None and current != settings.mac:
            try:
                ipr.link("set", index=found[0], address=settings.mac)
            except (NetlinkError, OSError) as exc:
                raise OSError(f"mac {settings.mac}: the device refused it ({exc})") from exc
