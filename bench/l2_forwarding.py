"""Benchmark: two namespaces talking through (1) a direct veth pair, (2) ovs-runtime's
userspace datapath, (3) Open vSwitch 3.1's userspace netdev datapath, in one run.

    python -m bench.l2_forwarding [--runs 3] [--seconds 5]

Measures TCP Gbit/s (iperf3), delivered 64-byte-frame UDP packets/s between two
applications (iperf3 -u with 18-byte payloads: 14 + 20 + 8 + 18 = 60 bytes + FCS = 64 on
the wire), and the 64-byte forwarding capacity (``frame_blaster``: trafgen on one core,
frames delivered to the far namespace); reports the median of ``--runs`` and ratios.
Open vSwitch's netdev datapath needs transmit checksum offload off on the namespace-side
veths to pass TCP (measured), so it gets that; ovs-runtime and the direct pair run with
offloads at their defaults.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyroute2 import IPRoute, NetNS

from bench import frame_blaster
from bench.ovs_netdev import OvsNetdev
from bench.round_trip import round_trip_us
from tests.daemon_process import DaemonProcess
from tests.netns_lab import NetnsLab

NET = "198.51.100."


def iperf(
    lab: NetnsLab,
    udp: bool,
    seconds: int,
    client: str = "a",
    server_host: str = "b",
    server_ip: str = f"{NET}2",
    streams: int = 1,
) -> float:
    """TCP Gbit/s, or with ``udp`` delivered 64-byte packets/s, client to server."""
    server = lab.popen(server_host, "iperf3", "-s", "-1", "-B", server_ip)
    try:
        time.sleep(0.4)
        args = ["iperf3", "-c", server_ip, "-t", str(seconds), "-J"]
        if udp:
            args += ["-u", "-b", "0", "-l", "18", "-P", str(streams)]
        proc = lab.run(client, *args, timeout=seconds + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"iperf3 failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
        end = json.loads(proc.stdout)["end"]
        if udp:
            summary = end["sum"]
            return float(summary["packets"] - summary["lost_packets"]) / summary["seconds"]
        return float(end["sum_received"]["bits_per_second"]) / 1e9
    finally:
        server.kill()
        server.wait()


def udp_counters(lab: NetnsLab, host: str) -> tuple[int, int]:
    """The host's UDP datagrams queued to sockets, and those dropped because the
    socket's receive buffer was full (``/proc/net/snmp``'s ``Udp`` line)."""
    lines = lab.run(host, "cat", "/proc/net/snmp", check=True).stdout.splitlines()
    names, values = (line.split()[1:] for line in lines if line.startswith("Udp:"))
    udp = dict(zip(names, map(int, values), strict=True))
    return udp["InDatagrams"], udp["RcvbufErrors"]


def socket_drop_share(lab: NetnsLab, host: str, run: Callable[[], float]) -> tuple[float, float]:
    """``run()``'s figure, and the percentage of the UDP datagrams that reached ``host``'s
    sockets meanwhile which were dropped there, the buffer being full."""
    read_before, dropped_before = udp_counters(lab, host)
    figure = run()
    read_after, dropped_after = udp_counters(lab, host)
    read, dropped = read_after - read_before, dropped_after - dropped_before
    return figure, 100.0 * dropped / max(1, read + dropped)


def two_hosts(prefix: str) -> NetnsLab:
    lab = NetnsLab(prefix)
    lab.add_host("a", f"{NET}1")
    lab.add_host("b", f"{NET}2")
    return lab


@contextmanager
def direct_pair(prefix: str) -> Iterator[NetnsLab]:
    lab = NetnsLab(prefix)
    try:
        for name in ("a", "b"):
            lab.add_namespace(name)
        with IPRoute() as ipr:
            ipr.link("add", ifname=f"{prefix}a", kind="veth", peer=f"{prefix}b")
            for name in ("a", "b"):
                idx = ipr.link_lookup(ifname=f"{prefix}{name}")[0]
                ipr.link("set", index=idx, net_ns_fd=lab.hosts[name].ns)
        for n, name in enumerate(("a", "b"), 1):
            with NetNS(lab.hosts[name].ns) as nsr:
                idx = nsr.link_lookup(ifname=f"{prefix}{name}")[0]
                nsr.link("set", index=idx, ifname="eth0", state="up")
                nsr.addr("add", index=idx, address=f"{NET}{n}", prefixlen=24)
        yield lab
    finally:
        lab.cleanup()


@contextmanager
def through_ovs_runtime(prefix: str, work: Path) -> Iterator[NetnsLab]:
    lab = two_hosts(prefix)
    daemon = DaemonProcess(work / "ovsr", extra_args=())
    try:
        daemon.start()
        ports = [lab.hosts[n].switch_port for n in ("a", "b")]
        cmd = ["add-br", f"{prefix}br"]
        for port in ports:
            cmd += ["--", "add-port", f"{prefix}br", port]
        proc = daemon.ovsr(*cmd)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        time.sleep(1)
        yield lab
    finally:
        daemon.stop()
        lab.cleanup()


@contextmanager
def through_ovs(prefix: str, work: Path) -> Iterator[NetnsLab]:
    lab = two_hosts(prefix)
    ovs = OvsNetdev(work / "ovs")
    try:
        for name in ("a", "b"):
            lab.run(name, "ethtool", "-K", "eth0", "tx", "off", check=True)
        ovs.start()
        ovs.add_bridge(f"{prefix}ob", [lab.hosts[n].switch_port for n in ("a", "b")])
        yield lab
    finally:
        ovs.stop()
        lab.cleanup()


PATHS: dict[str, Callable[[str, Path], object]] = {
    "direct veth (limit)": lambda p, w: direct_pair(p),
    "Open vSwitch 3.1 netdev": through_ovs,
    "ovs-runtime": through_ovs_runtime,
}


Measure = Callable[[NetnsLab, bool, int], float]
Capacity = Callable[[NetnsLab, int], float]
Latency = Callable[[NetnsLab], tuple[float, float]]
ROUND_TRIPS = 5000


def capacity(lab: NetnsLab, seconds: int) -> float:
    """64-byte frames per second delivered from a to b with trafgen sending."""
    return frame_blaster.delivered_pps(lab, seconds, f"{NET}1", f"{NET}2")


def latency(lab: NetnsLab) -> tuple[float, float]:
    """Median and 99th-percentile UDP round trip a -> b -> a, in microseconds."""
    return round_trip_us(lab, ROUND_TRIPS, "a", "b", f"{NET}2")


def compare(
    paths: dict[str, Callable[[str, Path], object]],
    runs: int,
    seconds: int,
    prefix: str,
    title: str,
    measure: Measure = iperf,
    blast: Capacity | None = None,
    receiver: str = "b",
    rtt: Latency | None = None,
) -> None:
    """Each path, ``runs`` times in turn: TCP and 64-byte UDP (and with ``blast`` the
    64-byte capacity, with ``rtt`` the round-trip latency); then the medians and their
    ratios to Open vSwitch.
    ``measure(lab, udp, seconds)`` runs one iperf3; ``receiver`` is its server's host,
    whose socket-buffer drops are reported beside the 64-byte figure."""
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix=f"ovsr-{prefix}-") as tmp:
        for run in range(runs):
            for number, (label, factory) in enumerate(paths.items()):
                with factory(f"{prefix}{run}", Path(tmp) / f"{run}-{number}") as lab:  # type: ignore[attr-defined]
                    assert isinstance(lab, NetnsLab)
                    figures = {"tcp": measure(lab, False, seconds)}
                    figures["pps"], figures["drop"] = socket_drop_share(
                        lab, receiver, functools.partial(measure, lab, True, seconds)
                    )
                    if blast is not None:
                        figures["cap"] = blast(lab, seconds)
                    if rtt is not None:
                        figures["rtt"], figures["p99"] = rtt(lab)
                entry = results.setdefault(label, {})
                for metric, value in figures.items():
                    entry.setdefault(metric, []).append(value)
                line = (
                    f"run {run + 1}: {label:<26} TCP {figures['tcp']:6.2f} Gbit/s   64-byte UDP "
                    f"{figures['pps'] / 1000:7.1f} kpps ({figures['drop']:2.0f}% of what reached "
                    "the receiving socket dropped there)"
                )
                if "cap" in figures:
                    line += f"   64-byte capacity {figures['cap'] / 1000:7.1f} kpps"
                if "rtt" in figures:
                    line += f"   round trip {figures['rtt']:5.0f} us (p99 {figures['p99']:5.0f})"
                print(line, flush=True)
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in results.items()}
    ovs = med["Open vSwitch 3.1 netdev"]
    print()
    print(f"medians of {runs} runs, {seconds} s each{title}")
    head = (
        f"{'path':<26} {'TCP Gbit/s':>10} {'vs OVS':>7} {'64B kpps':>9} {'vs OVS':>7} "
        f"{'socket drops':>12}"
    )
    head += f" {'64B capacity kpps':>18} {'vs OVS':>7}" if blast is not None else ""
    print(head + (f" {'RTT us':>7} {'vs OVS':>7} {'p99 us':>7}" if rtt is not None else ""))
    for label, m in med.items():
        row = (
            f"{label:<26} {m['tcp']:>10.2f} {m['tcp'] / ovs['tcp']:>6.2f}x "
            f"{m['pps'] / 1000:>9.1f} {m['pps'] / ovs['pps']:>6.2f}x {m['drop']:>11.0f}%"
        )
        if blast is not None:
            row += f" {m['cap'] / 1000:>18.1f} {m['cap'] / ovs['cap']:>6.2f}x"
        if rtt is not None:
            row += f" {m['rtt']:>7.0f} {m['rtt'] / ovs['rtt']:>6.2f}x {m['p99']:>7.0f}"
        print(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args(argv)
    compare(PATHS, args.runs, args.seconds, "bn", "", blast=capacity, rtt=latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
