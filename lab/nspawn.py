"""A booted Debian 12 host in systemd-nspawn: systemd as PID 1, its own network
namespace and (volatile) filesystem.

Each host boots the cached root filesystem (``lab.rootfs``) with ``--volatile=overlay``,
so every host starts from the same clean image and leaves nothing behind. With
``network="veth"`` the host gets ``host0``, whose other end (``ve-<machine>``) stays on
the control node; with ``"private"`` it has only loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lab.rootfs import cached_rootfs


class NspawnHost:
    def __init__(
        self,
        name: str,
        binds: dict[Path, str],
        hostname: str | None = None,
        network: str = "private",
        machine_id: str | None = None,
    ) -> None:
        self.name = name
        self.binds = binds
        self.hostname = hostname or name
        self.network = network
        self.machine_id = machine_id
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None
        self.log: Path | None = None

    @property
    def host_veth(self) -> str:
        """The control node's end of ``host0`` (``network="veth"``)."""
        return f"ve-{self.name}"[:15]

    @property
    def netns_path(self) -> str:
        return f"/proc/{self.leader}/ns/net"

    def boot(self, timeout: float = 120, log: Path | None = None) -> NspawnHost:
        self.start(log)
        return self.wait_booted(timeout)

    def start(self, log: Path | None = None) -> None:
        """Start booting; ``log`` takes nspawn's own messages (a lab host outlives the
        command that started it, so no pipe)."""
        root = cached_rootfs()
        argv = [
            "systemd-nspawn",
            "-D",
            str(root),
            "-b",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
            "--network-veth" if self.network == "veth" else "--private-network",
            f"--machine={self.name}",
            f"--hostname={self.hostname}",
            "--console=passive",
        ]
        if self.machine_id:
            argv.append(f"--uuid={self.machine_id}")
        for src, dst in self.binds.items():
            argv.append(f"--bind-ro={src}:{dst}")
        self.log = log
        stderr = open(log, "ab") if log else subprocess.PIPE  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        if log:
            stderr.close()  # type: ignore[union-attr]

    def _exit_message(self) -> str:
        assert self.proc is not None
        if self.log is not None:
            return self.log.read_text(errors="replace")[-2000:]
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def wait_booted(self, timeout: float = 120) -> NspawnHost:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nspawn {self.name} exited: {self._exit_message()}")
            self.leader = self._find_leader()
            if self.leader is not None:
                state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return self
            time.sleep(0.3)
        raise RuntimeError(f"host {self.name} did not finish booting in {timeout} s")

    def _find_leader(self) -> int | None:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def run(
        self, *argv: str, check: bool = True, user: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        assert self.leader is not None
        command = list(argv)
        if user:
            command = ["runuser", "-u", user, "--", *command]
        proc = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def journal(self, unit: str = "ovs-runtime") -> str:
        return self.run("journalctl", "-u", unit, "--no-pager", "-n", "50", check=False).stdout

    def shutdown(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.leader is not None:
            subprocess.run(
                ["nsenter", "-t", str(self.leader), "-a", "systemctl", "poweroff"],
                capture_output=True,
                timeout=30,
            )
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
