"""A switch's 64-byte forwarding capacity, measured as switches are: a packet generator
offers frames as fast as one core can, and we count what reaches the far side.

``trafgen`` (Debian ``netsniff-ng``) sends one 60-byte UDP frame (64 on the wire) from
host ``a`` to host ``b``'s MAC and address, port 9, where a socket that never reads
takes them (a full socket drops what arrives: the frames go as far as ``b``'s UDP
layer), from a transmit ring, on one core it binds itself to. The
figure is how many frames per second ``b``'s interface received (its ``rx_packets``,
read with pyroute2), after a second of warm-up: the forwarding rate at the maximum
offered load (RFC 2889's term; not RFC 2544's zero-loss throughput). Unlike iperf3's,
this figure does not depend on a receiving application's share of the CPUs: trafgen
binds itself to one core, and the scheduler runs the switch on the other (neither
switch is pinned). The kernel's receive into the switch's socket runs on the
generator's core, the switch's transmit and the far namespace's receive on the
switch's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyroute2 import NetNS

from tests.netns_lab import NetnsLab

WARM_UP = 1.0  # seconds before counting: the switch has learned, rings are primed
UDP_DISCARD = 9
SINK = (
    "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "s.bind(({address!r}, {port})); time.sleep(3600)"
)


def _link(lab: NetnsLab, host: str) -> tuple[str, int]:
    """The host's eth0: its MAC and received frames."""
    with NetNS(lab.hosts[host].ns) as ns:
        link = ns.get_links(ifname="eth0")[0]
        return str(link.get_attr("IFLA_ADDRESS")), int(link.get_attr("IFLA_STATS64")["rx_packets"])


def _bytes(mac: str) -> str:
    return ", ".join(f"0x{octet}" for octet in mac.split(":"))


def _ipv4(address: str) -> str:
    return ", ".join(address.split("."))


def udp_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str) -> str:
    """A trafgen packet: Ethernet, IPv4 (checksummed by trafgen), UDP to port 9 with 18
    bytes of payload (the UDP checksum 0: none)."""
    return (
        "{ "
        + ", ".join(
            (
                _bytes(dst_mac),
                _bytes(src_mac),
                "0x08, 0x00",  # IPv4
                "0x45, 0x00, 0x00, 0x2e, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11",  # 46 bytes, UDP
                "csumip(14, 33)",
                _ipv4(src_ip),
                _ipv4(dst_ip),
                f"0x13, 0x88, 0x00, {UDP_DISCARD:#04x}, 0x00, 0x1a, 0x00, 0x00",  # 5000 -> 9
                "fill(0x41, 18)",
            )
        )
        + " }\n"
    )


def delivered_pps(lab: NetnsLab, seconds: int, src_ip: str, dst_ip: str) -> float:
    """Frames per second that reached ``b`` while ``a`` sent at full speed."""
    if not lab.ping("b", src_ip, count=1):  # the switch learns where b is
        raise RuntimeError(f"b cannot reach {src_ip}: nothing to measure")
    src_mac, _ = _link(lab, "a")
    dst_mac, _ = _link(lab, "b")
    with contextlib.ExitStack() as cleanup:
        # A socket that never reads: datagrams end in its full buffer, not in ICMP errors
        # (whose route look-ups would cost more than the forwarding being measured).
        sink = lab.popen("b", sys.executable, "-c", SINK.format(address=dst_ip, port=UDP_DISCARD))
        cleanup.callback(stop_process, sink, signal.SIGKILL)
        with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as conf:
            conf.write(udp_frame(src_mac, dst_mac, src_ip, dst_ip))
        cleanup.callback(Path(conf.name).unlink, missing_ok=True)
        # trafgen signals its whole process group when it stops: give it one of its own.
        generator = subprocess.Popen(
            [
                *("nsenter", f"--net=/run/netns/{lab.hosts['a'].ns}"),
                *("trafgen", "--in", conf.name, "--out", "eth0", "--cpus", "1", "--no-sock-mem"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        cleanup.callback(stop_process, generator, signal.SIGKILL, group=True)  # if still running
        time.sleep(WARM_UP)
        _, before = _link(lab, "b")
        started = time.monotonic()
        time.sleep(seconds)
        _, after = _link(lab, "b")
        elapsed = time.monotonic() - started
        stop_process(generator, signal.SIGINT, group=True)
        if generator.returncode not in (0, -signal.SIGINT):
            errors = generator.stderr.read() if generator.stderr else b""
            raise RuntimeError(f"trafgen failed ({generator.returncode}): {errors.decode()[-300:]}")
    return (after - before) / elapsed


def stop_process(
    process: subprocess.Popen[bytes] | subprocess.Popen[str], sig: int, group: bool = False
) -> None:
    """Signal a process (or its whole group) unless it has ended, and reap it; a process
    that ignores the signal for 10 s is killed."""
    if process.poll() is not None:
        return
    _signal(process, sig, group)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL, group)
        process.wait()


def _signal(
    process: subprocess.Popen[bytes] | subprocess.Popen[str], sig: int, group: bool
) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
