"""The product on a real fleet: Ansible over SSH against booted hosts, the overlay and
the VLAN trunks between them, and ovsr-fleet's operations (Fabric).

Logical networks (inventories/lab): tenant-a is VLAN 10 on every host, carried over the
VXLAN mesh (VNI 5010), with sw1 as the gateway for bare-metal bm1; tenant-b is VLAN 20,
carried over 802.1Q trunks through sw1, with bare-metal bm2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from pyroute2 import NetNS

from lab import fleet as lab_fleet
from lab.control import REPO, LabControl, changed_count
from tests.packaging.test_packages import build

TENANT_A = {"hv1": "198.51.100.131", "hv2": "198.51.100.132", "hv3": "198.51.100.133"}
TENANT_B = {"hv1": "198.51.100.193", "hv2": "198.51.100.194", "hv3": "198.51.100.195"}
BM1, BM2 = "198.51.100.140", "198.51.100.200"


def reaches(fleet: LabControl, host: str, guest: str, address: str) -> bool:
    return fleet.in_guest(host, guest, f"ping -c 2 -i 0.2 -W 1 {address}").returncode == 0


def test_a_second_converge_changes_nothing(deployed: LabControl) -> None:
    again = deployed.playbook("site.yml")
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed_count(again.stdout) == 0, again.stdout[-3000:]


def test_tenant_a_spans_the_hypervisors_over_vxlan_and_reaches_bare_metal(
    deployed: LabControl,
) -> None:
    for src in ("hv1", "hv2", "hv3"):
        for dst, address in TENANT_A.items():
            if dst != src:
                assert reaches(deployed, src, "vm1", address), f"{src} vm1 -> {dst} vm1"
        assert reaches(deployed, src, "vm1", BM1), f"{src} vm1 -> bare-metal bm1 via sw1"
    fdb = json.loads(deployed.ssh("hv1", "ovsr --format json fdb-show br-int").stdout)
    behind = {e["port_name"] for e in fdb if e["vlan"] == 10}
    assert {"vx5010-hv2", "vx5010-hv3", "vx5010-sw1"} <= behind, behind


def test_hypervisors_reach_the_switchs_vtep_through_its_bridge(deployed: LabControl) -> None:
    """Each hypervisor resolves sw1's tunnel address to a MAC behind sw1's bridge (vtep0,
    which holds the address, or the bridge's own port, whose kernel answers for every
    host address as on any OVS host), never to a front-panel port: the kernel does not
    answer ARP from bridged devices (kernel_arp_guard). It used to, and traffic to the
    VTEP then depended on that one cable. The entry is resolved afresh: one learned
    while sw1 booted, before its daemon took the ports, stays until it expires."""
    (switch,) = [h for h in lab_fleet.load_state() if h.name == "sw1"]
    interfaces = json.loads(
        deployed.ssh(
            "sw1", "ovsr --format json --columns=name,type,mac_in_use list Interface"
        ).stdout
    )
    front = {i["mac_in_use"][0] for i in interfaces if not i["type"] and i["mac_in_use"]}
    own = {
        deployed.ssh("sw1", f"cat /sys/class/net/{name}/address").stdout.strip()
        for name in ("vtep0", "br-int")
    }
    assert len(front) >= 8 and not front & own, (front, own)
    forget = (
        "from pyroute2 import IPRoute\n"
        "with IPRoute() as ipr:\n"
        f"    for n in ipr.get_neighbours(dst='{switch.underlay_ip}'):\n"
        f"        ipr.neigh('del', dst='{switch.underlay_ip}', ifindex=n['ifindex'])\n"
    )
    for hv in ("hv1", "hv2", "hv3"):
        deployed.ssh(hv, f'python3 -c "{forget}"')
        table = deployed.ssh(
            hv, f"ping -c 1 -W 1 {switch.underlay_ip} >/dev/null; cat /proc/net/arp"
        )
        macs = {
            fields[3]
            for fields in (line.split() for line in table.stdout.splitlines()[1:])
            if fields and fields[0] == switch.underlay_ip
        }
        assert len(macs) == 1 and macs <= own, (
            f"{hv} resolves {switch.underlay_ip} to {macs}: front-panel ports are {front}"
        )


def test_tenant_b_spans_the_rack_over_trunks_and_reaches_bare_metal(deployed: LabControl) -> None:
    for src in ("hv1", "hv2", "hv3"):
        for dst, address in TENANT_B.items():
            if dst != src:
                assert reaches(deployed, src, "vm2", address), f"{src} vm2 -> {dst} vm2"
        assert reaches(deployed, src, "vm2", BM2), f"{src} vm2 -> bare-metal bm2"
    fdb = json.loads(deployed.ssh("hv1", "ovsr --format json fdb-show br-int").stdout)
    assert any(e["vlan"] == 20 and e["port_name"] == "bond0" for e in fdb)


def set_switch_port(name: str, state: str) -> None:
    """Up or down on sw1's side of a cable (down: the hypervisor's end loses carrier)."""
    (switch,) = [h for h in lab_fleet.load_state() if h.name == "sw1"]
    with NetNS(switch.netns_path) as nsr:
        nsr.link("set", index=nsr.link_lookup(ifname=name)[0], state=state)


def test_pulling_the_active_uplink_cable_fails_over_the_bond(deployed: LabControl) -> None:
    """hv1's bond0 is eth1 (into sw1's swp1) and eth2 (into swp21). Pull the active
    cable while hv1's VMs ping bare metal every 10 ms, tenant-b over VLAN 20 and
    tenant-a over VXLAN to sw1's VTEP: the bond moves to the other cable, and its
    learning packets move the VM's MAC on sw1 at once. (Tenant-a once lost 4 s here:
    sw1's kernel had answered hv1's ARP for its VTEP from swp1, see kernel_arp_guard.)"""
    bond = json.loads(deployed.ssh("hv1", "ovsr --format json bond-show bond0").stdout)["bond0"]
    active = bond["active_member"]
    assert active in ("eth1", "eth2") and all(m["enabled"] for m in bond["members"].values())
    front = {"eth1": "swp1", "eth2": "swp21"}
    other = "eth2" if active == "eth1" else "eth1"
    hv1_fdb = json.loads(deployed.ssh("hv1", "ovsr --format json fdb-show br-int").stdout)
    (vm_mac,) = {e["mac"] for e in hv1_fdb if e["port_name"] == "vm2" and e["vlan"] == 20}
    out: dict[str, str] = {}

    def ping(guest: str, address: str) -> None:
        proc = deployed.in_guest(
            "hv1", guest, f"ping -q -i 0.01 -c 500 -W 1 {address}", check=False
        )
        out[guest] = proc.stdout

    pingers = [threading.Thread(target=ping, args=args) for args in (("vm2", BM2), ("vm1", BM1))]
    for pinger in pingers:
        pinger.start()
    time.sleep(1.5)
    set_switch_port(front[active], "down")
    try:
        lost = {}
        for pinger in pingers:
            pinger.join(60)
        for guest, text in sorted(out.items()):
            counts = re.search(r"(\d+) packets transmitted, (\d+) received", text)
            assert counts is not None, out
            lost[guest] = int(counts[1]) - int(counts[2])
            print(f"bond failover on hv1: {guest} lost {lost[guest]} of {counts[1]} pings at 10 ms")
        assert set(lost) == {"vm1", "vm2"}, out
        after = json.loads(deployed.ssh("hv1", "ovsr --format json bond-show bond0").stdout)
        assert after["bond0"]["active_member"] == other, after
        assert after["bond0"]["learning_packets"] > bond["learning_packets"]
        fdb = json.loads(deployed.ssh("sw1", "ovsr --format json fdb-show br-int").stdout)
        where = {e["port_name"] for e in fdb if e["mac"] == vm_mac and e["vlan"] == 20}
        assert where == {front[other]}, f"sw1 has hv1's VM behind {where}"
        assert all(n <= 50 for n in lost.values()), f"{lost} pings lost (over 0.5 s of traffic)"
        assert reaches(deployed, "hv1", "vm2", BM2)
    finally:
        set_switch_port(front[active], "up")
    # The cable is back: both members enabled again, and the rack reachable over both
    # tenants before the next test looks at it.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        bond = json.loads(deployed.ssh("hv1", "ovsr --format json bond-show bond0").stdout)
        settled = all(m["enabled"] for m in bond["bond0"]["members"].values())
        if (
            settled
            and reaches(deployed, "hv1", "vm2", BM2)
            and reaches(deployed, "hv1", "vm1", BM1)
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"the rack did not settle after the cable came back: {bond}")


def test_the_tenants_are_isolated(deployed: LabControl) -> None:
    # A tenant-b VM that takes a tenant-a address still cannot reach tenant-a: the
    # networks are apart at layer 2, not by addressing.
    deployed.guest_address("hv1", "vm2", "198.51.100.150/26", "add")
    try:
        assert not reaches(deployed, "hv1", "vm2", TENANT_A["hv2"])
        assert not reaches(deployed, "hv1", "vm2", BM1)
    finally:
        deployed.guest_address("hv1", "vm2", "198.51.100.150/26", "del")


def test_the_testinfra_suite_passes_against_the_lab(deployed: LabControl) -> None:
    """tests/infra, the host verification suite Molecule also runs, on every lab host."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REPO / "tests" / "infra"),
            "--hosts=ansible://all",
            f"--ansible-inventory={REPO / 'inventories' / 'lab'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"),
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    # 8 checks on 4 hosts; sw1 skips VM reachability (it hosts no VMs) and flow rules
    # (the lab declares none for it).
    assert re.search(r"\b30 passed, 2 skipped", proc.stdout), proc.stdout[-1000:]


def test_fleet_status_shows_every_host_and_its_tunnels(deployed: LabControl) -> None:
    proc = deployed.fleet_cli("--format", "json", "status")
    assert proc.returncode == 0, proc.stderr
    rows = {r["host"]: r for r in json.loads(proc.stdout)}
    assert sorted(rows) == ["hv1", "hv2", "hv3", "sw1"]
    for row in rows.values():
        assert row["service"] == "active" and row["version"] == "0.1.0"
        assert row["bridges"] == ["br-int"]
        assert row["tunnels"] == 3 and row["tunnels_up"] == 3, row
        assert row["fdb"] > 0
    table = deployed.fleet_cli("status").stdout
    assert re.search(r"hv1\s+active\s+0\.1\.0\s+br-int\s+3/3", table), table


def test_fleet_collect_pulls_state_and_logs(deployed: LabControl, tmp_path: Path) -> None:
    proc = deployed.fleet_cli("collect", str(tmp_path / "dump"))
    assert proc.returncode == 0, proc.stderr
    for host in ("hv1", "sw1"):
        folder = tmp_path / "dump" / host
        assert "Bridge br-int" in (folder / "ovsr-show.txt").read_text()
        assert "ovs-runtimed" in (folder / "journal.txt").read_text()
        assert json.loads((folder / "fdb-br-int.json").read_text())
        assert "[daemon]" in (folder / "ovs-runtimed.conf").read_text()


def test_fleet_migrate_moves_a_vm_and_the_fabric_relearns_at_once(deployed: LabControl) -> None:
    deployed.ssh("hv1", "ovsr add-port br-int mig tag=10 -- set Interface mig type=tap")
    deployed.guest("hv1", "mig", "mig", "198.51.100.150/26", 1450)
    assert reaches(deployed, "hv1", "mig", TENANT_A["hv2"])
    mac_text = deployed.ssh(
        "hv1",
        "python3 -c \"import pyroute2; n=pyroute2.NetNS('mig'); "
        "print(n.get_links(n.link_lookup(ifname='eth0')[0])[0].get_attr('IFLA_ADDRESS'))\"",
    ).stdout.strip()

    def location(host: str) -> str | None:
        fdb = json.loads(deployed.ssh(host, "ovsr --format json fdb-show br-int").stdout)
        return next((e["port_name"] for e in fdb if e["mac"] == mac_text and e["vlan"] == 10), None)

    assert location("hv2") == "vx5010-hv1"
    # Live migration: the VM is paused on hv1 (its NIC still plugged, so the state is
    # there to export), resumes on hv3 with the same MAC, and the source port goes.
    deployed.pause_guest("hv1", "mig")
    proc = deployed.fleet_cli("--format", "json", "migrate", "mig", "--from", "hv1", "--to", "hv3")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["announced"] >= 1 and summary["from"] == "hv1" and summary["to"] == "hv3"
    assert "mig" not in deployed.ssh("hv1", "ovsr list-ports br-int").stdout.split()
    deployed.ssh("hv1", "python3 -c \"from pyroute2 import netns; netns.remove('mig')\"")
    # The RARP from hv3 moved the MAC on hv2 and sw1 before the VM sent anything.
    deadline = time.monotonic() + 3
    while location("hv2") != "vx5010-hv3" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert location("hv2") == "vx5010-hv3"
    assert location("sw1") == "vx5010-hv3"
    deployed.guest("hv3", "mig", "mig", "198.51.100.150/26", 1450, mac_text)
    assert reaches(deployed, "hv2", "vm1", "198.51.100.150")


def test_fleet_rolling_restart_stops_at_the_first_unhealthy_host(deployed: LabControl) -> None:
    proc = deployed.fleet_cli("--limit", "hypervisors", "rolling-restart")
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == ["hv1", "hv2", "hv3"]
    # Break hv2's config: the roll-out restarts hv1, fails on hv2 and leaves hv3 alone.
    conf = "/etc/ovs-runtime/ovs-runtimed.conf"
    deployed.ssh(
        "hv2", f"cp {conf} /root/conf.bak && printf '[daemon]\\nlog_level = loud\\n' > {conf}"
    )
    hv3_pid = deployed.ssh("hv3", "systemctl show -p MainPID --value ovs-runtime").stdout
    try:
        failed = deployed.fleet_cli("--limit", "hypervisors", "rolling-restart", "--timeout", "5")
        assert failed.returncode == 1
        assert "hv2 is unhealthy" in failed.stderr and "1 host(s) not touched" in failed.stderr
        assert "log_level 'loud'" in failed.stderr  # the journal tail names the cause
        assert (
            deployed.ssh("hv3", "systemctl show -p MainPID --value ovs-runtime").stdout == hv3_pid
        )
    finally:
        deployed.ssh("hv2", f"cp /root/conf.bak {conf} && systemctl restart ovs-runtime")
    assert deployed.fleet_cli("status").returncode == 0


def test_fleet_refuses_unknown_hosts_and_bad_inventories(deployed: LabControl) -> None:
    proc = deployed.fleet_cli("migrate", "vm1", "--from", "hv1", "--to", "hv9")
    assert proc.returncode == 1 and "host 'hv9' is not in the inventory" in proc.stderr
    proc = deployed.fleet_cli("--limit", "nosuchgroup", "status")
    assert proc.returncode == 1 and "no hosts match 'nosuchgroup'" in proc.stderr


def test_rolling_upgrade_keeps_config_and_reports_lost_pings(
    deployed: LabControl, tmp_path: Path
) -> None:
    """Last: the fleet moves to a newer build with playbooks/upgrade.yml while a tenant-a
    VM on hv1 pings one on hv2 every 10 ms, over the VXLAN mesh."""
    deb, _ = build(tmp_path, version="0.1.1")
    before = {h: deployed.ssh(h, "ovsr show").stdout for h in ("sw1", "hv1", "hv2", "hv3")}
    ping = subprocess.Popen(
        [
            *deployed.ssh_argv(),
            "root@198.51.100.11",
            f"nsenter --net=/run/netns/vm1 ping -i 0.01 -W 1 {TENANT_A['hv2']}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        started = time.monotonic()
        upgrade = deployed.playbook(
            "upgrade.yml",
            "-e",
            f"ovs_runtime_install_package_dir={deb.parent}",
            "-e",
            "ovs_runtime_install_version=0.1.1",
        )
        took = time.monotonic() - started
        time.sleep(1)
    finally:
        deployed.ssh("hv1", "pkill -INT -f 'ping -i 0.01'", check=False)
        out, _ = ping.communicate(timeout=30)
    assert upgrade.returncode == 0, upgrade.stdout[-4000:]
    summary = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert summary, out[-2000:]
    sent, received = int(summary.group(1)), int(summary.group(2))
    lost = sent - received
    print(f"rolling upgrade of 4 hosts in {took:.0f} s: {lost} of {sent} pings lost (10 ms)")
    assert sent > 1000
    assert lost <= sent * 0.05, f"{lost} of {sent} pings lost"
    for host, shown in before.items():
        assert deployed.ssh(host, "ovsr show").stdout == shown.replace(
            'ovs_version: "0.1.0"', 'ovs_version: "0.1.1"'
        ), f"{host}: configuration changed across the upgrade"
    assert "0.1.1" in deployed.ssh("hv3", "dpkg-query -W -f='${Version}' ovs-runtime").stdout
