"""Port mirroring with real frames: a SPAN mirror set up with the real ``ovs-vsctl``
copies one VM's traffic to an analyzer namespace, with counters in ``Mirror.statistics``;
mirrors that could not work are refused whole."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import apply_bridge
from tests.netns_lab import NetnsLab

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-vsctl") is None, reason="ovs-vsctl missing: run `make deps`"
)


def vsctl(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ovs-vsctl", f"--db={daemon.db}", "--timeout=20", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_span_mirror_copies_one_vms_traffic_to_the_analyzer(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    a = lab.add_host("a", ip="198.51.100.1/24")
    b = lab.add_host("b", ip="198.51.100.2/24")
    c = lab.add_host("c", ip="198.51.100.3/24")
    d = lab.add_host("d", ip="198.51.100.4/24")
    span = lab.add_host("span")
    ports = {a.switch_port: {"tag": 10}, b.switch_port: {"tag": 10}}
    ports |= {c.switch_port: {"tag": 20}, d.switch_port: {"tag": 20}, span.switch_port: {}}
    apply_bridge(switch, tmp_path, "br0", ports)
    made = vsctl(
        switch,
        *("--", "--id=@a", "get", "Port", a.switch_port),
        *("--", "--id=@out", "get", "Port", span.switch_port),
        *("--", "--id=@m", "create", "Mirror", "name=m0", "select-src-port=@a"),
        "select-dst-port=@a",
        "output-port=@out",
        *("--", "set", "Bridge", "br0", "mirrors=@m"),
    )
    assert made.returncode == 0, made.stderr
    capture = lab.raw_socket("span")
    try:
        capture.drain(0.3)
        assert lab.ping("a", "198.51.100.2", count=3)
        assert lab.ping("c", "198.51.100.4", count=3)
        frames = capture.drain(0.3)
    finally:
        capture.close()
    icmp = [f for f in frames if f[16:18] == b"\x08\x00" and f[27] == 1]  # tagged IPv4 ICMP
    sources = {f[30:34] for f in icmp}
    assert bytes([198, 51, 100, 1]) in sources and bytes([198, 51, 100, 2]) in sources
    assert all(f[12:14] == b"\x81\x00" and f[15] == 10 for f in icmp), "tagged with VLAN 10"
    assert bytes([198, 51, 100, 3]) not in sources, "VLAN 20 traffic is not mirrored"
    deadline = time.monotonic() + 5
    stats: dict[str, int] = {}
    while time.monotonic() < deadline:
        rows = json.loads(switch.ovsr("--format", "json", "list", "Mirror").stdout)
        stats = dict(rows[0]["statistics"])
        if stats.get("tx_packets", 0) >= 6:
            break
        time.sleep(0.2)
    assert stats["tx_packets"] >= 6 and stats["tx_bytes"] > 0, stats


def test_mirrors_that_cannot_work_are_refused(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    a = lab.add_host("a")
    apply_bridge(switch, tmp_path, "br0", {a.switch_port: {}})
    apply_bridge(switch, tmp_path, "br1", {})
    no_output = vsctl(
        switch,
        "--",
        "--id=@m",
        "create",
        "Mirror",
        "name=m0",
        "select-all=true",
        "--",
        "set",
        "Bridge",
        "br0",
        "mirrors=@m",
    )
    assert no_output.returncode != 0 and "give exactly one of output_port" in no_output.stderr
    elsewhere = vsctl(
        switch,
        "--",
        "--id=@p",
        "get",
        "Port",
        a.switch_port,
        "--",
        "--id=@m",
        "create",
        "Mirror",
        "name=m1",
        "select-all=true",
        "output-port=@p",
        "--",
        "set",
        "Bridge",
        "br1",
        "mirrors=@m",
    )
    assert elsewhere.returncode != 0 and "must be a port of bridge br1" in elsewhere.stderr
    assert json.loads(switch.ovsr("--format", "json", "list", "Mirror").stdout) == []


def test_mirrors_in_a_desired_state_file(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    a, span = lab.add_host("a"), lab.add_host("span")
    doc = {
        "bridges": {
            "br0": {
                "ports": {a.switch_port: {"tag": 10}, span.switch_port: {}},
                "mirrors": {
                    "m0": {
                        "select_src_port": [a.switch_port],
                        "select_vlan": ["10"],
                        "output_port": span.switch_port,
                    },
                },
            }
        }
    }
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(doc))
    first = switch.ovsr("apply", "--state=replaced", str(path))
    assert first.returncode == 2 and "+ mirror br0/m0" in first.stdout, first.stdout + first.stderr
    again = switch.ovsr("apply", "--state=replaced", str(path))
    assert again.returncode == 0, again.stdout  # "10" vs 10 normalised: no change
    rows = json.loads(switch.ovsr("--format", "json", "list", "Mirror").stdout)
    assert [r["name"] for r in rows] == ["m0"] and rows[0]["select_vlan"] == [10]

    doc["bridges"]["br0"]["mirrors"]["m0"]["output_port"] = "nosuchport"
    path.write_text(json.dumps(doc))
    bad = switch.ovsr("apply", "--state=replaced", str(path))
    assert bad.returncode == 1 and "nosuchport is not a port of bridge br0" in bad.stderr
    doc["bridges"]["br0"]["mirrors"] = {}
    path.write_text(json.dumps(doc))
    assert switch.ovsr("apply", "--state=replaced", str(path)).returncode == 2
    assert json.loads(switch.ovsr("--format", "json", "list", "Mirror").stdout) == []
