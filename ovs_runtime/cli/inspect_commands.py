"""Commands that ask the running datapath rather than the database (like ovs-appctl):
``fdb-show``, ``fdb-flush``, ``dpif-show``, ``qos-show``, ``bond-show``,
``bond-set-active`` and ``lacp-show``."""

from __future__ import annotations

from typing import Any

from ovs_runtime.cli.client import OvsdbClient

INSPECT_COMMANDS = {
    "fdb-show": (1, 1, "fdb-show BRIDGE"),
    "fdb-flush": (0, 1, "fdb-flush [BRIDGE]"),
    "dpif-show": (0, 0, "dpif-show"),
    "confirm": (1, 1, "confirm TOKEN"),
    "qos-show": (1, 1, "qos-show PORT"),
    "bond-show": (0, 1, "bond-show [PORT]"),
    "bond-set-active": (2, 2, "bond-set-active PORT MEMBER"),
    "lacp-show": (0, 1, "lacp-show [PORT]"),
}


def run_inspect(client: OvsdbClient, name: str, args: list[str]) -> tuple[Any, list[str]]:
    """Returns (data for --format json, text lines)."""
    result = client.call(f"ovsr/{name}", args)
    if name == "fdb-show":
        lines = [" port  VLAN  MAC                Age"]
        for entry in sorted(result, key=lambda e: (e["vlan"], e["mac"])):
            lines.append(
                f"{entry['port']:>5}  {entry['vlan']:>4}  {entry['mac']}  {entry['age']:>4}"
            )
        return result, lines
    if name == "fdb-flush":
        return result, [f"flushed {result['flushed']} MAC table entries"]
    if name == "qos-show":
        lines = [f"port {result['port']}: {result['qos'] or 'no QoS'}"]
        if result.get("error"):
            lines.append(f"  error: {result['error']}")
        for c in result["classes"]:
            what = "root" if c["queue"] is None else f"queue {c['queue']}"
            rates = f"rate {c.get('rate_bps')} ceil {c.get('ceil_bps')} bit/s"
            lines.append(
                f"  {c['class']} {what}: {rates}, sent {c['packets']} packets "
                f"{c['bytes']} bytes, dropped {c['drops']}"
            )
        return result, lines
    if name in ("bond-show", "bond-set-active"):
        return result, _bond_lines(result)
    if name == "lacp-show":
        return result, _lacp_lines(result)
    if name == "confirm":
        return result, [f"confirmed {result['confirmed']}: the change stays"]
    return result, _dpif_lines(result)


def _bond_lines(bonds: dict[str, Any]) -> list[str]:
    """As ``ovs-appctl bond/show`` prints them."""
    lines: list[str] = []
    for name, bond in sorted(bonds.items()):
        active = bond["active_member"]
        lines += [
            f"---- {name} ----",
            f"bond_mode: {bond['bond_mode']}",
            f"updelay: {bond['updelay']} ms",
            f"downdelay: {bond['downdelay']} ms",
            f"lacp_status: {bond.get('lacp_status', 'off')}",
            f"active-backup primary: {bond['primary'] or '<none>'}",
            f"active member mac: {bond['active_member_mac'] or '00:00:00:00:00:00'}"
            f"({active or 'none'})",
            f"failovers: {bond['failovers']}, learning packets sent: {bond['learning_packets']}",
        ]
        for member, info in bond["members"].items():
            lines += ["", f"member {member}: {'enabled' if info['enabled'] else 'disabled'}"]
            if info["active"]:
                lines.append("  active member")
            lines.append(f"  may_enable: {'true' if info['carrier'] else 'false'}")
            if info["error"]:
                lines.append(f"  error: {info['error']}")
        lines.append("")
    return lines or ["no bonds"]


def _lacp_lines(bonds: dict[str, Any]) -> list[str]:
    """As ``ovs-appctl lacp/show`` prints them."""
    lines: list[str] = []
    for name, lacp in sorted(bonds.items()):
        lines += [
            f"---- {name} ----",
            f"  status: {lacp['mode']} {lacp['status']}",
            f"  sys_id: {lacp['system_id']}",
            f"  sys_priority: {lacp['system_priority']}",
            f"  aggregation key: {lacp['aggregation_key']}",
            f"  lacp_time: {lacp['lacp_time']}",
            f"  fallback to active-backup: {'true' if lacp['fallback_ab'] else 'false'}",
        ]
        for member, info in lacp["members"].items():
            attached = "attached" if info["attached"] else "detached"
            lines += [
                "",
                f"member: {member}: {info['status']} {attached}",
                f"  port_id: {info['port_id']}",
                f"  port_priority: {info['port_priority']}",
                f"  may_enable: {'true' if info['may_enable'] else 'false'}",
                f"  actor state: {' '.join(info['actor_state'])}",
                "",
                f"  partner sys_id: {info['partner_system_id']}",
                f"  partner sys_priority: {info['partner_system_priority']}",
                f"  partner port_id: {info['partner_port_id']}",
                f"  partner port_priority: {info['partner_port_priority']}",
                f"  partner key: {info['partner_key']}",
                f"  partner state: {' '.join(info['partner_state'])}",
                f"  PDUs received: {info['rx_pdus']}, sent: {info['tx_pdus']}, "
                f"malformed: {info['rx_errors']}"
                + (f" (last: {info['last_error']})" if info["last_error"] else ""),
            ]
        lines.append("")
    return lines or ["no bonds run LACP"]


def _dpif_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"{data['datapath']}: {data['iterations']} loop iterations"]
    for name, bridge in data["bridges"].items():
        cache, macs = bridge["flow_cache"], bridge["mac_table"]
        total = cache["hits"] + cache["misses"]
        rate = f"{100.0 * cache['hits'] / total:.1f}%" if total else "n/a"
        lines.append(f"  {name}:")
        lines.append(
            f"    flow cache: {cache['entries']} entries, hit:{cache['hits']} "
            f"(relayed:{cache.get('relayed', 0)}) missed:{cache['misses']} "
            f"(hit rate {rate}) invalidated:{cache['invalidations']}"
        )
        lines.append(
            f"    mac table: {macs['entries']}/{macs['max']} entries, aging "
            f"{macs['aging']:g} s, evictions:{macs['evictions']} moves:{macs['moves']}"
        )
        if bridge["drops"]:
            drops = ", ".join(f"{k}:{v}" for k, v in sorted(bridge["drops"].items()))
            lines.append(f"    drops: {drops}")
        lines += _flow_export_lines(bridge)
        for bond_name, bond in bridge.get("bonds", {}).items():
            lines.append(
                f"    bond {bond_name}: {bond['bond_mode']}, active member "
                f"{bond['active_member'] or '(none)'}, failovers:{bond['failovers']} "
                f"learning packets:{bond['learning_packets']}"
            )
        for port, info in bridge["ports"].items():
            state = info["state"] + (f" ({info['error']})" if info.get("error") else "")
            kind = info["type"] + (f", bond {info['bond']}" if info.get("bond") else "")
            lines.append(f"    port {info['ofport']}: {port} ({kind}) {state}")
            if "rx_packets" in info:
                lines.append(
                    f"      RX packets:{info['rx_packets']} bytes:{info['rx_bytes']} "
                    f"dropped:{info['rx_dropped']} errors:{info['rx_errors']}"
                )
                lines.append(
                    f"      TX packets:{info['tx_packets']} bytes:{info['tx_bytes']} "
                    f"dropped:{info['tx_dropped']} errors:{info['tx_errors']}"
                )
    for name, endpoint in data.get("tunnel_endpoints", {}).items():
        drops = ", ".join(f"{k}:{v}" for k, v in sorted(endpoint["drops"].items())) or "none"
        lines.append(
            f"  tunnel endpoint {name}: {endpoint['ports']} port(s), "
            f"{len(endpoint.get('source_ports', []))} source port(s) in use, drops: {drops}"
        )
    return lines


def _flow_export_lines(bridge: dict[str, Any]) -> list[str]:
    lines = []
    sflow, netflow, ipfix = bridge.get("sflow"), bridge.get("netflow"), bridge.get("ipfix")
    if sflow:
        lines.append(
            f"    sFlow: to {', '.join(sflow['targets'])}, 1 in {sflow['sampling']}, "
            f"flow samples:{sflow['flow_samples']} counter samples:{sflow['counter_samples']} "
            f"datagrams:{sflow['datagrams']} send errors:{sflow['send_errors']}"
        )
    if netflow:
        lines.append(
            f"    NetFlow: to {', '.join(netflow['targets'])}, "
            f"active timeout {netflow['active_timeout']:g} s, flows:{netflow['flows']} "
            f"records:{netflow['records_exported']} datagrams:{netflow['datagrams']} "
            f"send errors:{netflow['send_errors']}"
        )
    if ipfix:
        sampling = f"1 in {ipfix['sampling']}" if ipfix["input_sampling"] else "sampling off"
        cache = (
            f"cache {ipfix['cache_active_timeout']} s/{ipfix['cache_max_flows']} flows"
            if ipfix["cache_active_timeout"] and ipfix["cache_max_flows"]
            else "no cache"
        )
        lines.append(
            f"    IPFIX: to {', '.join(ipfix['targets']) or 'nowhere'}, {sampling}, "
            f"domain {ipfix['obs_domain_id']} point {ipfix['obs_point_id']}, {cache}, "
            f"samples:{ipfix['samples']} records:{ipfix['records_exported']} "
            f"cached:{ipfix['cached_flows']} evicted:{ipfix['evicted']} "
            f"datagrams:{ipfix['datagrams']} send errors:{ipfix['send_errors']}"
        )
    return lines
