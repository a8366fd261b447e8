"""The lab's Debian 12 root filesystem: built once with debootstrap and cached.

It carries the Debian packages ovs-runtime depends on, sshd and Ansible's needs, because
lab hosts have no route to the outside (what a real fleet gets from an internal mirror).
SSH host keys are not baked in: each host makes its own at first boot.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
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
    # lab hosts are managed over SSH, as in production
    "openssh-server",
]
RECIPE = 2  # bump when the steps after debootstrap change: the cache is rebuilt
SSHD_DROP_IN = """[Service]
# Host keys are made per host at first boot (the image carries none).
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""


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
    recipe = " ".join([SUITE, str(RECIPE), *PACKAGES])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
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
    for key in (partial / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    drop_in = partial / "etc/systemd/system/ssh.service.d"
    drop_in.mkdir(parents=True, exist_ok=True)
    (drop_in / "10-host-keys.conf").write_text(SSHD_DROP_IN)
    (partial / "etc/machine-id").write_text("")  # each host gets its own at boot
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    (root / ".complete").write_text("ok\n")
    return root
