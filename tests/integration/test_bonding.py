"""Active-backup bonds on real veths: a host on br0, and a bond of two links to an
"upstream" namespace whose two interfaces share one MAC and one address (as a switch's
two ports reach the same server). Pings cross the bond; pulling the active link's
cable (its peer set down) moves traffic to the other within the carrier poll, with a
RARP learning packet for the host's MAC on the new link; frames arriving on the backup
link never reach the host; the primary takes traffic back when its link returns."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from pyroute2 import IPRoute, NetNS

from ovs_runtime.datapath.link_events import LinkEvents
from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import wait_attached
from tests.netns_lab import NetnsLab, RawPort, in_namespace

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")
NET = "198.51.100."
UPSTREAM_MAC = "02:00:5e:00:53:02"


def bond_links(lab: NetnsLab, upstream: str) -> tuple[str, str]:
    """Two veth pairs: m1/m2 here (the bond's members), u1/u2 in ``upstream`` with one
    MAC and one address between them."""
    members = (f"{lab.prefix}m1", f"{lab.prefix}m2")
    with IPRoute() as ipr:
        for n, member in enumerate(members, 1):
            peer = f"{lab.prefix}u{n}"
            ipr.link("add", ifname=member, kind="veth", peer=peer)
            lab.links.append(member)
            ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_fd=upstream)
            ipr.link("set", index=ipr.link_lookup(ifname=member)[0], state="up")
    with NetNS(upstream) as nsr:
        for n in (1, 2):
            idx = nsr.link_lookup(ifname=f"{lab.prefix}u{n}")[0]
            nsr.link("set", index=idx, ifname=f"u{n}", address=UPSTREAM_MAC, state="up")
            nsr.addr("add", index=idx, address=f"{NET}2", prefixlen=24)
        nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
    return members


def set_upstream_link(lab: NetnsLab, name: str, state: str) -> None:
    with NetNS(lab.hosts["up"].ns) as nsr:
        nsr.link("set", index=nsr.link_lookup(ifname=name)[0], state=state)


def port_row(switch: DaemonProcess, name: str) -> dict[str, object]:
    out = switch.ovsr("--format", "json", "list", "Port", name)
    assert out.returncode == 0, out.stderr
    row: dict[str, object] = json.loads(out.stdout)[0]
    return row


def mac_of(device: str) -> str:
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ipr.link_lookup(ifname=device)[0])
        return str(link.get_attr("IFLA_ADDRESS"))


def wait_for_active(switch: DaemonProcess, mac: str, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if port_row(switch, "bond0")["bond_active_slave"] in (mac, [mac]):
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"bond_active_slave never became {mac}: {port_row(switch, 'bond0')}")


def marked_broadcast(src: str, mark: bytes) -> bytes:
    return b"\xff" * 6 + bytes.fromhex(src.replace(":", "")) + b"\x88\xb5" + mark.ljust(46, b".")


def test_active_backup_bond_fails_over_with_learning_packets(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    host = lab.add_host("h1", f"{NET}1")
    upstream = lab.add_namespace("up")
    m1, m2 = bond_links(lab, upstream)
    made = switch.ovsr(
        "add-br", "br0", "--", "add-port", "br0", host.switch_port,
        "--", "add-bond", "br0", "bond0", m1, m2,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    wait_attached(switch, [host.switch_port, m1, m2])
    wait_for_active(switch, mac_of(m1))
    assert lab.ping("h1", f"{NET}2"), "across the bond's active link"

    # Frames from the upstream side reach the host only over the active link.
    host_raw = lab.raw_socket("h1")
    u1, u2 = RawPort(upstream, "u1"), RawPort(upstream, "u2")
    try:
        host_raw.drain(0)
        u2.send(marked_broadcast("02:00:5e:00:53:77", b"over-the-backup"))
        u1.send(marked_broadcast("02:00:5e:00:53:78", b"over-the-active"))
        seen = [f[14:30] for f in host_raw.drain(0.3) if f[12:14] == b"\x88\xb5"]
        assert seen == [b"over-the-active."], seen
        dpif = json.loads(switch.ovsr("--format", "json", "dpif-show").stdout)
        assert dpif["bridges"]["br0"]["drops"]["bond-backup-member"] >= 1

        # Pull the active link's cable while pinging every 10 ms.
        u2.drain(0)
        pinger = lab.popen("h1", "ping", "-i", "0.01", "-c", "400", "-W", "1", f"{NET}2")
        time.sleep(1.0)
        set_upstream_link(lab, "u1", "down")
        took = wait_for_active(switch, mac_of(m2))
        out, _ = pinger.communicate(timeout=30)
        counts = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert counts is not None, out
        sent, received = int(counts[1]), int(counts[2])
        lost = sent - received
        print(f"failover: seen {took:.2f} s after the cable; lost {lost} of {sent} pings (10 ms)")
        assert lost <= 40, f"{lost} pings lost in the failover (more than 0.4 s of traffic)"
        rarps = [f for f in u2.drain(0.2) if f[12:14] == b"\x80\x35"]
        assert any(f[6:12] == bytes.fromhex(host_mac(lab).replace(":", "")) for f in rarps), (
            "a RARP learning packet for the host's MAC came out of the new active link"
        )
        assert lab.ping("h1", f"{NET}2"), "over the backup link, now active"
        shown = switch.ovsr("bond-show", "bond0").stdout
        assert f"member {m2}: enabled\n  active member" in shown, shown
        assert f"member {m1}: disabled" in shown, shown

        # Switching by hand to a member without carrier is refused, naming it.
        refused = switch.ovsr("bond-set-active", "bond0", m1)
        assert refused.returncode != 0 and f"member {m1} is disabled" in refused.stderr

        # The primary takes traffic back once its link is up again.
        ok = switch.ovsr("set", "Port", "bond0", f"other_config:bond-primary={m1}")
        assert ok.returncode == 0, ok.stderr
        set_upstream_link(lab, "u1", "up")
        wait_for_active(switch, mac_of(m1))
        u1.close()  # it holds the "network is down" of the pulled cable
        u1 = RawPort(upstream, "u1")
        host_raw.send(marked_broadcast(host_mac(lab), b"after-recovery"))
        back = [f[14:30] for f in u1.drain(0.3) if f[12:14] == b"\x88\xb5"]
        assert back == [b"after-recovery.."], back

        # And by hand: refused while an enabled primary would take traffic back at once;
        # without one, traffic moves to the member named, learning packets included.
        held = switch.ovsr("bond-set-active", "bond0", m2)
        assert held.returncode != 0 and f"primary {m1} is enabled" in held.stderr, held.stderr
        cleared = switch.ovsr("remove", "Port", "bond0", "other_config", "bond-primary")
        assert cleared.returncode == 0, cleared.stderr
        u2.drain(0)
        moved = switch.ovsr("bond-set-active", "bond0", m2)
        assert moved.returncode == 0 and f"member {m2}: enabled\n  active member" in moved.stdout
        wait_for_active(switch, mac_of(m2))
        rarps = [f for f in u2.drain(0.3) if f[12:14] == b"\x80\x35"]
        assert any(f[6:12] == bytes.fromhex(host_mac(lab).replace(":", "")) for f in rarps)
    finally:
        for sock in (host_raw, u1, u2):
            sock.close()


def host_mac(lab: NetnsLab) -> str:
    with NetNS(lab.hosts["h1"].ns) as nsr:
        (link,) = nsr.get_links(nsr.link_lookup(ifname="eth0")[0])
        return str(link.get_attr("IFLA_ADDRESS"))


def test_bad_bond_settings_are_refused_and_change_nothing(daemon: DaemonProcess) -> None:
    switch = daemon
    ok = switch.ovsr("add-br", "br0", "--", "add-bond", "br0", "bond0", "p1", "p2")
    assert ok.returncode == 0, ok.stderr
    bad = switch.ovsr(
        "set", "Port", "bond0", "bond_updelay=100", "--",
        "set", "Port", "bond0", "bond_mode=balance-slb",
    )  # fmt: skip
    assert bad.returncode != 0
    assert "Port bond0" in bad.stderr and "only active-backup bonds" in bad.stderr, bad.stderr
    assert port_row(switch, "bond0")["bond_updelay"] == 0, "all or nothing"
    one = switch.ovsr("add-bond", "br0", "bond1", "p3")
    assert one.returncode != 0 and "at least two interfaces" in one.stderr, one.stderr
    again = switch.ovsr("--may-exist", "add-bond", "br0", "bond0", "p1", "p2")
    assert again.returncode == 0, again.stderr
    other = switch.ovsr("--may-exist", "add-bond", "br0", "bond0", "p1", "p3")
    assert other.returncode != 0 and "but has interfaces p1, p2, not p1, p3" in other.stderr


def test_flow_rules_name_a_bonds_interfaces(daemon: DaemonProcess) -> None:
    """As in OVS, rules name OpenFlow ports: a bond's members, not the bond."""
    ok = daemon.ovsr("add-br", "br0", "--", "add-bond", "br0", "bond0", "p1", "p2")
    assert ok.returncode == 0, ok.stderr
    for rule in ("in_port=p1,actions=drop", "priority=5,in_port=p2,actions=output:p1"):
        added = daemon.ovsr("add-flow", "br0", rule)
        assert added.returncode == 0, (rule, added.stderr)
    bad = daemon.ovsr("add-flow", "br0", "in_port=bond0,actions=drop")
    assert bad.returncode != 0 and "no port 'bond0'" in bad.stderr, bad.stderr
    assert "p1" in bad.stderr and "p2" in bad.stderr, "the message lists what would do"


@pytest.mark.skipif(shutil.which("ovs-vsctl") is None, reason="needs ovs-vsctl")
def test_the_real_ovs_vsctl_makes_a_bond(daemon: DaemonProcess) -> None:
    switch = daemon

    def vsctl(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["ovs-vsctl", f"--db={switch.db}", "--timeout=20", "--no-wait", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)

    assert vsctl("add-br", "br0").returncode == 0
    made = vsctl("add-bond", "br0", "bond0", "p1", "p2", "bond_updelay=200")
    assert made.returncode == 0, made.stderr
    row = port_row(switch, "bond0")
    assert row["bond_updelay"] == 200 and len(row["interfaces"]) == 2  # type: ignore[arg-type]
    refused = vsctl("set", "Port", "bond0", "lacp=active", "other_config:lacp-time=medium")
    assert refused.returncode != 0 and "lacp-time=medium: must be fast or slow" in refused.stderr


def apply_doc(
    daemon: DaemonProcess, tmp_path: Path, doc: str, *opts: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "desired.yaml"
    path.write_text(doc)
    return daemon.ovsr("apply", *opts, str(path))


def interface_names(daemon: DaemonProcess, port: str) -> list[str]:
    uuids = json.loads(daemon.ovsr("--format", "json", "get", "Port", port, "interfaces").stdout)
    rows = json.loads(
        daemon.ovsr("--format", "json", "--columns=_uuid,name", "list", "Interface").stdout
    )
    by_uuid = {r["_uuid"]: r["name"] for r in rows}
    members = uuids if isinstance(uuids, list) else [uuids]
    return sorted(by_uuid[u] for u in members)


BOND_DOC = """
bridges:
  br0:
    ports:
      vm1: {tag: 10}
      bond0:
        interfaces: [p2, p1]
        bond_updelay: 200
        other_config: {bond-primary: p1}
"""


def test_apply_declares_bonds_idempotently(daemon: DaemonProcess, tmp_path: Path) -> None:
    first = apply_doc(daemon, tmp_path, BOND_DOC)
    assert first.returncode == 2, first.stderr
    assert apply_doc(daemon, tmp_path, BOND_DOC).returncode == 0, "a second run changes nothing"
    assert interface_names(daemon, "bond0") == ["p1", "p2"]
    assert port_row(daemon, "bond0")["bond_updelay"] == 200
    shown = json.loads(
        daemon.ovsr("--format", "json", "apply", "--check", str(tmp_path / "desired.yaml")).stdout
    )
    assert shown["before"]["br0"]["ports"]["bond0"]["interfaces"] == ["p1", "p2"]

    swapped = apply_doc(daemon, tmp_path, BOND_DOC.replace("[p2, p1]", "[p1, p3]"))
    assert swapped.returncode == 2, swapped.stderr
    assert interface_names(daemon, "bond0") == ["p1", "p3"]
    names = json.loads(
        daemon.ovsr("--format", "json", "--columns=name", "list", "Interface").stdout
    )
    assert "p2" not in {r["name"] for r in names}, "the member taken out is gone"

    merged = "bridges:\n  br0:\n    ports:\n      bond0: {tag: 20}\n"
    assert apply_doc(daemon, tmp_path, merged).returncode == 2
    assert interface_names(daemon, "bond0") == ["p1", "p3"], "merged leaves the members alone"
    assert port_row(daemon, "bond0")["bond_updelay"] == 200
    tuned = "bridges:\n  br0:\n    ports:\n      bond0: {bond_updelay: 300}\n"
    assert apply_doc(daemon, tmp_path, tuned).returncode == 2
    assert port_row(daemon, "bond0")["bond_updelay"] == 300, "a bond setting alone, merged"
    assert interface_names(daemon, "bond0") == ["p1", "p3"]
    plain = "bridges:\n  br0:\n    ports:\n      vm1: {tag: 10}\n      bond0: {}\n"
    assert apply_doc(daemon, tmp_path, plain, "--state=replaced").returncode == 2
    assert interface_names(daemon, "bond0") == ["bond0"], "an ordinary port again"
    assert port_row(daemon, "bond0")["bond_updelay"] == 0


def test_apply_refuses_bad_bonds_changing_nothing(daemon: DaemonProcess, tmp_path: Path) -> None:
    assert apply_doc(daemon, tmp_path, BOND_DOC).returncode == 2
    assert daemon.ovsr("add-port", "br0", "other").returncode == 0
    before = daemon.ovsr("--format", "json", "show").stdout
    port = "bridges:\n  br0:\n    ports:\n      bond0: {%s}\n"
    cases = [
        (port % "interfaces: [p1]", "a bond needs at least two interfaces (got 1)"),
        (port % "interfaces: [p1, p1]", "an interface is listed twice"),
        (port % "interfaces: [p1, p2], bond_mode: balance-slb", "only active-backup bonds"),
        (port % "interfaces: [p1, p2], lacp: on", "lacp"),
        (port % "interfaces: [p1, p2], bond_downdelay: -5", "must be 0 to 3600000"),
        (port % "interfaces: [p1, p2], type: internal", "type cannot be given with interfaces"),
        (
            "bridges:\n  br0:\n    ports:\n      other: {bond_updelay: 100}\n",
            "other: bond_updelay apply to bonds only",
        ),
        (port % "mtu_request: 9000", "mtu_request cannot be set on a bond here"),
        (port % "bond_updelay: -1", "bond_updelay=-1: must be 0 to 3600000"),
        (port % "interfaces: [p1, 'a/b']", "not a valid name"),
        (port % "interfaces: [p1, other]", "interface other already belongs to another port"),
        (
            port % "interfaces: [p1, p2]" + "      bond1: {interfaces: [p2, p4]}\n",
            "p2 is also listed under bridge br0 port bond0",
        ),
    ]
    for doc, message in cases:
        proc = apply_doc(daemon, tmp_path, doc)
        assert proc.returncode == 1 and message in proc.stderr, (doc, proc.stderr)
    assert daemon.ovsr("--format", "json", "show").stdout == before, "nothing changed"


def test_link_notifications_name_the_device_whose_carrier_changed(lab: NetnsLab) -> None:
    """The socket behind carrier detection (``link_events``): pulling the far end of a
    veth is reported, by name, within a second, and nothing is reported before."""
    ns = lab.add_namespace("le")
    lab.wire(ns, "near0", ns, "far0")
    with in_namespace(ns):
        events = LinkEvents()
    poller = select.epoll()
    try:
        poller.register(events.fileno(), select.EPOLLIN)
        time.sleep(0.2)
        while poller.poll(0.1):  # what the wiring itself announced
            events.changed()
        assert poller.poll(0.2) == []
        with NetNS(ns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="far0")[0], state="down")
        named: set[str] = set()
        deadline = time.monotonic() + 1.0
        while "near0" not in named and time.monotonic() < deadline:
            if poller.poll(0.1):
                named |= events.changed() or set()
        assert "near0" in named, f"no notification for near0's lost carrier: {named}"
    finally:
        poller.close()
        events.close()
