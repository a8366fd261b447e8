"""``Port.port_security`` checked at commit time: an entry that does not parse fails the
whole transaction, naming the port and the accepted form (see
``ofproto.port_security``)."""

from __future__ import annotations

from typing import Any

from ovs_runtime.db.datum import as_list, scalar
from ovs_runtime.ofproto.port_security import PortSecurityError, parse_port_security


def check_port_security(view: Any) -> None:
    from ovs_runtime.db.errors import OvsdbError

    for _row_uuid, row in view.changes.get("Port", {}).items():
        if row is None:
            continue
        try:
            parse_port_security(as_list(row["port_security"]), f"port {scalar(row['name'])}")
        except PortSecurityError as exc:
            raise OvsdbError("constraint violation", str(exc)) from None
