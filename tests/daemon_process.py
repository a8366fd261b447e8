"""Start and stop real ``ovs-runtimed`` processes for tests, each in its own directories."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ovs_runtime.cli.client import OvsdbClient

REPO = Path(__file__).resolve().parent.parent


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    return env


class DaemonProcess:
    def __init__(
        self,
        base: Path,
        extra_args: tuple[str, ...] = ("--datapath", "none"),
        netns: str | None = None,
    ) -> None:
        """Database-layer tests default to ``--datapath none``; switching tests pass
        ``extra_args=()`` to run the userspace datapath. With ``netns`` the daemon runs
        inside that network namespace (its socket stays reachable through the file
        system)."""
        self.netns = netns
        self.base = base
        self.state_dir = base / "state"
        self.run_dir = base / "run"
        self.socket = self.run_dir / "db.sock"
        self.log_path = base / "daemon.log"
        self.config = base / "ovs-runtimed.conf"
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> str:
        return f"unix:{self.socket}"

    def command(self) -> list[str]:
        enter = []
        if self.netns:  # a private mount of /sys, so sysfs shows the namespace's devices
            enter = [
                *("nsenter", f"--net=/run/netns/{self.netns}"),
                *("unshare", "--mount", "--propagation", "slave", "--"),
                *("sh", "-c", 'mount -t sysfs sysfs /sys && exec "$@"', "sh"),
            ]
        return [
            *enter,
            sys.executable,
            "-m",
            "ovs_runtime.daemon.main",
            "--state-dir",
            str(self.state_dir),
            "--run-dir",
            str(self.run_dir),
            "--config",
            str(self.config),
            *self.extra_args,
        ]

    def start(self, env: dict[str, str] | None = None, wait: bool = True) -> DaemonProcess:
        self.base.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=log,
            env=env or python_env(),
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.socket))
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"daemon not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def client(self, timeout: float = 10.0) -> OvsdbClient:
        return OvsdbClient(self.db, timeout)

    def transact(self, *ops: Any) -> list[Any]:
        client = self.client()
        try:
            result: list[Any] = client.call("transact", ["Open_vSwitch", *ops])
            return result
        finally:
            client.close()

    def ovsr(
        self, *args: str, timeout: float = 30.0, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_ovsr("--db", self.db, *args, timeout=timeout, input_text=input_text)


def run_ovsr(
    *args: str, timeout: float = 30.0, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ovs_runtime.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=python_env(),
        input=input_text,
    )
