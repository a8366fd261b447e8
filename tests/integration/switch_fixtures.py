"""Fixtures for real-traffic switching tests: a daemon running the userspace datapath,
namespaces wired to it, and Open vSwitch itself to compare with. Everything is removed
afterwards, even on failure."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.ovs_netdev import OvsNetdev
from tests.daemon_process import DaemonProcess
from tests.netns_lab import NetnsLab, RawPort, unique_prefix


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    netlab = NetnsLab(unique_prefix())
    try:
        yield netlab
    finally:
        netlab.cleanup()


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "switch", extra_args=()).start()
    try:
        yield proc
    finally:
        proc.stop()
        print(proc.log()[-3000:])


@pytest.fixture
def ovs(tmp_path: Path) -> Iterator[OvsNetdev]:
    """Open vSwitch 3.1 (ovsdb-server and ovs-vswitchd in a private directory)."""
    switch = OvsNetdev(tmp_path / "ovs")
    try:
        switch.start()
        yield switch
    finally:
        switch.stop()


def wait_attached(daemon: DaemonProcess, names: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = json.loads(
            daemon.ovsr(
                "--format", "json", "--columns=name,ofport,error", "list", "Interface"
            ).stdout
        )
        state = {r["name"]: r for r in rows}
        if all(n in state and state[n]["ofport"] and state[n]["ofport"][0] > 0 for n in names):
            return
        time.sleep(0.05)
    raise AssertionError(f"ports not attached in time: {state}")


def apply_bridge(
    daemon: DaemonProcess,
    tmp: Path,
    bridge: str,
    ports: dict[str, dict[str, Any]],
    state: str = "replaced",
    columns: dict[str, Any] | None = None,
) -> None:
    doc = {"bridges": {bridge: {"ports": ports, **(columns or {})}}}
    path = tmp / f"{bridge}.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = daemon.ovsr("apply", f"--state={state}", str(path))
    assert proc.returncode in (0, 2), proc.stderr
    wait_attached(daemon, [n for n, p in ports.items() if p.get("type") != "patch"])


class VethHarness:
    """The behaviour suite's ports a..d as namespaces on real veths, sent to and
    captured with raw sockets; a subclass wires the switch-side ends to a switch."""

    def __init__(self, lab: NetnsLab) -> None:
        self.lab = lab
        for name in "abcd":
            lab.add_host(name)
        self.raw: dict[str, RawPort] = {name: lab.raw_socket(name) for name in "abcd"}

    def send(self, port: str, raw: bytes) -> None:
        self.raw[port].send(raw)

    def received(self) -> dict[str, list[bytes]]:
        time.sleep(0.2)
        return {name: sock.drain(settle=0) for name, sock in self.raw.items()}

    def close(self) -> None:
        for sock in self.raw.values():
            sock.close()


class RealHarness(VethHarness):
    """The behaviour-suite harness over real veths, on ovs-runtime."""

    def __init__(self, daemon: DaemonProcess, lab: NetnsLab, tmp: Path) -> None:
        super().__init__(lab)
        self.daemon, self.tmp = daemon, tmp

    def configure(
        self, ports: dict[str, dict[str, Any]], bridge: dict[str, Any] | None = None
    ) -> None:
        wanted = {self.lab.hosts[name].switch_port: cfg for name, cfg in ports.items()}
        apply_bridge(
            self.daemon, self.tmp, "br0", wanted, columns={"flood_vlans": [], **(bridge or {})}
        )
        assert self.daemon.ovsr("fdb-flush", "br0").returncode == 0
