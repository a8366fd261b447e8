"""Flow rules with real traffic through veths in namespaces: ACLs, redirects, VLAN
rewrites, multi-table pipelines, persistence across restarts, replace-flows, the tracer
against observed forwarding, port security, and rule changes under load."""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from ovs_runtime.cli.client import ClientError
from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.packet.synthesize import build_frame
from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import apply_bridge
from tests.netns_lab import NetnsLab, RawPort

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")
NET = "198.51.100."


def hosts(
    switch: DaemonProcess, lab: NetnsLab, tmp: Path, count: int = 3, **ports_cfg: dict
) -> list[str]:
    ports = {}
    for n in range(1, count + 1):
        host = lab.add_host(f"h{n}", f"{NET}{n}")
        ports[host.switch_port] = dict(ports_cfg.get(f"h{n}", {}))
    apply_bridge(switch, tmp, "br0", ports)
    return list(ports)


def ok(proc) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def dump(switch: DaemonProcess, *match: str) -> list[dict]:
    return json.loads(ok(switch.ovsr("--format", "json", "dump-flows", "br0", *match)))


def mac(n: int) -> int:
    return 0x020000000000 + n


def udp_frame(src: int, dst: int, dport: int, marker: bytes, vlan: int | None = None) -> bytes:
    values = {
        fk.DL_SRC: mac(src),
        fk.DL_DST: mac(dst),
        fk.DL_TYPE: fk.ETH_IP,
        fk.NW_PROTO: 17,
        fk.NW_SRC: int.from_bytes(bytes([198, 51, 100, src]), "big"),
        fk.NW_DST: int.from_bytes(bytes([198, 51, 100, dst]), "big"),
        fk.TP_DST: dport,
    }
    if vlan is not None:
        values[fk.VLAN_TCI] = 0x1000 | vlan
    return build_frame(values, payload=marker)


def captured(raw: RawPort, marker: bytes) -> list[bytes]:
    return [f for f in raw.drain(0.3) if marker in f]


def test_acl_drops_one_host_and_the_rest_still_flows(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    hosts(switch, lab, tmp_path)
    assert lab.ping("h1", f"{NET}2")
    ok(switch.ovsr("add-flow", "br0", f"priority=100,ip,nw_src={NET}1,nw_dst={NET}2,actions=drop"))
    assert not lab.ping("h1", f"{NET}2", count=2), "the ACL drops h1 -> h2"
    assert lab.ping("h1", f"{NET}3") and lab.ping("h3", f"{NET}2"), "the rest flows"
    (acl,) = [r for r in dump(switch) if r["priority"] == 100]
    assert acl["n_packets"] >= 2 and acl["match"] == f"ip,nw_src={NET}1,nw_dst={NET}2"
    # A filtered dump asks the datapath for the chosen rules' counters only.
    (chosen,) = [r for r in dump(switch, f"ip,nw_src={NET}1") if not r["implicit"]]
    assert chosen["uuid"] == acl["uuid"] and chosen["n_packets"] >= acl["n_packets"]
    client = switch.client()
    try:
        with pytest.raises(ClientError, match="not a UUID among them"):
            client.call("ovsr/flow-stats", ["br0", ["not-a-uuid"]])
    finally:
        client.close()
    ok(switch.ovsr("del-flows", "br0", f"ip,nw_src={NET}1"))
    assert lab.ping("h1", f"{NET}2")


def test_del_flows_without_a_match_deletes_every_rule_and_counts_them(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    hosts(switch, lab, tmp_path)
    ok(switch.ovsr("add-flow", "br0", f"priority=100,ip,nw_dst={NET}2,actions=drop"))
    assert ok(switch.ovsr("del-flows", "br0")) == "br0: 1 rule(s) deleted\n"
    rules = tmp_path / "acl.flows"
    rules.write_text(
        "".join(f"priority=100,udp,nw_src={NET}{n},tp_dst=7,actions=drop\n" for n in range(1, 4))
        + f"priority=90,ip,nw_dst={NET}2,actions=drop\n"
    )
    ok(switch.ovsr("add-flows", "br0", str(rules)))
    assert not lab.ping("h1", f"{NET}2", count=2), "the rules are in force"
    deleted = json.loads(ok(switch.ovsr("--format", "json", "del-flows", "br0")))
    assert deleted == {"bridge": "br0", "deleted": 4}
    assert [r["implicit"] for r in dump(switch)] == [True], "only standalone's NORMAL is left"
    assert lab.ping("h1", f"{NET}2"), "and it forwards again"
    assert ok(switch.ovsr("del-flows", "br0")) == "br0: 0 rule(s) deleted\n"
    failed = switch.ovsr("del-flows", "nobr")
    assert failed.returncode != 0 and "no bridge named nobr" in failed.stderr


def test_redirect_and_vlan_rewrite_by_capture(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    p1, p2, p3 = hosts(switch, lab, tmp_path)
    raw = {n: lab.raw_socket(n) for n in ("h1", "h2", "h3")}
    try:
        rules = tmp_path / "policy.flows"
        rules.write_text(
            f"priority=100,in_port={p1},udp,tp_dst=5000 actions=output:{p3}\n"
            f"priority=100,in_port={p1},udp,tp_dst=5001 actions=mod_vlan_vid:20,output:{p2}\n"
            f"priority=100,in_port={p2},dl_vlan=20 actions=strip_vlan,output:{p1}\n"
        )
        ok(switch.ovsr("add-flows", "br0", str(rules)))
        raw["h1"].send(udp_frame(1, 2, 5000, b"redirected"))
        assert len(captured(raw["h3"], b"redirected")) == 1, "redirected to h3"
        assert captured(raw["h2"], b"redirected") == [], "and not delivered to h2"
        raw["h1"].send(udp_frame(1, 2, 5001, b"retagged"))
        (frame,) = captured(raw["h2"], b"retagged")
        assert struct.unpack("!HH", frame[12:16]) == (0x8100, 20), "h2 sees 802.1Q VLAN 20"
        raw["h2"].send(udp_frame(2, 1, 9, b"from-vlan-20", vlan=20))
        (frame,) = captured(raw["h1"], b"from-vlan-20")
        assert frame[12:14] == b"\x08\x00", "the tag was stripped on the way to h1"
    finally:
        for sock in raw.values():
            sock.close()


def test_resubmit_and_goto_table_pipeline(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    hosts(switch, lab, tmp_path)
    flows = tmp_path / "pipeline.flows"
    flows.write_text(
        "table=0,priority=100,icmp actions=goto_table:1\n"
        f"table=1,priority=10,icmp,nw_dst={NET}3 actions=drop\n"
        "table=1,priority=1,icmp actions=resubmit(,2)\n"
        "table=2,priority=1 actions=NORMAL\n"
    )
    ok(switch.ovsr("add-flows", "br0", str(flows)))
    assert lab.ping("h1", f"{NET}2"), "table 0 -> 1 -> 2 -> NORMAL"
    assert not lab.ping("h1", f"{NET}3", count=2), "dropped in table 1"
    counts = {(r["table"], r["priority"]): r["n_packets"] for r in dump(switch)}
    assert counts[(1, 10)] >= 2 and counts[(2, 1)] >= 6 and counts[(0, 100)] >= 8


def test_rules_survive_restart_and_replace_flows_changes_only_differences(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    hosts(switch, lab, tmp_path)
    flows = tmp_path / "acl.flows"
    base = [
        f"priority=100,icmp,nw_src={NET}1,nw_dst={NET}2 actions=drop",
        f"priority=90,icmp,nw_src={NET}3 actions=NORMAL",
        "table=1,priority=5,udp actions=drop",
    ]
    flows.write_text("\n".join(base) + "\n")
    ok(switch.ovsr("replace-flows", "br0", str(flows)))
    before = [(r["table"], r["priority"], r["match"], r["actions"]) for r in dump(switch)]
    switch.stop()
    switch.start()
    assert [(r["table"], r["priority"], r["match"], r["actions"]) for r in dump(switch)] == before
    time.sleep(1.0)  # ports re-attached from the database
    assert not lab.ping("h1", f"{NET}2", count=2), "the ACL is in force after the restart"
    assert lab.ping("h3", f"{NET}2", count=3)

    def counters() -> dict[str, int]:
        return {r["match"] or "*": r["n_packets"] for r in dump(switch)}

    seen = counters()
    assert seen[f"icmp,nw_src={NET}3"] >= 3
    same = json.loads(ok(switch.ovsr("--format", "json", "replace-flows", "br0", str(flows))))
    assert (same["added"], same["changed"], same["removed"], same["unchanged"]) == (0, 0, 0, 3)
    assert counters()[f"icmp,nw_src={NET}3"] >= seen[f"icmp,nw_src={NET}3"], "counters continue"
    edited = [
        f"priority=100,icmp,nw_src={NET}1,nw_dst={NET}2 actions=NORMAL",  # changed
        f"priority=90,icmp,nw_src={NET}3 actions=NORMAL",  # untouched
        "priority=80,arp actions=NORMAL",  # added; the table 1 rule is removed
    ]
    flows.write_text("\n".join(edited) + "\n")
    result = json.loads(ok(switch.ovsr("--format", "json", "replace-flows", "br0", str(flows))))
    assert (result["added"], result["changed"], result["removed"], result["unchanged"]) == (
        1,
        1,
        1,
        1,
    )
    after = counters()
    assert after[f"icmp,nw_src={NET}3"] >= seen[f"icmp,nw_src={NET}3"], (
        "untouched rule kept counting"
    )
    assert after[f"icmp,nw_src={NET}1,nw_dst={NET}2"] == 0, "a changed rule starts afresh"
    assert "udp" not in after
    assert lab.ping("h1", f"{NET}2")


def test_bad_flows_are_refused_and_change_nothing(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    p1, _p2, _p3 = hosts(switch, lab, tmp_path)
    ok(switch.ovsr("add-flow", "br0", "priority=7,arp actions=NORMAL"))
    before = dump(switch)
    bad_file = tmp_path / "bad.flows"
    bad_file.write_text(
        f"priority=1,in_port={p1} actions=drop\nip,nw_dst=198.51.100.999 actions=drop\n"
    )
    cases = [
        (
            ("add-flows", "br0", str(bad_file)),
            "line 2: field nw_dst: '198.51.100.999' is not an IPv4 address",
        ),
        (("replace-flows", "br0", str(bad_file)), "line 2"),
        (("add-flow", "br0", "ip actions=output:nope"), "bridge br0 has no port 'nope'"),
        (("add-flow", "br0", "tcp,tp_dst=99999 actions=drop"), "out of range 0..65535"),
        (("add-flow", "br0", "nw_src=198.51.100.1 actions=drop"), "add arp or ip or rarp"),
        (("add-flow", "br0", "actions=set_field:5->vlan_vid"), "may have no VLAN tag"),
        (("add-flow", "br0", "ip actions=sing"), "unknown action 'sing'"),
        (("add-flow", "nobr", "ip actions=drop"), "no bridge named nobr"),
        (("del-flows", "br0", "frob=1"), "unknown match field 'frob'"),
    ]
    for args, message in cases:
        proc = switch.ovsr(*args)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)
    assert [(r["match"], r["actions"]) for r in dump(switch)] == [
        (r["match"], r["actions"]) for r in before
    ]
    # A raw OVSDB client cannot store a broken rule either.
    bridge_uuid = json.loads(
        ok(switch.ovsr("--format", "json", "--columns=_uuid", "list", "Bridge"))
    )[0]["_uuid"]
    for match, refusal in (
        ("ip,nw_frob=1", "nw_frob"),  # not a rule at all
        # Valid but not in canonical form: refused, with the form to use.
        ("nw_src=198.51.100.1/32,ip", "canonical form 'ip,nw_src=198.51.100.1'"),
    ):
        results = switch.transact(
            {
                "op": "insert",
                "table": "Flow_Rule",
                "uuid-name": "r",
                "row": {"match": match, "actions": "drop", "priority": 5},
            },
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["_uuid", "==", ["uuid", str(bridge_uuid)]]],
                "mutations": [["flow_rules", "insert", ["named-uuid", "r"]]],
            },
        )
        error = results[-1]
        assert error.get("error") == "constraint violation", results
        assert refusal in error["details"], results


def test_trace_agrees_with_observed_forwarding(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    ports = hosts(switch, lab, tmp_path, count=4)
    names = {n: ports[n - 1] for n in range(1, 5)}
    raw = {n: lab.raw_socket(f"h{n}") for n in range(1, 5)}
    rng = random.Random(7)
    compared = 0
    try:
        for round_ in range(4):
            lines = []
            for _ in range(6):
                port = names[rng.randint(1, 4)]
                match = rng.choice(
                    [
                        "udp",
                        f"udp,tp_dst={rng.choice([7, 53])}",
                        f"ip,nw_dst={NET}{rng.randint(1, 4)}",
                        f"in_port={port}",
                    ]
                )
                action = rng.choice(
                    [
                        f"output:{names[rng.randint(1, 4)]}",
                        "drop",
                        "NORMAL",
                        f"mod_vlan_vid:{rng.randint(2, 30)},output:{names[rng.randint(1, 4)]}",
                        "resubmit(,1)",
                    ]
                )
                lines.append(f"priority={rng.randint(1, 60)},{match} actions={action}")
            lines.append(f"table=1,priority=5,udp actions=output:{names[rng.randint(1, 4)]}")
            flows = tmp_path / f"round{round_}.flows"
            flows.write_text("\n".join(lines) + "\n")
            ok(switch.ovsr("replace-flows", "br0", str(flows)))
            for packet in range(6):
                src, dst = rng.sample(range(1, 5), 2)
                dport = rng.choice([7, 53])
                described = (
                    f"in_port={names[src]},udp,dl_src=02:00:00:00:00:0{src},dl_dst=02:00:00:00:00:0{dst},"
                    f"nw_src={NET}{src},nw_dst={NET}{dst},tp_dst={dport}"
                )
                verdict = json.loads(ok(switch.ovsr("--format", "json", "trace", "br0", described)))
                marker = f"trace-{round_}-{packet}".encode()
                raw[src].send(udp_frame(src, dst, dport, marker))
                time.sleep(0.25)
                seen = sorted(names[n] for n in raw for _f in captured(raw[n], marker))
                expected = sorted(o["port"] for o in verdict["outputs"] if o["port"] != "br0")
                assert seen == expected, (lines, described, verdict)
                compared += 1
    finally:
        for sock in raw.values():
            sock.close()
    assert compared >= 20


def test_port_security_drops_spoofed_sources(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    p1, p2, _p3 = hosts(switch, lab, tmp_path)
    from pyroute2 import NetNS

    with NetNS(lab.hosts["h1"].ns) as nsr:
        h1_mac = nsr.get_links(nsr.link_lookup(ifname="eth0")[0])[0].get_attr("IFLA_ADDRESS")
    apply_bridge(
        switch,
        tmp_path,
        "br0",
        {p1: {"port_security": [f"{h1_mac} {NET}1"]}, p2: {}, _p3: {}},
    )
    assert lab.ping("h1", f"{NET}2"), "legitimate traffic flows"
    raw1, raw2 = lab.raw_socket("h1"), lab.raw_socket("h2")
    try:
        real = int(h1_mac.replace(":", ""), 16)
        spoofs = {
            b"spoof-mac": {fk.DL_SRC: mac(77), fk.NW_SRC: 0xC6336401},
            b"spoof-ip": {fk.DL_SRC: real, fk.NW_SRC: 0xC633644D},
        }
        for marker, fields in spoofs.items():
            frame = build_frame(
                {
                    fk.DL_DST: 0xFFFFFFFFFFFF,
                    fk.DL_TYPE: fk.ETH_IP,
                    fk.NW_PROTO: 17,
                    fk.NW_DST: 0xC6336402,
                    fk.TP_DST: 9,
                    **fields,
                },
                payload=marker,
            )
            raw1.send(frame)
            assert captured(raw2, marker) == [], marker
        arp = {
            fk.DL_SRC: real,
            fk.DL_DST: 0xFFFFFFFFFFFF,
            fk.DL_TYPE: fk.ETH_ARP,
            fk.NW_PROTO: 2,
            fk.NW_DST: 0xC6336402,
        }
        raw1.send(build_frame({**arp, fk.NW_SRC: 0xC6336403}, payload=b"spoof-arp"))
        assert captured(raw2, b"spoof-arp") == [], "ARP claiming h3's address is dropped"
        raw1.send(build_frame({**arp, fk.NW_SRC: 0xC6336401}, payload=b"honest-arp"))
        assert len(captured(raw2, b"honest-arp")) == 1
        # IPv6 Neighbour Discovery, ARP's counterpart: an advertisement for an address
        # the port does not hold is dropped; one for its link-local address passes.
        from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
        from scapy.layers.l2 import Ether

        for target, expected in (("2001:db8::77", 0), ("fe80::1", 1)):
            advert = (
                Ether(src=h1_mac, dst="33:33:00:00:00:01")
                / IPv6(src="fe80::1", dst="ff02::1", hlim=255)
                / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1)
                / ICMPv6NDOptDstLLAddr(lladdr=h1_mac)
            )
            raw1.send(bytes(advert))
            marker = socket.inet_pton(socket.AF_INET6, target)
            assert len(captured(raw2, marker)) == expected, target
    finally:
        raw1.close()
        raw2.close()
    drops = json.loads(ok(switch.ovsr("--format", "json", "dpif-show")))["bridges"]["br0"]["drops"]
    assert (
        drops["port-security-mac"] >= 1
        and drops["port-security-ip"] >= 1
        and drops["port-security-arp"] >= 1
        and drops["port-security-nd"] == 1
    )
    bad = switch.ovsr("set", "Port", p2, 'port_security="02:00:00:00:00:02 198.51.100.300"')
    assert bad.returncode == 1 and "not an IPv4 or IPv6 address" in bad.stderr


def test_rule_change_under_traffic_never_forwards_stale(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    hosts(switch, lab, tmp_path)
    sender, receiver = lab.raw_socket("h1"), lab.raw_socket("h2")
    sent: list[tuple[int, float]] = []
    stop = threading.Event()

    def send() -> None:
        seq = 0
        while not stop.is_set():
            sender.send(udp_frame(1, 2, 4000, b"seq%08d" % seq))
            sent.append((seq, time.monotonic()))
            seq += 1
            time.sleep(0.001)

    received: list[int] = []

    def receive() -> None:  # drain continuously: a socket buffer holds few frames
        while not stop.is_set():
            for frame in receiver.drain(0.02):
                at = frame.find(b"seq")
                if at >= 0:
                    received.append(int(frame[at + 3 : at + 11]))

    threads = [threading.Thread(target=send), threading.Thread(target=receive)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        ok(switch.ovsr("add-flow", "br0", "priority=100,udp,tp_dst=4000 actions=drop"))
        blocked_at = time.monotonic()
        time.sleep(1.0)
        unblocking = time.monotonic()
        ok(switch.ovsr("del-flows", "br0", "udp,tp_dst=4000"))
        opened_at = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sender.close()
        receiver.close()
    sent_at = dict(sent)
    stale = [s for s in received if blocked_at < sent_at[s] < unblocking]
    blocked = [s for s, t in sent if blocked_at < t < unblocking]
    assert len(blocked) > 300, "the sender kept sending while the rule was in force"
    assert not stale, f"{len(stale)} frames sent after the drop rule was in force got through"
    assert any(sent_at[s] < blocked_at for s in received), "traffic flowed before"
    after = [s for s, t in sent if t > opened_at + 0.05]  # the receiver's last drain
    delivered = set(received)
    assert sum(1 for s in after if s in delivered) >= 0.9 * len(after), "and resumed at once"


def test_timed_out_rules_leave_the_datapath_and_the_database(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    hosts(switch, lab, tmp_path)
    ok(switch.ovsr("add-flow", "br0", "priority=50,icmp,idle_timeout=2 actions=NORMAL"))
    ok(switch.ovsr("add-flow", "br0", "priority=60,udp,hard_timeout=3 actions=drop"))
    started = time.monotonic()
    # 6 s of hits: well past the hard timeout (3 s), plus the up to one second the
    # datapath takes to notice it and the time to delete the row.
    pinger = lab.popen("h1", "ping", "-q", "-c", "60", "-i", "0.1", f"{NET}2")
    pinger.wait(timeout=30)
    elapsed = time.monotonic() - started
    remaining = {r["priority"] for r in dump(switch) if not r["implicit"]}
    assert remaining == {50}, "the hard timeout ended the UDP rule; hits kept the ICMP one"
    assert elapsed > 3.5
    deadline = time.monotonic() + 6
    while {
        r["priority"] for r in dump(switch) if not r["implicit"]
    } and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {r["priority"] for r in dump(switch) if not r["implicit"]} == set(), "idle: gone"
    rows = json.loads(ok(switch.ovsr("--format", "json", "list", "Flow_Rule")))
    assert rows == [], "the rows were deleted too"
    assert "removed (idle timeout)" in switch.log() and "removed (hard timeout)" in switch.log()
