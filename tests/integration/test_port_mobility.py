"""VM state mobility (``ovsr port-export`` / ``port-import``) between two real switches,
each a daemon in its own namespace ("host"), joined by a trunk. The VM is a namespace
whose veth moves from host A to host B, as a migrated VM's NIC does."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pyroute2 import NetNS

from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import wait_attached
from tests.netns_lab import NetnsLab

VM_IP, PEER_IP = "198.51.100.10", "198.51.100.20"


class TwoHosts:
    def __init__(self, lab: NetnsLab, tmp: Path) -> None:
        self.lab, self.tmp = lab, tmp
        self.ns = {h: lab.add_namespace(h) for h in ("ha", "hb")}
        lab.wire(self.ns["ha"], "up0", self.ns["hb"], "up0")
        self.vm = lab.add_host("vm", ip=f"{VM_IP}/24")
        self.peer = lab.add_host("peer", ip=f"{PEER_IP}/24")
        self.obs = lab.add_host("obs")
        lab.move_link(self.vm.switch_port, "/proc/self/ns/net", self.ns["ha"])
        lab.move_link(self.peer.switch_port, "/proc/self/ns/net", self.ns["ha"])
        lab.move_link(self.obs.switch_port, "/proc/self/ns/net", self.ns["hb"])
        self.daemons = {
            h: DaemonProcess(tmp / h, extra_args=(), netns=ns).start() for h, ns in self.ns.items()
        }

    def apply(self, host: str, ports: dict[str, object]) -> None:
        path = self.tmp / f"{host}.yaml"
        path.write_text(yaml.safe_dump({"bridges": {"br0": {"ports": ports}}}))
        proc = self.daemons[host].ovsr("apply", str(path))
        assert proc.returncode in (0, 2), proc.stderr
        wait_attached(self.daemons[host], list(ports))

    def fdb(self, host: str) -> dict[tuple[str, int], str]:
        proc = self.daemons[host].ovsr("--format", "json", "fdb-show", "br0")
        return {(e["mac"], e["vlan"]): e["port_name"] for e in json.loads(proc.stdout)}

    def stop(self) -> None:
        for daemon in self.daemons.values():
            daemon.stop()
            print(daemon.log()[-2000:])


@pytest.fixture
def hosts(lab: NetnsLab, tmp_path: Path) -> Iterator[TwoHosts]:
    pair = TwoHosts(lab, tmp_path)
    try:
        yield pair
    finally:
        pair.stop()


def vm_mac(lab: NetnsLab) -> str:
    with NetNS(lab.hosts["vm"].ns) as nsr:
        link = nsr.get_links(nsr.link_lookup(ifname="eth0")[0])[0]
        return str(link.get_attr("IFLA_ADDRESS"))


def test_a_vm_port_moves_with_its_state_and_is_announced(
    hosts: TwoHosts, lab: NetnsLab, tmp_path: Path
) -> None:
    vm_port, peer_port = hosts.vm.switch_port, hosts.peer.switch_port
    obs_port = hosts.obs.switch_port
    trunk = {"trunks": [10, 20]}
    vm_config = {"tag": 10, "external_ids": {"vm-id": "vm-42"}, "other_config": {"owner": "t"}}
    hosts.apply("ha", {vm_port: vm_config, peer_port: {"tag": 10}, "up0": trunk})
    hosts.apply("hb", {obs_port: {"tag": 10}, "up0": trunk})
    # An RSPAN mirror named "audit" on each host; on A it selects the VM's traffic.
    for host in ("ha", "hb"):
        selects = {"select_src_port": [vm_port]} if host == "ha" else {}
        doc = {"bridges": {"br0": {"mirrors": {"audit": {**selects, "output_vlan": 99}}}}}
        path = tmp_path / f"mirror-{host}.yaml"
        path.write_text(yaml.safe_dump(doc))
        made = hosts.daemons[host].ovsr("apply", str(path))
        assert made.returncode in (0, 2), made.stderr
    assert lab.ping("vm", PEER_IP)
    mac = vm_mac(lab)
    assert hosts.fdb("ha")[(mac, 10)] == vm_port
    # Port security, a rule that matches on the port, and QoS: all must follow the VM.
    a = hosts.daemons["ha"]
    security = f'port_security="{mac} {VM_IP}"'
    qos = (
        f"set Port {vm_port} qos=@q -- --id=@q create QoS type=linux-htb "
        "other_config:max-rate=100000000 queues:1=@q1 -- --id=@q1 create Queue "
        "other_config:max-rate=10000000"
    )
    assert a.ovsr("set", "Port", vm_port, security).returncode == 0
    assert a.ovsr(*qos.split()).returncode == 0
    rule = f"priority=100,in_port={vm_port},udp,tp_dst=9 actions=drop"
    assert a.ovsr("add-flow", "br0", rule).returncode == 0
    assert lab.ping("vm", PEER_IP), "the VM's own address passes port security"

    exported = hosts.daemons["ha"].ovsr("port-export", vm_port)
    assert exported.returncode == 0, exported.stderr
    doc = json.loads(exported.stdout)
    assert doc["format"] == "ovs-runtime/port" and doc["version"] == 2
    assert doc["port"]["tag"] == 10
    assert doc["flows"] == [f"priority=100,udp,in_port={vm_port},tp_dst=9 actions=drop"]
    assert doc["qos"]["queues"]["1"] == {"other_config": {"max-rate": "10000000"}}
    assert doc["mirrors"] == {"audit": ["select_src_port"]}
    assert doc["port"]["external_ids"] == ["map", [["vm-id", "vm-42"]]]
    assert {"mac": mac, "vlan": 10} in doc["learned_macs"]
    assert doc["statistics"][vm_port]["rx_packets"] > 0
    path = tmp_path / "vm.json"
    path.write_text(exported.stdout)

    # The VM stops on A and its NIC reappears on B (the VM itself stays silent).
    assert hosts.daemons["ha"].ovsr("del-port", "br0", vm_port).returncode == 0
    lab.move_link(vm_port, hosts.ns["ha"], hosts.ns["hb"])
    obs = lab.raw_socket("obs")
    try:
        obs.drain(0)
        imported = hosts.daemons["hb"].ovsr("--format", "json", "port-import", str(path))
        assert imported.returncode == 0, imported.stderr
        summary = json.loads(imported.stdout)
        assert summary["announced"] == 1 and summary["ofport"] >= 1
        frames = obs.drain(0.3)
    finally:
        obs.close()
    source = bytes.fromhex(mac.replace(":", ""))
    rarp = [f for f in frames if f[12:14] == b"\x80\x35" and f[6:12] == source]
    assert rarp, "the observer on B's VLAN 10 heard the RARP announcement"

    # Both switches relearned the MAC at once, with no frame from the VM.
    assert hosts.fdb("hb")[(mac, 10)] == vm_port
    deadline = time.monotonic() + 2
    while hosts.fdb("ha").get((mac, 10)) != "up0" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hosts.fdb("ha")[(mac, 10)] == "up0"

    # The port's configuration came along, and the VM is reachable at its new home.
    listed = hosts.daemons["hb"].ovsr(
        "--format", "json", "--columns=tag,external_ids,other_config", "list", "Port", vm_port
    )
    row = json.loads(listed.stdout)[0]
    assert row["tag"] == [10] or row["tag"] == 10
    assert "vm-42" in json.dumps(row["external_ids"])
    assert lab.ping("peer", VM_IP)
    b = hosts.daemons["hb"]
    assert (
        json.loads(b.ovsr("--format", "json", "dump-flows", "br0", f"in_port={vm_port}").stdout)[0][
            "actions"
        ]
        == "drop"
    )
    mirrors = json.loads(b.ovsr("--format", "json", "list", "Mirror").stdout)
    (mirror,) = [m for m in mirrors if m["name"] == "audit"]
    ports = {
        p["_uuid"]: p["name"] for p in json.loads(b.ovsr("--format", "json", "list", "Port").stdout)
    }
    selected = mirror["select_src_port"]
    selected = selected if isinstance(selected, list) else [selected]
    assert [ports[u] for u in selected] == [vm_port], "mirror membership came along"
    classes = json.loads(b.ovsr("--format", "json", "qos-show", vm_port).stdout)["classes"]
    assert {c["class"] for c in classes} == {"1:fffe", "1:1", "1:2"}, classes  # queues 0, 1
    # ... and in force on B: the rule drops the VM's UDP to port 9, port security its
    # spoofed frames, while the rest still reaches the observer.
    from ovs_runtime.ofproto import flow_key as fk
    from ovs_runtime.packet.synthesize import build_frame

    vm_mac_int = int(mac.replace(":", ""), 16)
    base = {
        fk.DL_SRC: vm_mac_int,
        fk.DL_DST: 0xFFFFFFFFFFFF,
        fk.DL_TYPE: fk.ETH_IP,
        fk.NW_PROTO: 17,
    }
    vm_ip = int.from_bytes(bytes(map(int, VM_IP.split("."))), "big")
    frames = {
        b"to-port-9": {**base, fk.NW_SRC: vm_ip, fk.TP_DST: 9},
        b"spoofed-ip": {**base, fk.NW_SRC: vm_ip + 1, fk.TP_DST: 7},
        b"legitimate": {**base, fk.NW_SRC: vm_ip, fk.TP_DST: 7},
    }
    sender, obs = lab.raw_socket("vm"), lab.raw_socket("obs")
    try:
        obs.drain(0)
        for marker, values in frames.items():
            sender.send(build_frame(values, payload=marker))
        seen = obs.drain(0.4)
    finally:
        sender.close()
        obs.close()
    got = {m for m in frames if any(m in f for f in seen)}
    assert got == {b"legitimate"}, got


def test_bad_port_documents_are_refused_before_anything_changes(
    hosts: TwoHosts, tmp_path: Path
) -> None:
    hosts.apply("hb", {"up0": {}})
    daemon = hosts.daemons["hb"]
    before = daemon.ovsr("--format", "json", "list", "Port").stdout
    cases = {
        "not-json.json": ("{", "is not JSON"),
        "wrong.json": (json.dumps({"format": "x"}), "not a port document"),
        "future.json": (json.dumps({"format": "ovs-runtime/port", "version": 9}), "version 9"),
        "column.json": (
            json.dumps(
                {
                    "format": "ovs-runtime/port",
                    "version": 1,
                    "port": {"name": "p", "ofport": 3},
                    "interfaces": [{"name": "p"}],
                }
            ),
            "cannot be imported",
        ),
        "bad-tag.json": (
            json.dumps(
                {
                    "format": "ovs-runtime/port",
                    "version": 1,
                    "port": {"name": "p", "tag": 5000},
                    "interfaces": [{"name": "p"}],
                    "source": {"bridge": "br0"},
                }
            ),
            "5000",
        ),
        "exists.json": (
            json.dumps(
                {
                    "format": "ovs-runtime/port",
                    "version": 1,
                    "port": {"name": "up0"},
                    "interfaces": [{"name": "up0"}],
                    "source": {"bridge": "br0"},
                }
            ),
            "already exists",
        ),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        proc = daemon.ovsr("port-import", str(path))
        assert proc.returncode == 1 and message in proc.stderr, (name, proc.stderr)
    assert daemon.ovsr("port-import", str(tmp_path / "gone.json")).returncode == 1
    assert daemon.ovsr("--format", "json", "list", "Port").stdout == before
