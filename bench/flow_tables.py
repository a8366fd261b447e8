"""Benchmark: forwarding rate as the flow table grows, ovs-runtime beside Open vSwitch.

    python -m bench.flow_tables [--runs 3] [--seconds 5] [--rules 10,1000,100000]

For each rule count, both switches get the same ovs-ofctl flow file: that many
``udp,nw_src,nw_dst,tp_dst`` drop rules that the test traffic never matches (so the
classifier holds them, in three masks), beneath which standalone mode's
``priority=0 actions=NORMAL`` forwards. Two namespaces then exchange 64-byte UDP frames
(iperf3 -u, 18-byte payloads, four parallel streams: a steady set of four flows), and
the delivered packets/s are the median of ``--runs``. Also reported: how long loading
the file took (``ovsr add-flows`` / ``ovs-ofctl add-flows``), each daemon's resident
memory afterwards, then how long ``dump-flows`` of the full table takes (output to a
pipe), one more ``add-flow`` into it, a ``del-flows`` whose filter selects that one rule
(each switch tests every rule against it), an ovs-vsctl-style ``add-port`` of a port
with no device (``ovsr`` / ``ovs-vsctl``, both waiting until the daemon has applied it),
and ``del-flows`` of the whole table. Open vSwitch runs its userspace (netdev) datapath.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import l2_forwarding
from bench.l2_forwarding import two_hosts
from bench.ovs_netdev import OvsNetdev
from tests.daemon_process import DaemonProcess
from tests.netns_lab import NetnsLab

ONE_MORE_RULE = "priority=5,udp,nw_src=203.0.113.251,tp_dst=9,actions=drop"
ONE_RULE_FILTER = "udp,nw_src=203.0.113.251"  # selects that rule alone (the file's stop at .249)


@dataclass
class LoadedSwitch:
    """A switch with the rule file loaded: its lab, how long loading took, its memory,
    and its flow tool (``ovsr`` or ``ovs-ofctl``) bound to the bridge."""

    lab: NetnsLab
    load_s: float
    rss_kib: int
    flow_tool: Callable[[str, list[str]], None]  # (command, arguments after the bridge)
    add_port: Callable[[str], None]  # ovsr / ovs-vsctl add-port BRIDGE NAME


def timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


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
def ovs_runtime(prefix: str, work: Path, flows: Path) -> Iterator[LoadedSwitch]:
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

        def flow_tool(command: str, args: list[str]) -> None:
            done = daemon.ovsr("--timeout", "900", command, bridge, *args, timeout=900)
            if done.returncode != 0:
                raise RuntimeError(f"ovsr {command}: {done.stderr}")

        def add_port(name: str) -> None:
            done = daemon.ovsr("add-port", bridge, name)
            if done.returncode != 0:
                raise RuntimeError(f"ovsr add-port: {done.stderr}")

        loaded = timed(lambda: flow_tool("add-flows", [str(flows)]))
        time.sleep(1)
        assert daemon.proc is not None
        yield LoadedSwitch(lab, loaded, rss_kib(daemon.proc.pid), flow_tool, add_port)
    finally:
        daemon.stop()
        lab.cleanup()


@contextmanager
def open_vswitch(prefix: str, work: Path, flows: Path) -> Iterator[LoadedSwitch]:
    lab = two_hosts(prefix)
    ovs = OvsNetdev(work / "ovs")
    try:
        for name in ("a", "b"):
            lab.run(name, "ethtool", "-K", "eth0", "tx", "off", check=True)
        ovs.start()
        bridge = f"{prefix}ob"
        ovs.add_bridge(bridge, [lab.hosts[n].switch_port for n in ("a", "b")])

        def flow_tool(command: str, args: list[str]) -> None:
            subprocess.run(
                ["ovs-ofctl", command, bridge, *args],
                check=True,
                env=ovs.env,
                timeout=900,
                stdout=subprocess.PIPE,  # dump-flows: read, as ovsr's is
            )

        loaded = timed(lambda: flow_tool("add-flows", [str(flows)]))
        time.sleep(1)
        pid = int((ovs.dir / "ovs-vswitchd.pid").read_text().strip())

        def add_port(name: str) -> None:
            ovs.vsctl("add-port", bridge, name)

        yield LoadedSwitch(lab, loaded, rss_kib(pid), flow_tool, add_port)
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
                with factory("bf", work, flows) as switch:
                    rates = [pps(switch.lab, args.seconds) for _ in range(args.runs)]
                    dump = timed(lambda: switch.flow_tool("dump-flows", []))
                    add_one = timed(lambda: switch.flow_tool("add-flow", [ONE_MORE_RULE]))
                    del_one = timed(lambda: switch.flow_tool("del-flows", [ONE_RULE_FILTER]))
                    add_port = timed(lambda: switch.add_port("bfnodev"))
                    delete = timed(lambda: switch.flow_tool("del-flows", []))
                m = table[(label, count)] = {
                    "pps": statistics.median(rates),
                    "load_s": switch.load_s,
                    "rss_mib": switch.rss_kib / 1024,
                    "dump_s": dump,
                    "add_one_s": add_one,
                    "del_one_s": del_one,
                    "add_port_s": add_port,
                    "delete_s": delete,
                }
                print(
                    f"{label:<24} {count:>7} rules: {m['pps'] / 1000:7.1f} kpps "
                    f"(runs: {', '.join(f'{r / 1000:.1f}' for r in rates)}), add-flows "
                    f"{m['load_s']:6.2f} s, RSS {m['rss_mib']:6.1f} MiB, dump-flows "
                    f"{dump:5.2f} s, one more add-flow "
                    f"{add_one:5.2f} s, del-flows of it by match {del_one:5.2f} s, add-port "
                    f"{add_port:5.2f} s, del-flows {delete:6.2f} s",
                    flush=True,
                )
    print()
    print(f"medians of {args.runs} runs, {args.seconds} s each; 64-byte UDP, 4 streams")
    header = f"{'rules':>7} {'switch':<24} {'kpps':>8} {'vs fewest':>10} {'vs OVS':>7}"
    header += f" {'add-flows s':>11} {'RSS MiB':>8} {'dump s':>7} {'+1 rule s':>9}"
    print(f"{header} {'-1 by match s':>13} {'add-port s':>10} {'del-flows s':>11}")
    for count in counts:
        for label in SWITCHES:
            m = table[(label, count)]
            base = table[(label, counts[0])]["pps"]
            ovs = table[("Open vSwitch 3.1 netdev", count)]["pps"]
            print(
                f"{count:>7} {label:<24} {m['pps'] / 1000:>8.1f} {m['pps'] / base:>9.2f}x "
                f"{m['pps'] / ovs:>6.2f}x {m['load_s']:>11.2f} {m['rss_mib']:>8.1f} "
                f"{m['dump_s']:>7.2f} {m['add_one_s']:>9.2f} {m['del_one_s']:>13.2f} "
                f"{m['add_port_s']:>10.2f} {m['delete_s']:>11.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
