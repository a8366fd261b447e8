"""Mirror rows checked at commit time, so no client can leave a mirror that cannot work.

A mirror a transaction creates or changes must name exactly one destination:
``output_port`` (a port of the mirror's own bridge) or ``output_vlan``. The error names
the mirror and what is accepted, and the whole transaction fails. A mirror whose output
port is deleted later is not an error: it stops mirroring until it gets an output again,
as in OVS.
"""

from __future__ import annotations

import uuid
from typing import Any

from ovs_runtime.db.datum import as_list, scalar

# What a mirror selects and where it sends (``ovsr apply`` declares these too).
SETTINGS = (
    "select_all",
    "select_src_port",
    "select_dst_port",
    "select_vlan",
    "output_port",
    "output_vlan",
)
PORT_SETTINGS = ("select_src_port", "select_dst_port", "output_port")
CONFIG_COLUMNS = ("name", *SETTINGS)


def _changed_by_user(view: Any, row_uuid: uuid.UUID, new: Any) -> bool:
    old = view.committed["Mirror"].get(row_uuid)
    if old is None:
        return True
    changed = [c for c in CONFIG_COLUMNS if old[c].values != new[c].values]
    if changed == ["output_port"] and not new["output_port"].values:
        # The output port went away (a weak reference cleared by its deletion).
        gone = as_list(old["output_port"])
        return any(view.exists("Port", u) for u in gone)
    return bool(changed)


def check_mirrors(view: Any) -> None:
    from ovs_runtime.db.errors import OvsdbError

    if not view.changes.get("Mirror"):
        return
    owners: dict[uuid.UUID, tuple[str, set[uuid.UUID]]] = {}
    for _bridge_uuid, bridge in view.rows("Bridge"):
        ports = set(as_list(bridge["ports"]))
        for mirror_uuid in as_list(bridge["mirrors"]):
            owners[mirror_uuid] = (scalar(bridge["name"]), ports)
    for row_uuid, row in view.changes["Mirror"].items():
        if row is None or not _changed_by_user(view, row_uuid, row):
            continue
        name = scalar(row["name"]) or str(row_uuid)
        outputs = as_list(row["output_port"])
        vlans = as_list(row["output_vlan"])
        if bool(outputs) == bool(vlans):
            raise OvsdbError(
                "constraint violation",
                f"mirror {name}: give exactly one of output_port (SPAN, a port of the "
                "bridge) or output_vlan (RSPAN, 1-4094)",
            )
        owner = owners.get(row_uuid)
        if outputs and owner is not None and outputs[0] not in owner[1]:
            raise OvsdbError(
                "constraint violation",
                f"mirror {name}: output_port must be a port of bridge {owner[0]}",
            )
