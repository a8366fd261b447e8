"""QoS through the Linux tc stack, with real TCP: a linux-htb QoS on a port caps what the
switch sends out of it; ``ovsr qos-show`` reports the classes; removing it removes our tc
objects and nothing else; rates that do not parse are refused whole."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pyroute2 import IPRoute

from tests.daemon_process import DaemonProcess
from tests.integration.switch_fixtures import apply_bridge
from tests.netns_lab import Host, NetnsLab

CAP = 20_000_000  # 20 Mbit/s


def tcp_mbits(lab: NetnsLab, client: str, server_ip: str, server: str) -> float:
    srv = lab.popen(server, "iperf3", "-s", "-1", "-B", server_ip)
    try:
        time.sleep(0.5)
        run = lab.run(client, "iperf3", "-c", server_ip, "-t", "3", "-J", timeout=60)
        assert run.returncode == 0, run.stdout[-1500:] + run.stderr
        return float(json.loads(run.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        srv.kill()
        srv.wait()


def two_hosts_measured(switch: DaemonProcess, lab: NetnsLab, tmp: Path) -> tuple[Host, Host, float]:
    """Hosts a and b on br0, and a->b TCP throughput with nothing configured."""
    a = lab.add_host("a", ip="198.51.100.1/24")
    b = lab.add_host("b", ip="198.51.100.2/24")
    apply_bridge(switch, tmp, "br0", {a.switch_port: {}, b.switch_port: {}})
    return a, b, tcp_mbits(lab, "a", "198.51.100.2", "b")


def wait_for_htb(device: str, present: bool) -> None:
    """The daemon applies QoS after the transaction: wait for the root qdisc to follow."""
    deadline = time.monotonic() + 5
    while (root_qdisc(device)[0] == "htb") != present and time.monotonic() < deadline:
        time.sleep(0.1)


def root_qdisc(device: str) -> tuple[str | None, int]:
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=device)[0]
        for msg in ipr.get_qdiscs(index=index):
            if msg["parent"] == 0xFFFFFFFF:
                return msg.get_attr("TCA_KIND"), msg["handle"]
    return None, 0


def test_linux_htb_caps_a_port_and_goes_away_cleanly(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    a, b, free = two_hosts_measured(switch, lab, tmp_path)

    made = switch.ovsr(
        *("--", "--id=@q0", "create", "Queue", f"other_config:max-rate={CAP}"),
        *("--", "--id=@qos", "create", "QoS", "type=linux-htb"),
        f"other_config:max-rate={CAP}",
        "queues:0=@q0",
        *("--", "set", "Port", b.switch_port, "qos=@qos"),
    )
    assert made.returncode == 0, made.stderr
    kind, handle = root_qdisc(b.switch_port)
    assert (kind, handle) == ("htb", 0x10000)
    capped = tcp_mbits(lab, "a", "198.51.100.2", "b")
    print(
        f"TCP a->b: {free:.0f} Mbit/s free, {capped:.1f} Mbit/s under a {CAP / 1e6:.0f} Mbit/s cap"
    )
    assert capped < CAP / 1e6 * 1.25, capped
    assert free > 3 * capped, (free, capped)

    shown = json.loads(switch.ovsr("--format", "json", "qos-show", b.switch_port).stdout)
    assert shown["qos"] == "linux-htb"
    queue0 = next(c for c in shown["classes"] if c["queue"] == 0)
    assert queue0["class"] == "1:1" and queue0["bytes"] > 1_000_000  # GSO frames: few, large
    assert "queue 0" in switch.ovsr("qos-show", b.switch_port).stdout

    # Removing QoS removes our root qdisc, and leaves the other port's qdisc alone.
    other_before = root_qdisc(a.switch_port)
    assert switch.ovsr("clear", "Port", b.switch_port, "qos").returncode == 0
    wait_for_htb(b.switch_port, present=False)
    assert root_qdisc(b.switch_port)[0] != "htb"
    assert root_qdisc(a.switch_port) == other_before
    assert tcp_mbits(lab, "a", "198.51.100.2", "b") > 3 * capped


def test_qos_rates_that_do_not_parse_are_refused(switch: DaemonProcess) -> None:
    cases = [
        (("other_config:max-rate=fast",), "is not a rate"),
        (("other_config:max-rate=-5",), "is not a rate"),
        (("type=linux-hfsc", "other_config:max-rate=1000"), "not supported"),
    ]
    for settings, message in cases:
        kind = [] if any(s.startswith("type=") for s in settings) else ["type=linux-htb"]
        proc = switch.ovsr("create", "QoS", *kind, *settings)
        assert proc.returncode == 1 and message in proc.stderr, (settings, proc.stderr)
    queue = switch.ovsr(
        *("--", "--id=@q", "create", "Queue", "other_config:min-rate=9", "other_config:max-rate=5"),
        *("--", "create", "QoS", "type=linux-htb", "queues:0=@q"),
    )
    assert queue.returncode == 1 and "min-rate 9 is above max-rate 5" in queue.stderr
    assert json.loads(switch.ovsr("--format", "json", "list", "QoS").stdout) == []


def test_qos_in_a_desired_state_file(switch: DaemonProcess, lab: NetnsLab, tmp_path: Path) -> None:
    a = lab.add_host("a")
    qos = {
        "type": "linux-htb",
        "other_config": {"max-rate": CAP},
        "queues": {0: {"other_config": {"min-rate": "1000000", "max-rate": CAP}}},
    }
    doc = {"bridges": {"br0": {"ports": {a.switch_port: {"qos": qos}}}}}
    path = tmp_path / "qos.json"
    path.write_text(json.dumps(doc))
    first = switch.ovsr("apply", "--state=replaced", str(path))
    assert first.returncode == 2 and "qos" in first.stdout, first.stdout + first.stderr
    wait_for_htb(a.switch_port, present=True)
    assert root_qdisc(a.switch_port) == ("htb", 0x10000)
    again = switch.ovsr("apply", "--state=replaced", str(path))
    assert again.returncode == 0, again.stdout  # CAP as an int vs "20000000": no change

    qos["other_config"] = {"max-rate": "lots"}
    path.write_text(json.dumps(doc))
    bad = switch.ovsr("apply", "--state=replaced", str(path))
    assert bad.returncode == 1 and "'lots' is not a rate" in bad.stderr
    assert root_qdisc(a.switch_port) == ("htb", 0x10000), "the bad file changed nothing"

    doc["bridges"]["br0"]["ports"][a.switch_port] = {}
    path.write_text(json.dumps(doc))
    assert switch.ovsr("apply", "--state=replaced", str(path)).returncode == 2
    listed = json.loads(switch.ovsr("--format", "json", "list", "QoS").stdout)
    assert (
        listed == [] and json.loads(switch.ovsr("--format", "json", "list", "Queue").stdout) == []
    )
    wait_for_htb(a.switch_port, present=False)
    assert root_qdisc(a.switch_port)[0] != "htb"


def test_ingress_policing_drops_what_exceeds_the_rate(
    switch: DaemonProcess, lab: NetnsLab, tmp_path: Path
) -> None:
    a, b, free = two_hosts_measured(switch, lab, tmp_path)
    rate_kbit = 10_000
    set_rate = switch.ovsr(
        "set",
        "Interface",
        a.switch_port,
        f"ingress_policing_rate={rate_kbit}",
        "ingress_policing_burst=1000",
    )
    assert set_rate.returncode == 0, set_rate.stderr
    policed = tcp_mbits(lab, "a", "198.51.100.2", "b")
    print(f"TCP a->b: {free:.0f} Mbit/s free, {policed:.1f} Mbit/s policed at 10 Mbit/s")
    assert policed < rate_kbit / 1000 * 1.3, policed
    deadline = time.monotonic() + 5
    dropped = 0
    while time.monotonic() < deadline and not dropped:
        rows = json.loads(
            switch.ovsr("--format", "json", "list", "Interface", a.switch_port).stdout
        )
        dropped = dict(rows[0]["statistics"]).get("rx_dropped", 0)
        time.sleep(0.2)
    assert dropped > 0
    assert switch.ovsr("set", "Interface", a.switch_port, "ingress_policing_rate=0").returncode == 0
    time.sleep(0.5)
    assert tcp_mbits(lab, "a", "198.51.100.2", "b") > 3 * policed


def test_set_queue_selects_a_queue(switch: DaemonProcess, lab: NetnsLab, tmp_path: Path) -> None:
    """The set_queue action puts a flow into queue 1 (10 Mbit/s) while the rest of the
    port's traffic stays in queue 0 (unlimited here)."""
    a, b, free = two_hosts_measured(switch, lab, tmp_path)
    slow = 10_000_000
    made = switch.ovsr(
        *("--", "--id=@q0", "create", "Queue", "other_config:max-rate=10000000000"),
        *("--", "--id=@q1", "create", "Queue", f"other_config:max-rate={slow}"),
        *("--", "--id=@qos", "create", "QoS", "type=linux-htb"),
        "other_config:max-rate=10000000000",
        "queues:0=@q0",
        "queues:1=@q1",
        *("--", "set", "Port", b.switch_port, "qos=@qos"),
    )
    assert made.returncode == 0, made.stderr
    wait_for_htb(b.switch_port, present=True)
    in_queue_0 = tcp_mbits(lab, "a", "198.51.100.2", "b")
    rule = "priority=100,tcp,nw_dst=198.51.100.2,tp_dst=5201 actions=set_queue:1,NORMAL"
    assert switch.ovsr("add-flow", "br0", rule).returncode == 0
    in_queue_1 = tcp_mbits(lab, "a", "198.51.100.2", "b")
    print(
        f"TCP a->b: {free:.0f} Mbit/s free, {in_queue_0:.0f} in queue 0, "
        f"{in_queue_1:.2f} with set_queue:1 (max-rate {slow / 1e6:.0f})"
    )
    assert slow / 1e6 * 0.9 <= in_queue_1 <= slow / 1e6 * 1.1, in_queue_1
    assert in_queue_0 > 5 * in_queue_1, (in_queue_0, in_queue_1)
    shown = json.loads(switch.ovsr("--format", "json", "qos-show", b.switch_port).stdout)
    queue1 = next(c for c in shown["classes"] if c["queue"] == 1)
    assert queue1["bytes"] > 1_000_000, shown  # (packets are GSO super-frames here)
    trace = switch.ovsr(
        "--format",
        "json",
        "trace",
        "br0",
        f"in_port={a.switch_port},tcp,nw_src=198.51.100.1,nw_dst=198.51.100.2,tp_dst=5201",
    )
    assert json.loads(trace.stdout)["outputs"][0]["queue"] == 1
    assert switch.ovsr("del-flows", "br0", "tcp").returncode == 0
    again = tcp_mbits(lab, "a", "198.51.100.2", "b")
    assert again > 5 * in_queue_1, (again, in_queue_1)
