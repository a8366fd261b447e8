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
- ``lacp``: only ``off`` (or empty); ``bond_fake_iface``: only ``false``.

``check_bonds`` is the commit check; ``bond_from_row`` reads a stored port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovs_runtime.db.datum import as_map, scalar

DEFAULT_MODE = "active-backup"
DETECT_MODES = {"carrier", "miimon"}
CARRIER_POLL_MS = 100  # how often carrier detection reads each member's link state
DEFAULT_MIIMON_MS = 200


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
    if lacp != "off":
        raise BondConfigError(
            f"{what}: lacp={lacp}: LACP is not implemented by ovs-runtime; only lacp=off "
            "(an active-backup bond needs no cooperation from the upstream switch)"
        )
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
    )


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
