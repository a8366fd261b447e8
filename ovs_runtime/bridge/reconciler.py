"""The reconciler: bring the running bridges in line with the database, then ack cur_cfg.

It listens to commits, and on any configuration change to the Open_vSwitch, Bridge,
Port or Interface tables schedules one reconciliation on the event loop (never inside
the commit, so a burst of commits costs one pass). Each pass diffs the desired specs
against what runs, logs one line per bridge or port added, changed or removed, hands the
changes to the datapath provider, writes status back (``Interface.ofport``, ``error``)
and finally sets ``cur_cfg = next_cfg``. ``refresh_status`` (every second) writes link
state and statistics, and lets the provider re-attach devices that came back; what
the daemon set on a device (QoS, MTU, MAC) is set again once a device was re-created.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from ovs_runtime.bridge import device_settings, ofport_allocator, qos_tc
from ovs_runtime.bridge.address_handover import AddressHandover, wants_move
from ovs_runtime.bridge.desired_state import BridgeSpec, PortSpec, read_bridges
from ovs_runtime.bridge.device_settings import DeviceSettings
from ovs_runtime.bridge.flow_rules import FlowRuleReader
from ovs_runtime.bridge.kernel_arp_guard import KernelArpGuard
from ovs_runtime.bridge.qos_config import QosSpec
from ovs_runtime.datapath.provider import DatapathProvider, InterfaceState
from ovs_runtime.db.database import Database, RowChange
from ovs_runtime.db.datum import scalar
from ovs_runtime.netdev import link

log = logging.getLogger(__name__)

WATCHED_TABLES = frozenset(
    {
        "Open_vSwitch",
        "Bridge",
        "Port",
        "Interface",
        "Mirror",
        "QoS",
        "Queue",
        "Flow_Rule",
        "sFlow",
        "NetFlow",
        "IPFIX",
    }
)
STATUS_COLUMNS = frozenset(
    {
        "_version",
        "cur_cfg",
        "statistics",
        "status",
        "ofport",
        "link_state",
        "admin_state",
        "link_speed",
        "link_resets",
        "duplex",
        "mtu",
        "error",
        "ifindex",
        "mac_in_use",
        "datapath_id",
        "bond_active_slave",
        "lacp_current",
    }
)


class Reconciler:
    def __init__(
        self,
        db: Database,
        provider: DatapathProvider | None = None,
        handover: AddressHandover | None = None,
        arp_guard: KernelArpGuard | None = None,
    ) -> None:
        self.db = db
        self.provider = provider
        self.handover = handover if provider is not None else None
        self.arp_guard = arp_guard if provider is not None else None
        self.arp_guarded: dict[str, int] = {}  # device -> its ifindex when guarded
        self.arp_release_failed: set[str] = set()  # warned about once
        # device -> what was set on it, and the ifindex it had then (a re-created device
        # has a new one, and needs it all again)
        self.qos_applied: dict[str, tuple[QosSpec, int]] = {}
        self.settings_applied: dict[str, tuple[DeviceSettings, int]] = {}
        self.setting_errors: dict[str, str] = {}  # device -> why its MTU or MAC failed
        self.desired: dict[str, BridgeSpec] = {}  # as of the last pass
        self.running: dict[str, BridgeSpec] = {}
        self.ofports: dict[tuple[str, str], int] = {}  # (bridge, interface) -> number
        self.errors: dict[str, str | None] = {}  # interface -> attach error
        self._scheduled = False
        self.flow_reader = FlowRuleReader()
        self._changed_rules: set[uuid.UUID] = set()  # Flow_Rule rows since the last pass
        db.listeners.append(self._on_commit)

    def _on_commit(self, changes: list[RowChange], txn_id: str) -> None:
        if self.provider is not None:
            self._changed_rules.update(c.uuid for c in changes if c.table == "Flow_Rule")
        if self._scheduled:
            return
        relevant = [c for c in changes if c.table in WATCHED_TABLES]
        if not relevant or all(_only_status(c) for c in relevant):
            return
        self._scheduled = True
        asyncio.get_running_loop().call_soon(self.reconcile)

    def reconcile(self) -> None:
        self._scheduled = False
        desired = self.desired = read_bridges(self.db.tables)
        sources: set[str] = set()
        if self.handover is not None:
            sources = {u for u, r in self.handover.active().items() if not r.silent}
        moves, silenced = _wanted_moves(desired, sources), _wanted_silenced(desired, sources)
        self._release_addresses(moves, silenced)  # before the bridge ports can vanish
        self._apply_arp_guard(desired)  # before a new port's device sees a frame
        if self.provider is not None:
            with self.provider.batch():
                self._apply(desired)
                self._apply_flows(desired)
        else:
            self._apply(desired)
        self._take_addresses(moves, silenced)
        self._apply_qos(desired)
        self._apply_device_settings(desired)
        self._write_status(ack=True)

    # -- QoS (Linux tc on system ports) -------------------------------------------------------

    def _apply_qos(self, desired: dict[str, BridgeSpec]) -> None:
        if self.provider is None:
            return
        wanted = {
            iface.name: port.qos
            for bridge in desired.values()
            for port in bridge.ports
            for iface in port.interfaces
            if iface.type in ("", "system") and port.qos is not None
        }
        for device in sorted(set(self.qos_applied) - set(wanted)):
            try:
                if qos_tc.remove(device):
                    log.info("port %s: QoS removed", device)
            except (OSError, NetlinkError) as exc:
                log.warning("port %s: cannot remove QoS: %s", device, exc)
            del self.qos_applied[device]
        for device, spec in sorted(wanted.items()):
            index = link.ifindex(device)
            if index is None or self.qos_applied.get(device) == (spec, index):
                continue  # absent (set once it appears), or in place
            self.qos_applied[device] = (spec, index)  # a failure is retried on a change
            try:
                qos_tc.install(device, spec)
            except (OSError, NetlinkError) as exc:
                log.warning("port %s: cannot install QoS: %s", device, exc)
                continue
            log.info(
                "port %s: QoS %s max-rate %d bit/s, %d queue(s)",
                device,
                spec.type,
                spec.max_rate,
                len(spec.queues),
            )

    # -- ARP on bridged devices (kernel_arp_guard) -------------------------------------------

    def _apply_arp_guard(self, desired: dict[str, BridgeSpec]) -> None:
        if self.arp_guard is None:
            return
        wanted = {
            iface.name
            for bridge in desired.values()
            for port in bridge.ports
            for iface in port.interfaces
            if iface.type in ("", "system")
        }
        for device in set(self.arp_guarded) - wanted:
            del self.arp_guarded[device]
        for device in sorted(self.arp_guard.guarded() - wanted):
            try:
                if self.arp_guard.release(device, link.ifindex(device)):
                    log.info("port %s: left its bridge, its arp_ignore is put back", device)
            except OSError as exc:
                if device not in self.arp_release_failed:  # (tried again every second)
                    log.warning("port %s: cannot put its arp_ignore back: %s", device, exc)
                self.arp_release_failed.add(device)
            else:
                self.arp_release_failed.discard(device)
        for device in sorted(wanted):
            index = link.ifindex(device)
            if index is None or self.arp_guarded.get(device) == index:
                continue  # absent (guarded once it appears), or done for this device
            self.arp_guarded[device] = index  # a failure is logged once, not every second
            try:
                if self.arp_guard.guard(device, index):
                    log.info(
                        "port %s: the kernel answers ARP on it only for its own "
                        "addresses (arp_ignore=1)",
                        device,
                    )
            except (OSError, ValueError) as exc:
                log.warning("port %s: cannot set arp_ignore: %s", device, exc)

    # -- MTU and MAC of devices ---------------------------------------------------------------

    def _apply_device_settings(self, desired: dict[str, BridgeSpec]) -> None:
        if self.provider is None:
            return
        wanted = _wanted_settings(desired)
        for device in set(self.settings_applied) - set(wanted):
            del self.settings_applied[device]
            self.setting_errors.pop(device, None)
        for device, settings in sorted(wanted.items()):
            index = link.ifindex(device)
            if index is None or self.settings_applied.get(device) == (settings, index):
                continue
            # Recorded even when refused: tried again on a change or a new device, not
            # every second.
            self.settings_applied[device] = (settings, index)
            try:
                device_settings.apply(device, settings)
            except OSError as exc:
                log.warning("port %s: %s", device, exc)
                self.setting_errors[device] = str(exc)
                continue
            self.setting_errors.pop(device, None)
            log.info("port %s: %s", device, _settings_text(settings))

    # -- uplink addresses ------------------------------------------------------------------

    def _release_addresses(self, moves: dict[str, str], silenced: dict[str, str]) -> None:
        if self.handover is None:
            return
        for uplink, record in self.handover.active().items():
            if (silenced if record.silent else moves).get(uplink) != record.bridge:
                _log_move(self.handover.move_back, uplink)

    def _take_addresses(self, moves: dict[str, str], silenced: dict[str, str]) -> None:
        if self.handover is None:
            return
        for uplink, bridge in sorted(moves.items()):
            _log_move(self.handover.move_to_bridge, uplink, bridge)
        for member, bridge in sorted(silenced.items()):
            _log_move(self.handover.silence, member, bridge)

    # -- applying -----------------------------------------------------------------------

    def _numbers(self, spec: BridgeSpec) -> dict[str, int]:
        interfaces = self.db.tables["Interface"]
        members = []
        for port in spec.ports:
            for iface in port.interfaces:
                current = self.ofports.get((spec.name, iface.name))
                if current is None and iface.uuid in interfaces:
                    stored = scalar(interfaces[iface.uuid]["ofport"])
                    current = stored if stored and stored > 0 else None
                members.append((iface.name, iface.ofport_request, current))
        numbers = ofport_allocator.allocate(spec.name, members)
        for iface_name, number in numbers.items():
            self.ofports[(spec.name, iface_name)] = number
        return numbers

    def _apply(self, desired: dict[str, BridgeSpec]) -> None:
        provider = self.provider
        for name in sorted(set(self.running) - set(desired)):
            log.info("bridge %s: removed", name)
            if provider:
                provider.remove_bridge(name)
            del self.running[name]
            self.ofports = {k: v for k, v in self.ofports.items() if k[0] != name}
        for name, spec in sorted(desired.items()):
            current = self.running.get(name)
            if current is None:
                log.info("bridge %s: created (fail_mode %s)", name, spec.fail_mode)
                if provider:
                    provider.add_bridge(name, spec.other_config, spec.flood_vlans)
                old_ports: dict[str, PortSpec] = {}
            else:
                old_ports = {p.name: p for p in current.ports}
                bridge_config = (spec.other_config, spec.flood_vlans)
                if provider and (current.other_config, current.flood_vlans) != bridge_config:
                    provider.configure_bridge(name, *bridge_config)
            previous = {k[1]: v for k, v in self.ofports.items() if k[0] == name}
            numbers = self._numbers(spec)
            new_ports = {p.name: p for p in spec.ports}
            # Two passes: first every port that goes away or must be made anew (other
            # interfaces, or other numbers), then the rest. So an interface or a number
            # that moves from one port to another is given up before it is taken.
            rebuilt = {
                port
                for port, pspec in new_ports.items()
                if port in old_ports
                and (
                    old_ports[port].interfaces != pspec.interfaces
                    or _renumbered(pspec, previous, numbers)
                )
            }
            for port in sorted(set(old_ports) - set(new_ports)):
                log.info("bridge %s: port %s removed", name, port)
                if provider:
                    provider.remove_port(name, port)
            for port in sorted(rebuilt):
                if provider:
                    provider.remove_port(name, port)
            for port, pspec in sorted(new_ports.items()):
                ofport = numbers.get(pspec.interfaces[0].name if pspec.interfaces else port, -1)
                members = {i.name: numbers.get(i.name, -1) for i in pspec.interfaces}
                if port in rebuilt:
                    log.info("bridge %s: port %s changed%s", name, port, _vlan_text(pspec))
                    error = provider.add_port(name, pspec, ofport, members) if provider else None
                elif port not in old_ports:
                    log.info("bridge %s: port %s added%s", name, port, _vlan_text(pspec))
                    error = provider.add_port(name, pspec, ofport, members) if provider else None
                elif old_ports[port] != pspec:
                    log.info("bridge %s: port %s changed%s", name, port, _vlan_text(pspec))
                    error = provider.update_port(name, pspec, ofport, members) if provider else None
                else:
                    continue
                if error:
                    log.warning("bridge %s: port %s: %s", name, port, error)
            export = (spec.sflow, spec.netflow, spec.ipfix)
            if provider and (
                current is None or (current.sflow, current.netflow, current.ipfix) != export
            ):
                if any(export) or current is not None:
                    log.info(
                        "bridge %s: sFlow %s, NetFlow %s, IPFIX %s",
                        name,
                        *(_on(e) for e in export),
                    )
                provider.configure_flow_export(name, *export)
            if provider and (current is None or current != spec):
                if spec.mirrors != (current.mirrors if current else ()):
                    for mirror in spec.mirrors:
                        log.info("bridge %s: mirror %s%s", name, mirror.name, _mirror_text(mirror))
                provider.configure_mirrors(name, spec.mirrors)
            self.running[name] = spec

    def _apply_flows(self, desired: dict[str, BridgeSpec]) -> None:
        provider = self.provider
        assert provider is not None
        changed, self._changed_rules = self._changed_rules, set()
        rows = self.db.tables["Flow_Rule"]
        try:
            for name, spec in desired.items():
                bridge_row = self.db.tables["Bridge"].get(spec.uuid)
                if bridge_row is None:
                    continue
                rules = self.flow_reader.read(rows, spec.uuid, bridge_row, changed)
                provider.configure_flows(name, spec.fail_mode, rules)
        except BaseException:
            self._changed_rules |= changed  # bridges not reached must still see them
            raise
        self.flow_reader.keep_only({spec.uuid for spec in desired.values()})

    def _delete_expired_flows(self) -> None:
        """Rules the datapath timed out leave the database too, as in OVS."""
        assert self.provider is not None
        expired = self.provider.expired_flows()
        ops: list[dict[str, Any]] = []
        for bridge, rule_uuid, reason in expired:
            if uuid.UUID(rule_uuid) not in self.db.tables["Flow_Rule"]:
                continue
            log.info("bridge %s: flow rule %s removed (%s timeout)", bridge, rule_uuid, reason)
            ops.append(
                {
                    "op": "mutate",
                    "table": "Bridge",
                    "where": [["name", "==", bridge]],
                    "mutations": [["flow_rules", "delete", ["uuid", rule_uuid]]],
                }
            )
        if ops:
            results = self.db.transact(ops)
            failed = [r for r in results if isinstance(r, dict) and "error" in r]
            if failed:
                log.error("cannot remove expired flow rules: %s", failed[0])

    # -- status -----------------------------------------------------------------------

    def _interface_states(self) -> dict[str, InterfaceState]:
        if self.provider is not None:
            return self.provider.interface_states()
        return {
            iface: InterfaceState(ofport=number, error=None)
            for (_, iface), number in self.ofports.items()
        }

    def _bond_status_ops(self) -> list[dict[str, Any]]:
        """``Port.bond_active_slave``: the active member's MAC, as OVS writes it."""
        if self.provider is None:
            return []
        active = self.provider.bond_states()
        ops = []
        for port_uuid, row in self.db.tables["Port"].items():
            name = scalar(row["name"])
            mac = active.get(name)
            wanted = ["set", []] if mac is None else mac
            if _json_differs(row["bond_active_slave"].to_json(), wanted):
                ops.append(_update_op("Port", port_uuid, {"bond_active_slave": wanted}))
        return ops

    def _mirror_status_ops(self) -> list[dict[str, Any]]:
        if self.provider is None or not self.db.tables["Mirror"]:
            return []
        counters = self.provider.mirror_statistics()
        ops = []
        for mirror_uuid, row in self.db.tables["Mirror"].items():
            stats = counters.get(str(mirror_uuid))
            if stats is None:
                continue
            wanted = ["map", sorted([k, v] for k, v in stats.items())]
            if _json_differs(row["statistics"].to_json(), wanted):
                ops.append(_update_op("Mirror", mirror_uuid, {"statistics": wanted}))
        return ops

    def refresh_status(self) -> None:
        if self.provider is not None:
            for event in self.provider.maintain():
                log.info("%s", event)
            self._delete_expired_flows()
            self._apply_qos(self.desired)  # devices that came back, re-created
            self._apply_arp_guard(self.desired)
            self._apply_device_settings(self.desired)
        self._write_status(ack=False)

    def _write_status(self, ack: bool) -> None:
        ops: list[dict[str, Any]] = []
        states = self._interface_states()
        for iface_uuid, row in self.db.tables["Interface"].items():
            name = scalar(row["name"])
            state = states.get(name)
            if state is None:
                continue
            if state.error is None and name in self.setting_errors:
                state = dataclasses.replace(state, error=self.setting_errors[name])
            wanted = _status_row(state)
            current = {col: row[col].to_json() for col in wanted}
            changed = {col: val for col, val in wanted.items() if _json_differs(current[col], val)}
            if changed:
                ops.append(_update_op("Interface", iface_uuid, changed))
        ops += self._mirror_status_ops()
        ops += self._bond_status_ops()
        acked = None
        if ack:
            for root_uuid, root in self.db.tables["Open_vSwitch"].items():
                next_cfg = scalar(root["next_cfg"], 0)
                if scalar(root["cur_cfg"], 0) != next_cfg:
                    acked = next_cfg
                    ops.append(_update_op("Open_vSwitch", root_uuid, {"cur_cfg": next_cfg}))
        if not ops:
            return
        results = self.db.transact(ops)
        failed = [r for r in results if isinstance(r, dict) and "error" in r]
        if failed:
            log.error("cannot write bridge status: %s", failed[0])
        elif acked is not None:
            log.debug("configuration %d is live", acked)


def _wanted_settings(
    desired: dict[str, BridgeSpec], mtu_of: Callable[[str], int | None] = link.mtu
) -> dict[str, DeviceSettings]:
    """Device -> the MTU and MAC asked for it. As in OVS, a bridge's local port takes
    the bridge's ``other_config:hwaddr``, and an internal port without ``mtu_request``
    is lowered to the smallest MTU of the bridge's other ports (``mtu_of`` reads a
    device's)."""
    wanted = {}
    for bridge in desired.values():
        interfaces = [i for p in bridge.ports for i in p.interfaces]
        mtus = [mtu_of(i.name) for i in interfaces if i.type in ("", "system", "tap")]
        mtus += [i.settings.mtu for i in interfaces if i.type == "internal"]
        smallest = min((m for m in mtus if m is not None), default=None)
        for iface in interfaces:
            settings = iface.settings
            if iface.type == "internal":
                mac = bridge.hwaddr if iface.name == bridge.name else settings.mac
                if settings.mtu is None:
                    settings = DeviceSettings(smallest, mac, mtu_is_ceiling=True)
                else:
                    settings = DeviceSettings(settings.mtu, mac)
            if settings.mtu is not None or settings.mac is not None:
                wanted[iface.name] = settings
    return wanted


def _settings_text(settings: DeviceSettings) -> str:
    parts = []
    if settings.mtu is not None:
        parts.append(f"MTU {settings.mtu}")
    if settings.mac is not None:
        parts.append(f"MAC {settings.mac}")
    return ", ".join(parts)


def _on(spec: Any) -> str:
    if spec is None:
        return "off"
    return "to " + ", ".join(f"{host}:{port}" for host, port in spec.targets)


def _mirror_text(mirror: Any) -> str:
    selects = ["all" if mirror.select_all else ""]
    selects += [f"src={','.join(sorted(mirror.select_src_port))}"] * bool(mirror.select_src_port)
    selects += [f"dst={','.join(sorted(mirror.select_dst_port))}"] * bool(mirror.select_dst_port)
    selects += [f"vlan={','.join(map(str, sorted(mirror.select_vlan)))}"] * bool(mirror.select_vlan)
    out = f"port {mirror.output_port}" if mirror.output_port else f"vlan {mirror.output_vlan}"
    return f" ({' '.join(s for s in selects if s) or 'nothing'} -> {out})"


def _log_move(action: Callable[..., str | None], *args: str) -> None:
    try:
        line = action(*args)
    except OSError as exc:  # NetlinkError is an OSError
        log.error("address handover of %s failed: %s", args[0], exc)
        return
    if line:
        log.info("%s", line)


def _renumbered(port: PortSpec, previous: dict[str, int], numbers: dict[str, int]) -> bool:
    """Whether an interface of the port got another OpenFlow number than it had."""
    return any(
        previous.get(i.name, numbers.get(i.name, -1)) != numbers.get(i.name, -1)
        for i in port.interfaces
    )


def _wanted_silenced(
    desired: dict[str, BridgeSpec], sources: set[str] | frozenset[str] = frozenset()
) -> dict[str, str]:
    """The other interfaces of bonds whose addresses move -> bridge: no ARP from them."""
    moves = _wanted_moves(desired, sources)
    return {
        iface.name: bridge.name
        for bridge in desired.values()
        for port in bridge.ports
        if len(port.interfaces) > 1 and wants_move(port.other_config)
        for iface in port.interfaces
        if iface.type in ("", "system") and iface.name not in moves
    }


def _wanted_moves(
    desired: dict[str, BridgeSpec], sources: set[str] | frozenset[str] = frozenset()
) -> dict[str, str]:
    """uplink device -> bridge, for system ports with ``other_config:move-addresses``
    (for a bond, its first system interface by name)."""
    moves = {}
    for bridge in desired.values():
        for port in bridge.ports:
            if not wants_move(port.other_config):
                continue
            # A bond's addresses come from its first interface by name (the bridge port
            # takes over one uplink's MAC; the bond's members keep theirs).
            systems = sorted(
                i.name
                for i in port.interfaces
                if i.type in ("", "system") and i.name != bridge.name
            )
            # A member whose addresses already moved stays the source (another member
            # sorting first later must not pull them back onto a bridged device).
            kept = [n for n in systems if n in sources]
            for name in (kept or systems)[:1]:
                moves[name] = bridge.name
    return moves


def _update_op(table: str, row_uuid: uuid.UUID, row: dict[str, Any]) -> dict[str, Any]:
    """An OVSDB ``update`` of one row, by UUID (the daemon's status writes)."""
    return {
        "op": "update",
        "table": table,
        "where": [["_uuid", "==", ["uuid", str(row_uuid)]]],
        "row": row,
    }


def _status_row(state: InterfaceState) -> dict[str, Any]:
    def optional(value: Any) -> Any:
        return ["set", []] if value is None else value

    return {
        "ofport": state.ofport,
        "error": optional(state.error),
        "link_state": state.link_state,
        "admin_state": state.admin_state,
        "mtu": optional(state.mtu),
        "ifindex": optional(state.ifindex),
        "mac_in_use": optional(state.mac_in_use),
        "lacp_current": optional(state.lacp_current),
        "statistics": ["map", sorted([k, v] for k, v in state.statistics.items())],
        "status": ["map", sorted([k, v] for k, v in state.status.items())],
    }


def _json_differs(current: Any, wanted: Any) -> bool:
    def norm(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2 and value[0] == "set" and len(value[1]) == 1:
            return value[1][0]
        return value

    return bool(norm(current) != norm(wanted))


def _only_status(change: RowChange) -> bool:
    """True for a change the daemon itself writes back (status), which needs no pass."""
    if change.old is None or change.new is None:
        return False
    differing = {c for c in change.new if change.old[c].values != change.new[c].values}
    return differing <= STATUS_COLUMNS


def _vlan_text(spec: PortSpec) -> str:
    parts = []
    if spec.tag is not None:
        parts.append(f"tag={spec.tag}")
    if spec.trunks:
        parts.append("trunks=" + ",".join(map(str, spec.trunks)))
    if spec.vlan_mode:
        parts.append(f"vlan_mode={spec.vlan_mode}")
    return " (" + " ".join(parts) + ")" if parts else ""
