"""Zero-loss restart and upgrade, measured: two VMs ping each other every 10 ms through
the bridge while the service restarts, and while apt upgrades the package; then remove
and purge. On a booted Debian 12 nspawn host."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.nspawn import NspawnHost
from ovs_runtime import __version__
from tests.packaging.test_packages import build

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-nspawn") is None or shutil.which("debootstrap") is None,
    reason="systemd-container or debootstrap missing: run `make deps`",
)
HERE = Path(__file__).resolve().parent
NEXT_VERSION = __version__ + ".1"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NspawnHost]:
    out = tmp_path_factory.mktemp("pkg-upgrade")
    deb, _ = build(out / "current")
    newer, _ = build(out / "next", version=NEXT_VERSION)
    machine = NspawnHost(
        "ovsr-upgrade", {deb.parent: "/dist", newer.parent: "/dist-next", HERE: "/guest"}
    ).boot()
    try:
        machine.run("apt-get", "install", "-y", f"/dist/ovs-runtime_{__version__}_all.deb")
        machine.run("python3", "/guest/guest_vms.py", "setup")
        machine.run(
            "ovsr",
            "add-br",
            "br0",
            "--",
            "add-port",
            "br0",
            "vm1p",
            "--",
            "add-port",
            "br0",
            "vm2p",
            "--",
            "set",
            "Port",
            "vm1p",
            "tag=10",
            "--",
            "set",
            "Port",
            "vm2p",
            "tag=10",
        )
        ping(machine, count=20)  # learn MACs, fill ARP caches
        yield machine
    finally:
        print(machine.journal()[-3000:])
        machine.shutdown()


def ping_during(host: NspawnHost, action: list[str], count: int = 500) -> tuple[int, int, float]:
    """Ping vm1 -> vm2 every 10 ms while ``action`` runs; (sent, received, largest gap s)."""
    assert host.leader is not None
    pinger = subprocess.Popen(
        [
            "nsenter",
            "-t",
            str(host.leader),
            "-a",
            "nsenter",
            "--net=/run/netns/vm1",
            "ping",
            "-D",
            "-i",
            "0.01",
            "-c",
            str(count),
            "-W",
            "3",
            "198.51.100.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    result = host.run(*action, timeout=300)
    assert result.returncode == 0
    out, err = pinger.communicate(timeout=120)
    return parse_ping(out + err)


def ping(host: NspawnHost, count: int) -> tuple[int, int, float]:
    out = host.run(
        "nsenter",
        "--net=/run/netns/vm1",
        "ping",
        "-D",
        "-i",
        "0.01",
        "-c",
        str(count),
        "-W",
        "3",
        "198.51.100.2",
        check=False,
    )
    return parse_ping(out.stdout)


def parse_ping(text: str) -> tuple[int, int, float]:
    match = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    assert match, text[-2000:]
    stamps = [float(t) for t in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", text, re.M)]
    gap = max((b - a for a, b in zip(stamps, stamps[1:], strict=False)), default=0.0)
    return int(match.group(1)), int(match.group(2)), gap


def test_restart_loses_no_packets(host: NspawnHost) -> None:
    sent, received, gap = ping_during(host, ["systemctl", "restart", "ovs-runtime"])
    print(
        f"systemctl restart: {sent} pings sent every 10 ms, {sent - received} lost, "
        f"largest gap between replies {gap * 1000:.0f} ms"
    )
    assert "took back" in host.journal(), "the restart did not use the fd store"
    assert received == sent


def test_upgrade_loses_no_packets_and_keeps_config(host: NspawnHost) -> None:
    host.run(
        "sed", "-i", "s/^log_level = info/log_level = debug/", "/etc/ovs-runtime/ovs-runtimed.conf"
    )
    sent, received, gap = ping_during(
        host, ["apt-get", "install", "-y", f"/dist-next/ovs-runtime_{NEXT_VERSION}_all.deb"]
    )
    print(
        f"apt upgrade {__version__} -> {NEXT_VERSION}: {sent} pings sent every 10 ms, "
        f"{sent - received} lost, largest gap between replies {gap * 1000:.0f} ms"
    )
    assert host.run("dpkg-query", "-W", "-f=${Version}", "ovs-runtime").stdout == NEXT_VERSION
    assert "log_level = debug" in host.run("cat", "/etc/ovs-runtime/ovs-runtimed.conf").stdout
    assert host.run("ovsr", "get", "Port", "vm1p", "tag").stdout.strip() == "10"
    assert received == sent


def test_bad_config_fails_with_file_and_line_then_recovers(host: NspawnHost) -> None:
    conf = "/etc/ovs-runtime/ovs-runtimed.conf"
    original = host.run("cat", conf).stdout
    host.run("sh", "-c", f"printf '[daemon]\\nlog_level = info\\nbogus_key = 1\\n' > {conf}")
    failed = host.run("systemctl", "restart", "ovs-runtime", check=False)
    assert failed.returncode != 0
    assert f"{conf}:3: unknown key 'bogus_key'" in host.journal()
    host.run("sh", "-c", f"cat > {conf} <<'EOF'\n{original}EOF")
    host.run("systemctl", "reset-failed", "ovs-runtime")
    host.run("systemctl", "restart", "ovs-runtime")
    assert host.run("ovsr", "get", "Port", "vm1p", "tag").stdout.strip() == "10"


def test_downgrade_works_and_keeps_config(host: NspawnHost) -> None:
    host.run(
        "apt-get", "install", "-y", "--allow-downgrades", f"/dist/ovs-runtime_{__version__}_all.deb"
    )
    assert host.run("dpkg-query", "-W", "-f=${Version}", "ovs-runtime").stdout == __version__
    host.run("systemctl", "is-active", "--quiet", "ovs-runtime")
    assert host.run("ovsr", "get", "Port", "vm1p", "tag").stdout.strip() == "10"
    sent, received, _ = ping(host, count=50)
    assert received == sent


def test_remove_keeps_state_and_purge_removes_it(host: NspawnHost) -> None:
    host.run("apt-get", "remove", "-y", "ovs-runtime")
    assert host.run("test", "-f", "/var/lib/ovs-runtime/conf.db", check=False).returncode == 0
    assert host.run("test", "-f", "/etc/ovs-runtime/ovs-runtimed.conf", check=False).returncode == 0
    host.run("apt-get", "purge", "-y", "ovs-runtime")
    assert host.run("test", "-e", "/etc/ovs-runtime/ovs-runtimed.conf", check=False).returncode != 0
    assert host.run("test", "-e", "/var/lib/ovs-runtime", check=False).returncode != 0
