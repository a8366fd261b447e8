"""Each host, as the inventory declares it: the package at the expected version, the
service, the socket, exactly the declared bridges, ports and VLANs, tunnels up, and the
declared reachability between the lab's VMs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import host_name, inventory_sources
from tests.infra.declared import declared_bridges, host_vars


@pytest.fixture
def inventory(request: pytest.FixtureRequest) -> list[str]:
    return inventory_sources(request.config)


def ovsr_json(host: Any, *args: str) -> Any:
    return json.loads(host.check_output("ovsr --timeout 10 --format json " + " ".join(args)))


def scalar(value: Any) -> Any:
    if isinstance(value, list) and value[:1] == ["set"]:
        return value[1][0] if value[1] else None
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return None if value == [] else value


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list) and value[:1] == ["set"]:
        return sorted(value[1])
    if isinstance(value, list):
        return sorted(value)
    return [value]


def as_map(value: Any) -> dict[str, str]:
    if isinstance(value, list) and value[:1] == ["map"]:
        return dict(value[1])
    return dict(value or {})


def test_package_installed_at_the_expected_version(host: Any, inventory: list[str]) -> None:
    expected = host_vars(inventory, host_name(host)).get("ovs_runtime_install_version")
    package = host.package("ovs-runtime")
    assert package.is_installed
    if expected:
        assert package.version.startswith(str(expected)), package.version


def test_service_active_and_enabled(host: Any) -> None:
    service = host.service("ovs-runtime")
    assert service.is_running and service.is_enabled


def test_socket_mode_and_group(host: Any) -> None:
    sock = host.file("/run/ovs-runtime/db.sock")
    assert sock.is_socket and sock.mode == 0o660 and sock.group == "ovs-runtime"


def test_bridges_ports_and_vlans_exactly_as_declared(host: Any, inventory: list[str]) -> None:
    declared = declared_bridges(inventory, host_name(host))
    bridges = {b["name"]: b for b in ovsr_json(host, "list", "Bridge")}
    ports = {p["_uuid"]: p for p in ovsr_json(host, "list", "Port")}
    ifaces = {i["_uuid"]: i for i in ovsr_json(host, "list", "Interface")}
    assert sorted(bridges) == sorted(declared), "bridges differ from the inventory"
    for name, wanted in declared.items():
        running = {}
        for ref in as_list(bridges[name]["ports"]):
            port = ports[ref]
            if port["name"] != name:  # the bridge's own local port is implied
                running[port["name"]] = port
        assert sorted(running) == sorted(wanted), f"bridge {name}: ports differ"
        for pname, spec in wanted.items():
            port = running[pname]
            members = [ifaces[ref] for ref in as_list(port["interfaces"])]
            if "interfaces" in spec:  # a bond: its members, one of them active
                names = sorted(i["name"] for i in members)
                assert names == sorted(spec["interfaces"]), f"{pname}: bond members {names}"
                assert scalar(port["bond_active_slave"]), f"{pname}: no active bond member"
            iface = members[0]
            assert scalar(port["tag"]) == spec.get("tag"), f"{pname}: tag"
            assert as_list(port["trunks"]) == sorted(spec.get("trunks", [])), f"{pname}: trunks"
            if "vlan_mode" in spec:
                assert scalar(port["vlan_mode"]) == spec["vlan_mode"], f"{pname}: vlan_mode"
            assert (scalar(iface["type"]) or "") == spec.get("type", ""), f"{pname}: type"
            options = as_map(iface["options"])
            for key, value in (spec.get("options") or {}).items():
                assert options.get(key) == str(value), f"{pname}: options:{key}"
            for member in members:
                assert not scalar(member["error"]), f"{pname}: {scalar(member['error'])}"


def test_bridged_devices_do_not_answer_arp_for_the_host(host: Any) -> None:
    """A system device in a bridge answers ARP only for its own addresses (none), so
    the host's addresses are reached through the bridge port (kernel_arp_guard)."""
    devices = [i["name"] for i in ovsr_json(host, "list", "Interface") if not i["type"]]
    assert devices, "no system devices in any bridge"
    for device in devices:
        setting = host.file(f"/proc/sys/net/ipv4/conf/{device}/arp_ignore").content_string
        assert int(setting) in (1, 2, 8), f"{device}: arp_ignore={setting.strip()}"


def test_tunnels_up(host: Any) -> None:
    tunnels = [i for i in ovsr_json(host, "list", "Interface") if i["type"] in ("vxlan", "geneve")]
    down = [i["name"] for i in tunnels if scalar(i["link_state"]) != "up"]
    assert not down, f"tunnels down: {down}"


def test_reachability_matrix_as_declared(host: Any, inventory: list[str]) -> None:
    v = host_vars(inventory, host_name(host))
    guests = (v.get("lab_guests") or {}).get(host_name(host))
    if not guests:
        pytest.skip("this inventory declares no guests on this host")
    missing = [g for g in guests if not host.file(f"/run/netns/{g}").exists]
    assert not missing, f"declared guests {missing} do not exist (lab/guest.py makes them)"
    for guest, cidr in guests.items():
        own = cidr.split("/")[0]
        network = next(n for n, members in v["lab_networks"].items() if own in members)
        for address in v["lab_networks"][network]:
            if address == own:
                continue
            ping = host.run(f"nsenter --net=/run/netns/{guest} ping -c 2 -i 0.2 -W 1 {address}")
            assert ping.rc == 0, f"{guest} ({network}) cannot reach {address}"


def test_flow_rules_exactly_as_declared(host: Any, inventory: list[str]) -> None:
    from ovs_runtime.ofproto.flow_actions import format_actions
    from ovs_runtime.ofproto.flow_match import format_match
    from ovs_runtime.ofproto.flow_syntax import parse_rule

    declared = host_vars(inventory, host_name(host)).get("ovs_runtime_network_flows") or {}
    if not declared:
        pytest.skip("the inventory declares no flow rules for this host")
    for bridge, lines in declared.items():
        wanted = sorted(
            (r.table, r.priority, format_match(r.match), format_actions(r.actions))
            for r in map(parse_rule, lines)
        )
        running = sorted(
            (r["table"], r["priority"], r["match"], r["actions"])
            for r in ovsr_json(host, "dump-flows", bridge)
            if not r["implicit"]
        )
        assert running == wanted, f"bridge {bridge}: flow rules differ from the inventory"
