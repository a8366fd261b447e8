"""Benchmark: forwarding rate as the flow table grows, ovs-runtime beside Open vSwitch.

    python -m bench.flow_tables [--runs 3] [--seconds 5] [--rules 10,1000,100000]

For each rule count, both switches get the same ovs-ofctl flow file: that many
``udp,nw_src,nw_dst,tp_dst`` drop rules that the test traffic never matches (so the
classifier holds them, in three masks), beneath which standalone mode's
``priority=0 actions=NORMAL`` forwards. Two namespaces then exchange 64-byte UDP frames
(iperf3 -u, 18-byte payloads, four parallel streams: a steady set of four flows), and
the delivered packets/s are the median of ``--runs``. Also reported: how long loading
the file took (``ovsr add-flows`` / ``ovs-ofctl add-flows``) and each daemon's resident
memory afterwards. Open vSwitch runs its userspace (netdev) datapath.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import l2_forwarding
from bench.l2_forwarding import two_hosts
from bench.ovs_netdev import OvsNetdev
from tests.daemon_process import DaemonProcess
from tests.netns_lab import NetnsLab


def rule_file(path: Path, count: int) -> Path:
    """``count`` rules that never match 198.51.100.1 <-> .2 traffic, in three masks."""
    lines = []
    for i in range(count):
        a, b, c = i % 250, (i // 250) % 250, i // 62500
        src = f"nw_src=203.0.113.{a}"
        if i % 3 == 0:
            match = f"priority=100,udp,{src},nw_dst=198.51.100.{b},tp_dst={1000 + c}"
        elif i % 3 == 1:
            match = f"priority=90,udp,{src},tp_dst={2000 + b + 250 * c}"
        else:
            match = f"priority=80,ip,{src},nw_dst=203.0.113.{b},nw_tos={4 * (c % 64)}"
        lines.append(f"{match} actions=drop")
    path.write_text("\n".join(lines) + "\n")
    return path


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pps(lab: NetnsLab, seconds: int) -> float:
    """Delivered 64-byte packets/s over four parallel UDP streams."""
    return l2_forwarding.iperf(lab, True, seconds, streams=4)


@contextmanager
def ovs_runtime(prefix: str, work: Path, flows: Path) -> Iterator[tuple[NetnsLab, float, int]]:
    lab = two_hosts(prefix)
    daemon = DaemonProcess(work / "ovsr", extra_args=())
    try:
        daemon.start()
        bridge = f"{prefix}br"
        cmd = ["add-br", bridge]
        for name in ("a", "b"):
            cmd += ["--", "add-port", bridge, lab.hosts[name].switch_port]
        proc = daemon.ovsr(*cmd)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        started = time.monotonic()
        proc = daemon.ovsr("--timeout", "900", "add-flows", bridge, str(flows), timeout=900)
        loaded = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        time.sleep(1)
        assert daemon.proc is not None
        yield lab, loaded, rss_kib(daemon.proc.pid)
    finally:
        daemon.stop()
        lab.cleanup()


@contextmanager
def open_vswitch(prefix: str, work: Path, flows: Path) -> Iterator[tuple[NetnsLab, float, int]]:
    lab = two_hosts(prefix)
    ovs = OvsNetdev(work / "ovs")
    try:
        for name in ("a", "b"):
            lab.run(name, "ethtool", "-K", "eth0", "tx", "off", check=True)
        ovs.start()
        bridge = f"{prefix}ob"
        ovs.add_bridge(bridge, [lab.hosts[n].switch_port for n in ("a", "b")])
        started = time.monotonic()
        subprocess.run(
            ["ovs-ofctl", "add-flows", bridge, str(flows)], check=True, env=ovs.env, timeout=900
        )
        loaded = time.monotonic() - started
        time.sleep(1)
        pid = int((ovs.dir / "ovs-vswitchd.pid").read_text().strip())
        yield lab, loaded, rss_kib(pid)
    finally:
        ovs.stop()
        lab.cleanup()


SWITCHES = {"Open vSwitch 3.1 netdev": open_vswitch, "ovs-runtime": ovs_runtime}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rules", default="10,1000,100000")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.rules.split(",")]
    table: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ovsr-bench-flows-") as tmp:
        for count in counts:
            flows = rule_file(Path(tmp) / f"{count}.flows", count)
            for label, factory in SWITCHES.items():
                work = Path(tmp) / f"{label[:3]}-{count}"
                with factory("bf", work, flows) as (lab, loaded, rss):
                    rates = [pps(lab, args.seconds) for _ in range(args.runs)]
                table[(label, count)] = {
                    "pps": statistics.median(rates),
                    "load_s": loaded,
                    "rss_mib": rss / 1024,
                }
                print(
                    f"{label:<24} {count:>7} rules: {statistics.median(rates) / 1000:7.1f} kpps "
                    f"(runs: {', '.join(f'{r / 1000:.1f}' for r in rates)}), add-flows "
                    f"{loaded:6.2f} s, RSS {rss / 1024:6.1f} MiB",
                    flush=True,
                )
    print()
    print(f"medians of {args.runs} runs, {args.seconds} s each; 64-byte UDP, 4 streams")
    header = f"{'rules':>7} {'switch':<24} {'kpps':>8} {'vs fewest':>10} {'vs OVS':>7}"
    print(f"{header} {'add-flows s':>11} {'RSS MiB':>8}")
    for count in counts:
        for label in SWITCHES:
            m = table[(label, count)]
            base = table[(label, counts[0])]["pps"]
            ovs = table[("Open vSwitch 3.1 netdev", count)]["pps"]
            print(
                f"{count:>7} {label:<24} {m['pps'] / 1000:>8.1f} {m['pps'] / base:>9.2f}x "
                f"{m['pps'] / ovs:>6.2f}x {m['load_s']:>11.2f} {m['rss_mib']:>8.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
