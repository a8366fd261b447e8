"""A booted Debian 12 host in systemd-nspawn, for testing the package where it runs:
systemd as PID 1, its own network namespace and (volatile) filesystem.

The root filesystem is built once with debootstrap and cached; it carries the Debian
packages ovs-runtime depends on, because lab hosts have no route to the outside (what a
real fleet gets from an internal mirror). Each host boots it with ``--volatile=overlay``,
so every test starts from the same clean image and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("OVSR_ROOTFS_CACHE", "/var/cache/ovs-runtime-test"))
SUITE = "bookworm"
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "procps",
    "iproute2",
    "iputils-ping",
    "passwd",
    "python3",
    "python3-openvswitch",
    "python3-pyroute2",
    "python3-yaml",
    "python3-systemd",
    # Ansible runs inside the host for the install role test (-c local, real systemd)
    "ansible-core",
    "python3-apt",  # what Ansible's apt module uses on the target
    "python3-cffi-backend",  # debootstrap does not resolve the virtual package it provides
]


def debian_mirror() -> str:
    """The mirror this machine's apt uses, read at run time (never written down)."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            if parts[:1] == ["URIs:"] and "security" not in parts[1]:
                return parts[1]
            if parts[:1] == ["deb"] and "security" not in line:
                return parts[1]
    raise RuntimeError("no Debian mirror found in /etc/apt sources")


def cached_rootfs() -> Path:
    digest = hashlib.sha256(" ".join([SUITE, *PACKAGES]).encode()).hexdigest()[:12]
    root = CACHE / f"{SUITE}-{digest}"
    if (root / ".complete").exists():
        return root
    for stale in CACHE.glob(f"{SUITE}-*"):  # images for an older package list
        shutil.rmtree(stale, ignore_errors=True)
    partial = root.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(partial),
            debian_mirror(),
        ],
        check=True,
        capture_output=True,
        timeout=1200,
    )
    (partial / "etc/hostname").write_text("pkgtest\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    (root / ".complete").write_text("ok\n")
    return root


class NspawnHost:
    def __init__(self, name: str, binds: dict[Path, str]) -> None:
        self.name = name
        self.binds = binds
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None

    def boot(self, timeout: float = 120) -> NspawnHost:
        root = cached_rootfs()
        argv = [
            "systemd-nspawn",
            "-D",
            str(root),
            "-b",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
            "--private-network",
            f"--machine={self.name}",
            f"--hostname={self.name}",
            "--console=passive",
        ]
        for src, dst in self.binds.items():
            argv.append(f"--bind-ro={src}:{dst}")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nspawn exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
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
