"""Bond settings of a port with several interfaces, as OVS's Port columns define them.

A port with two or more interfaces is a bond. ovs-runtime runs OVS's default mode,
``active-backup``: one member carries all traffic, the others stand by, and when the
active member's carrier goes down another takes over.

- ``bond_mode``: ``active-backup`` (the default). ``balance-slb`` and ``balance-tcp`` are
  refused with a message rather than stored and ignored.
- ``bond_updelay`` / ``bond_downdelay``: milliseconds a member's carrier must stay up
  (down) before it is enabled (disabled); 0 by default.
- ``other_config:bond-primary``: the interface to make active whenever it is enabled.
- ``other_config:bond-detect-mode``: ``carrier`` (the default: a kernel link notification
  for a member makes the bond read its carrier at once, and it is read every 100 ms
  besides) or ``miimon``, with ``bond-miimon-interval`` (ms, default 200) as how often
  the carrier is read, and no notifications.
- ``lacp``: ``off`` (the default), ``active`` or ``passive`` (``datapath.lacp``), with
  ``other_config:lacp-time`` (``slow``, the default, or ``fast``),
  ``lacp-fallback-ab`` (``false``, the default, or ``true``), ``lacp-system-id`` (a
  MAC; the bridge's by default) and ``lacp-system-priority`` (1 to 65535; 65534 by
  default, as OVS gives a bond). ``bond_fake_iface``: only ``false``.

``check_bonds`` is the commit check; ``bond_from_row`` reads a stored port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovs_runtime.bridge.device_settings import DeviceSettingError, check_mac
from ovs_runtime.db.datum import as_map, scalar

DEFAULT_MODE = "active-backup"
DETECT_MODES = {"carrier", "miimon"}
CARRIER_POLL_MS = 100  # how often carrier detection reads each member's link state
DEFAULT_MIIMON_MS = 200
LACP_MODES = ("off", "active", "passive")
DEFAULT_LACP_SYSTEM_PRIORITY = 65534  # OVS's for a port with several interfaces


class BondConfigError(ValueError):
    pass


@dataclass(frozen=True)
class BondSpec:
    mode: str = DEFAULT_MODE
    updelay_ms: int = 0
    downdelay_ms: int = 0
    primary: str | None = None
    poll_ms: int = CARRIER_POLL_MS
    notified: bool = True  # carrier mode: link notifications wake it (miimon: polls only)
    lacp: str = "off"  # off, active or passive
    lacp_fast: bool = False
    lacp_fallback_ab: bool = False
    lacp_system_id: str | None = None  # a MAC; None: the bridge's
    lacp_system_priority: int = DEFAULT_LACP_SYSTEM_PRIORITY



def bond_from_row(row: Any, what: str) -> BondSpec:
    """The bond settings of a Port row; ``BondConfigError`` names the column and what
    would be accepted."""
    return bond_spec(
        what,
        mode=scalar(row["bond_mode"]),
        lacp=scalar(row["lacp"]),
        fake_iface=bool(scalar(row["bond_fake_iface"], False)),
        updelay=scalar(row["bond_updelay"], 0),
        downdelay=scalar(row["bond_downdelay"], 0),
        other_config=as_map(row["other_config"]),
    )


def bond_spec(
    what: str,
    mode: str | None = None,
    lacp: str | None = None,
    fake_iface: bool = False,
    updelay: int = 0,
    downdelay: int = 0,
    other_config: dict[str, str] | None = None,
) -> BondSpec:
    """The same from plain values (``ovsr apply`` checks a file with it)."""
    mode = mode or DEFAULT_MODE
    if mode != DEFAULT_MODE:
        raise BondConfigError(
            f"{what}: bond_mode={mode}: only active-backup bonds are implemented by "
            "ovs-runtime (balance-slb and balance-tcp are not); use bond_mode=active-backup"
        )
    lacp = lacp or "off"
    if lacp not in LACP_MODES:
        raise BondConfigError(f"{what}: lacp={lacp}: must be active, passive or off")
    if fake_iface:
        raise BondConfigError(
            f"{what}: bond_fake_iface=true: fake bond interfaces are not implemented; only false"
        )
    for column, value in (("bond_updelay", updelay), ("bond_downdelay", downdelay)):
        if not 0 <= value <= 3_600_000:
            raise BondConfigError(f"{what}: {column}={value}: must be 0 to 3600000 milliseconds")
    config = other_config or {}
    detect = config.get("bond-detect-mode", "carrier")
    if detect not in DETECT_MODES:
        raise BondConfigError(
            f"{what}: other_config:bond-detect-mode={detect}: must be carrier or miimon"
        )
    poll_ms = CARRIER_POLL_MS
    if detect == "miimon":
        text = config.get("bond-miimon-interval", str(DEFAULT_MIIMON_MS))
        try:
            poll_ms = int(text)
            if not 1 <= poll_ms <= 60_000:
                raise ValueError
        except ValueError:
            raise BondConfigError(
                f"{what}: other_config:bond-miimon-interval={text}: must be 1 to 60000 milliseconds"
            ) from None
    return BondSpec(
        DEFAULT_MODE,
        int(updelay),
        int(downdelay),
        config.get("bond-primary"),
        poll_ms,
        notified=detect == "carrier",
        lacp=lacp,
        **(_lacp_options(what, config) if lacp != "off" else {}),
    )


def _lacp_options(what: str, config: dict[str, str]) -> dict[str, Any]:
    """The LACP keys of a bond port's other_config, checked. With lacp=off they are
    ignored, as OVS ignores them, so a stray key never blocks a port's changes."""
    time_text = config.get("lacp-time", "slow")
    if time_text not in ("fast", "slow"):
        raise BondConfigError(f"{what}: other_config:lacp-time={time_text}: must be fast or slow")
    fallback = config.get("lacp-fallback-ab", "false")
    if fallback not in ("true", "false"):
        raise BondConfigError(
            f"{what}: other_config:lacp-fallback-ab={fallback}: must be true or false"
        )
    system_id = config.get("lacp-system-id")
    if system_id is not None:
        try:
            system_id = check_mac(system_id, "lacp-system-id")
        except DeviceSettingError:
            raise BondConfigError(
                f"{what}: other_config:lacp-system-id={system_id}: must be a non-zero Ethernet "
                "address, unicast, such as 02:00:00:00:00:01"
            ) from None
    priority_text = config.get("lacp-system-priority", str(DEFAULT_LACP_SYSTEM_PRIORITY))
    try:
        priority = int(priority_text)
        if not 1 <= priority <= 65535:
            raise ValueError
    except ValueError:
        raise BondConfigError(
            f"{what}: other_config:lacp-system-priority={priority_text}: must be 1 to 65535"
        ) from None
    return {
        "lacp_fast": time_text == "fast",
        "lacp_fallback_ab": fallback == "true",
        "lacp_system_id": system_id,
        "lacp_system_priority": priority,
    }


BOND_COLUMNS = ("bond_mode", "lacp", "bond_fake_iface", "bond_updelay", "bond_downdelay")


def check_bonds(view: Any) -> None:
    """Commit check: a change to a port's bond settings is refused whole, naming the
    port and what would be accepted."""
    from ovs_runtime.db.errors import OvsdbError

    for row_uuid, row in view.changed_rows("Port", (*BOND_COLUMNS, "other_config")):
        what = f"Port {scalar(row['name'])} ({row_uuid})"
        try:
            bond_from_row(row, what)
        except BondConfigError as exc:
            raise OvsdbError("constraint violation", str(exc)) from None
