"""Settings of OVS's schema that ask for something this switch does not do.

The columns exist so that OVS's tools and IDLs work against the database, and ``false``
is accepted; ``true`` fails the transaction with a message that says so, rather than
being stored and silently ignored (a bridge believed to run spanning tree, say, would
let a cabling loop melt the network).

- ``Bridge.stp_enable`` and ``rstp_enable``: no spanning tree. Loops must be prevented by
  the topology (the overlay mesh uses split horizon) or by flow rules.
- ``Bridge.mcast_snooping_enable``: no IGMP/MLD snooping; multicast is flooded within
  its VLAN, as with snooping off in OVS.
- ``Bridge.controller``: no OpenFlow channel, so no controller; flow rules are set with
  ``ovsr add-flow``/``replace-flows`` (ovs-ofctl syntax) and kept in the database.
- ``Queue.dscp``: queues do not re-mark DSCP (a flow rule's ``mod_nw_tos`` does).
"""

from __future__ import annotations

from typing import Any

from ovs_runtime.db.datum import as_list, scalar

UNSUPPORTED_BRIDGE_FLAGS = {
    "stp_enable": "spanning tree (STP) is not implemented by ovs-runtime",
    "rstp_enable": "rapid spanning tree (RSTP) is not implemented by ovs-runtime",
    "mcast_snooping_enable": (
        "multicast snooping is not implemented by ovs-runtime (multicast is flooded "
        "within its VLAN)"
    ),
}


def check_unsupported_features(view: Any) -> None:
    from ovs_runtime.db.errors import OvsdbError

    columns = (*UNSUPPORTED_BRIDGE_FLAGS, "controller")
    for row_uuid, row in view.changed_rows("Bridge", columns):
        what = f"Bridge {scalar(row['name'])} ({row_uuid})"
        for column, why in UNSUPPORTED_BRIDGE_FLAGS.items():
            if scalar(row[column], False):
                raise OvsdbError(
                    "constraint violation", f"{what}: {column}=true: {why}; only false is accepted"
                )
        if as_list(row["controller"]):
            raise OvsdbError(
                "constraint violation",
                f"{what}: controller: OpenFlow controllers are not supported (ovs-runtime "
                "has no OpenFlow channel); set flow rules with ovsr add-flow or replace-flows",
            )
    for row_uuid, row in view.changed_rows("Queue", ("dscp",)):
        if as_list(row["dscp"]):
            raise OvsdbError(
                "constraint violation",
                f"Queue {row_uuid}: dscp: queues do not re-mark DSCP here; use a flow rule's "
                "mod_nw_tos action",
            )
