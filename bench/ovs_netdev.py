"""Run Debian's Open vSwitch (ovsdb-server + ovs-vswitchd, userspace ``netdev`` datapath)
in a private directory, for side-by-side benchmarks. Nothing touches the system's own
OVS configuration, and ``stop`` kills both daemons."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pyroute2 import IPRoute

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class OvsNetdev:
    def __init__(self, workdir: Path, netns: str | None = None) -> None:
        """With ``netns``, ovs-vswitchd runs inside that network namespace (for overlay
        benchmarks with one "hypervisor" per namespace)."""
        self.netns = netns
        self.dir = workdir
        self.db_sock = workdir / "db.sock"
        self.bridges: list[str] = []
        self.env = dict(
            os.environ,
            OVS_RUNDIR=str(workdir),
            OVS_LOGDIR=str(workdir),
            OVS_DBDIR=str(workdir),
            OVS_SYSCONFDIR=str(workdir),
        )

    def vsctl(self, *args: str) -> str:
        proc = subprocess.run(
            ["ovs-vsctl", f"--db=unix:{self.db_sock}", "--timeout=30", *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
        )
        return proc.stdout

    def start(self) -> None:
        if shutil.which("ovs-vswitchd") is None:
            raise RuntimeError("ovs-vswitchd missing: run `make deps` (openvswitch-switch)")
        self.dir.mkdir(parents=True, exist_ok=True)
        db = self.dir / "conf.db"
        subprocess.run(["ovsdb-tool", "create", str(db), SCHEMA], check=True, env=self.env)
        subprocess.run(
            [
                "ovsdb-server",
                str(db),
                f"--remote=punix:{self.db_sock}",
                f"--pidfile={self.dir}/ovsdb-server.pid",
                "--detach",
                f"--log-file={self.dir}/ovsdb-server.log",
                f"--unixctl={self.dir}/ovsdb-server.ctl",
            ],
            check=True,
            env=self.env,
        )
        self.vsctl("--no-wait", "init")
        enter = ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []
        subprocess.run(
            [
                *enter,
                "ovs-vswitchd",
                f"unix:{self.db_sock}",
                f"--pidfile={self.dir}/ovs-vswitchd.pid",
                "--detach",
                f"--log-file={self.dir}/ovs-vswitchd.log",
                f"--unixctl={self.dir}/ovs-vswitchd.ctl",
            ],
            check=True,
            env=self.env,
        )

    def appctl(self, *args: str) -> str:
        proc = subprocess.run(
            ["ovs-appctl", f"--target={self.dir}/ovs-vswitchd.ctl", *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
        )
        return proc.stdout

    def add_bridge(self, name: str, ports: list[str]) -> None:
        self.bridges.append(name)
        self.vsctl("add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev")
        for port in ports:
            self.vsctl("add-port", name, port)
        time.sleep(1)

    def stop(self) -> None:
        for name in ("ovs-vswitchd", "ovsdb-server"):
            pidfile = self.dir / f"{name}.pid"
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # The netdev datapath leaves its TAP devices behind ("ovs-netdev", one per bridge).
        if self.netns:
            return  # they go with the namespace
        with IPRoute() as ipr:
            for link in ("ovs-netdev", *self.bridges):
                for index in ipr.link_lookup(ifname=link):
                    ipr.link("del", index=index)
