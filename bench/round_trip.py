"""Round-trip latency between two namespaces: one UDP request, one reply, one at a time.

An echo server in ``b`` returns each 18-byte datagram; a client in ``a`` sends the next
only when the reply is back, ``count`` times after a warm-up, and reports the median
and the 99th percentile of the round trips. Nothing else runs, so the figure is what
the path adds to an idle request/response exchange (the two Python programs cost the
same on every path: compare paths, not absolute values). Every frame crosses the
switch twice, and a switch that sleeps when idle must be woken for each one.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys

from bench.frame_blaster import stop_process
from tests.netns_lab import NetnsLab

ECHO_PORT = 7
ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(({address!r}, {port}))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(64)
    s.sendto(data, peer)
"""
CLIENT = """
import json, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect(({address!r}, {port}))
payload = b"x" * 18
samples, lost = [], 0
for n in range({warm_up} + {count}):
    started = time.perf_counter_ns()
    s.send(payload)
    try:
        s.recv(64)
    except socket.timeout:
        lost += 1
        continue
    if n >= {warm_up}:
        samples.append(time.perf_counter_ns() - started)
samples.sort()
print(json.dumps({{"median": samples[len(samples) // 2], "p99": samples[len(samples) * 99 // 100],
                  "samples": len(samples), "lost": lost}}))
"""


def round_trip_us(
    lab: NetnsLab, count: int, client: str, server: str, server_ip: str
) -> tuple[float, float]:
    """Median and 99th-percentile round trip, in microseconds, client to server and back."""
    with contextlib.ExitStack() as cleanup:
        echo = lab.popen(
            server, sys.executable, "-c", ECHO.format(address=server_ip, port=ECHO_PORT)
        )
        cleanup.callback(stop_process, echo, signal.SIGKILL)
        assert echo.stdout is not None
        if echo.stdout.readline().strip() != "ready":
            errors = echo.stderr.read() if echo.stderr else ""
            raise RuntimeError(f"the echo server did not start: {errors[-300:]}")
        if not lab.ping(client, server_ip, count=1):  # resolves, and the switch learns
            raise RuntimeError(f"{client} cannot reach {server_ip}: nothing to measure")
        script = CLIENT.format(address=server_ip, port=ECHO_PORT, warm_up=200, count=count)
        proc = lab.run(client, sys.executable, "-c", script, timeout=count + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"round-trip client failed: {proc.stderr[-500:]}")
        result = json.loads(proc.stdout)
        if result["lost"] > count // 100:
            raise RuntimeError(f"{result['lost']} of {count} requests went unanswered")
        return result["median"] / 1000, result["p99"] / 1000
