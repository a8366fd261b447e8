"""Reading the configuration database into plain, typed bridge/port/interface specs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.bridge.bond_config import BondConfigError, BondSpec, bond_from_row
from ovs_runtime.bridge.device_settings import (
    DeviceSettingError,
    DeviceSettings,
    bridge_hwaddr,
    interface_settings,
)
from ovs_runtime.bridge.flow_export_config import (
    FlowExportError,
    IpfixSpec,
    NetflowSpec,
    SflowSpec,
    ipfix_from_row,
    netflow_from_row,
    sflow_from_row,
)
from ovs_runtime.bridge.qos_config import QosConfigError, QosSpec, qos_from_rows
from ovs_runtime.db.datum import Row, as_list, as_map, scalar
from ovs_runtime.ofproto.port_security import (
    PortSecurity,
    PortSecurityError,
    parse_port_security,
)


@dataclass(frozen=True)
class InterfaceSpec:
    uuid: uuid.UUID
    name: str
    type: str
    options: dict[str, str]
    ofport_request: int | None
    # MTU and MAC for the device (``device_settings``): applied by the reconciler, not
    # part of the port's identity (changing them must not re-create the port).
    settings: DeviceSettings = field(default=DeviceSettings(), compare=False)
    # Ingress (rate, burst), kbit: a bond member's own. Not part of the interface's
    # identity (a change must not re-create the device); ``PortSpec.member_policing``
    # makes the port's change visible.
    policing: tuple[int, int] = field(default=(0, 0), compare=False)


@dataclass(frozen=True)
class PortSpec:
    uuid: uuid.UUID
    name: str
    tag: int | None
    trunks: tuple[int, ...]
    vlan_mode: str | None
    interfaces: tuple[InterfaceSpec, ...]
    other_config: dict[str, str] = field(hash=False, default_factory=dict)
    qos: QosSpec | None = None
    qos_error: str | None = None
    policing: tuple[int, int] = (0, 0)  # the interface's ingress (rate, burst), kbit
    port_security: PortSecurity | None = None  # None: any source may send
    protected: bool = False  # NORMAL never forwards between two protected ports
    bond: BondSpec | None = None  # set when the port has several interfaces
    member_policing: tuple[tuple[int, int], ...] = ()  # each interface's, in order
    # ``Port.bond_active_slave`` as stored: the member to keep active across a restart.
    bond_active_mac: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class MirrorSpec:
    """A Mirror row, with its port references resolved to port names."""

    uuid: uuid.UUID
    name: str
    select_all: bool
    select_src_port: frozenset[str]
    select_dst_port: frozenset[str]
    select_vlan: frozenset[int]
    output_port: str | None
    output_vlan: int | None


@dataclass(frozen=True)
class BridgeSpec:
    uuid: uuid.UUID
    name: str
    fail_mode: str
    ports: tuple[PortSpec, ...]
    other_config: dict[str, str] = field(hash=False, default_factory=dict)
    mirrors: tuple[MirrorSpec, ...] = ()
    sflow: SflowSpec | None = None
    netflow: NetflowSpec | None = None
    ipfix: IpfixSpec | None = None
    hwaddr: str | None = field(default=None, compare=False)  # other_config:hwaddr
    flood_vlans: frozenset[int] = frozenset()  # VLANs without MAC learning


def _mirror(row: Row, port_names: dict[uuid.UUID, str]) -> MirrorSpec:
    def names(column: str) -> frozenset[str]:
        return frozenset(port_names[u] for u in as_list(row[column]) if u in port_names)

    output = scalar(row["output_port"])
    return MirrorSpec(
        uuid=scalar(row["_uuid"]),
        name=scalar(row["name"], ""),
        select_all=bool(scalar(row["select_all"], False)),
        select_src_port=names("select_src_port"),
        select_dst_port=names("select_dst_port"),
        select_vlan=frozenset(as_list(row["select_vlan"])),
        output_port=port_names.get(output) if output is not None else None,
        output_vlan=scalar(row["output_vlan"]),
    )


def _interface(row: Row) -> InterfaceSpec:
    return InterfaceSpec(
        uuid=scalar(row["_uuid"]),
        name=scalar(row["name"]),
        type=scalar(row["type"], ""),
        options=as_map(row["options"]),
        ofport_request=scalar(row["ofport_request"]),
        settings=_settings(interface_settings, row, DeviceSettings()),
        policing=(
            int(scalar(row["ingress_policing_rate"], 0)),
            int(scalar(row["ingress_policing_burst"], 0)),
        ),
    )


def _settings(reader: Any, row: Row, fallback: Any) -> Any:
    try:
        return reader(row, f"interface {scalar(row['name'])}")
    except DeviceSettingError:
        return fallback  # written before the commit check existed


def _policing(tables: dict[str, dict[uuid.UUID, Row]], port_row: Row) -> tuple[int, int]:
    for iface_uuid in as_list(port_row["interfaces"]):
        row = tables["Interface"].get(iface_uuid)
        if row is not None:
            return (
                int(scalar(row["ingress_policing_rate"], 0)),
                int(scalar(row["ingress_policing_burst"], 0)),
            )
    return (0, 0)


def _port_qos(
    tables: dict[str, dict[uuid.UUID, Row]], port_row: Row
) -> tuple[QosSpec | None, str | None]:
    qos_uuid = scalar(port_row["qos"])
    if qos_uuid is None or qos_uuid not in tables["QoS"]:
        return None, None
    try:
        return qos_from_rows(tables["QoS"][qos_uuid], tables["Queue"], f"QoS {qos_uuid}"), None
    except QosConfigError as exc:  # rows from before the commit check existed
        return None, str(exc)


def _bond(port_row: Row) -> BondSpec:
    try:
        return bond_from_row(port_row, f"port {scalar(port_row['name'])}")
    except BondConfigError:
        return BondSpec()  # written before the commit check existed: the default mode


def _port_security(port_row: Row) -> PortSecurity | None:
    entries = as_list(port_row["port_security"])
    if not entries:
        return None
    try:
        return parse_port_security(entries, f"port {scalar(port_row['name'])}")
    except PortSecurityError:
        # Written before the commit check existed: fail closed, nothing may send.
        return PortSecurity(())


def _export(
    tables: dict[str, dict[uuid.UUID, Row]],
    bridge_row: Row,
    column: str,
    table: str,
    reader: Any,
) -> Any:
    ref = scalar(bridge_row[column])
    row = tables[table].get(ref) if ref is not None else None
    if row is None:
        return None
    try:
        return reader(row, f"{table} {ref}")
    except FlowExportError:
        return None  # written before the commit check existed


def read_bridges(tables: dict[str, dict[uuid.UUID, Row]]) -> dict[str, BridgeSpec]:
    """Every bridge reachable from the Open_vSwitch row, keyed by name."""
    bridges: dict[str, BridgeSpec] = {}
    for root in tables["Open_vSwitch"].values():
        for bridge_uuid in as_list(root["bridges"]):
            bridge_row = tables["Bridge"].get(bridge_uuid)
            if bridge_row is None:
                continue
            ports = []
            for port_uuid in as_list(bridge_row["ports"]):
                port_row = tables["Port"].get(port_uuid)
                if port_row is None:
                    continue
                interfaces = tuple(
                    _interface(tables["Interface"][u])
                    for u in as_list(port_row["interfaces"])
                    if u in tables["Interface"]
                )
                qos, qos_error = _port_qos(tables, port_row)
                ports.append(
                    PortSpec(
                        uuid=port_uuid,
                        name=scalar(port_row["name"]),
                        tag=scalar(port_row["tag"]),
                        trunks=tuple(as_list(port_row["trunks"])),
                        vlan_mode=scalar(port_row["vlan_mode"]),
                        interfaces=interfaces,
                        other_config=as_map(port_row["other_config"]),
                        qos=qos,
                        qos_error=qos_error,
                        policing=_policing(tables, port_row),
                        port_security=_port_security(port_row),
                        protected=bool(scalar(port_row["protected"], False)),
                        bond=_bond(port_row) if len(interfaces) > 1 else None,
                        member_policing=tuple(i.policing for i in interfaces),
                        bond_active_mac=scalar(port_row["bond_active_slave"]),
                    )
                )
            name = scalar(bridge_row["name"])
            port_names = {p.uuid: p.name for p in ports}
            mirrors = tuple(
                sorted(
                    (
                        _mirror(tables["Mirror"][u], port_names)
                        for u in as_list(bridge_row["mirrors"])
                        if u in tables["Mirror"]
                    ),
                    key=lambda m: m.name,
                )
            )
            bridges[name] = BridgeSpec(
                uuid=bridge_uuid,
                name=name,
                fail_mode=scalar(bridge_row["fail_mode"], "standalone"),
                ports=tuple(sorted(ports, key=lambda p: p.name)),
                other_config=as_map(bridge_row["other_config"]),
                mirrors=mirrors,
                sflow=_export(tables, bridge_row, "sflow", "sFlow", sflow_from_row),
                netflow=_export(tables, bridge_row, "netflow", "NetFlow", netflow_from_row),
                ipfix=_export(tables, bridge_row, "ipfix", "IPFIX", ipfix_from_row),
                hwaddr=_settings(bridge_hwaddr, bridge_row, None),
                flood_vlans=frozenset(as_list(bridge_row["flood_vlans"])),
            )
    return bridges
