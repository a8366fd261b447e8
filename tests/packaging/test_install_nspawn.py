"""The .deb on a real systemd host (a booted Debian 12 nspawn container): apt installs it
and resolves its Debian dependencies, the service is active and enabled, and ovsr works
as root and for members of the ovs-runtime group, and says clearly why not for others."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest

from lab.nspawn import NspawnHost
from ovs_runtime import __version__
from tests.packaging.test_packages import build

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-nspawn") is None or shutil.which("debootstrap") is None,
    reason="systemd-container or debootstrap missing: run `make deps`",
)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NspawnHost]:
    out = tmp_path_factory.mktemp("pkg-nspawn")
    deb, _ = build(out)
    machine = NspawnHost("ovsr-pkgtest", {deb.parent: "/dist"}).boot()
    try:
        yield machine
    finally:
        machine.shutdown()


def open_files(limits: str) -> tuple[int, int]:
    """(soft, hard) "Max open files" of a /proc/PID/limits text."""
    found = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits)
    assert found, limits
    return int(found.group(1)), int(found.group(2))


def test_apt_installs_and_service_runs(host: NspawnHost) -> None:
    result = host.run("apt-get", "install", "-y", f"/dist/ovs-runtime_{__version__}_all.deb")
    assert "Setting up ovs-runtime" in result.stdout
    version = host.run("dpkg-query", "-W", "-f=${Version}", "ovs-runtime").stdout
    assert version == __version__
    try:
        assert host.run("systemctl", "is-enabled", "ovs-runtime").stdout.strip() == "enabled"
        host.run("systemctl", "is-active", "--quiet", "ovs-runtime")
    except AssertionError:
        print(host.journal())
        raise
    mode = host.run("stat", "-c", "%a %G", "/run/ovs-runtime/db.sock").stdout.split()
    assert mode == ["660", "ovs-runtime"]
    # Room for a thousand ports: the running daemon's descriptor limit, not the unit text.
    # systemd gives 65536, or the closest the host allows (a container's own hard
    # limit may be lower: this one's PID 1 has 20000 here), and never fails the start.
    pid = host.run("systemctl", "show", "-p", "MainPID", "--value", "ovs-runtime").stdout
    soft, hard = open_files(host.run("cat", f"/proc/{pid.strip()}/limits").stdout)
    allowed = open_files(host.run("cat", "/proc/1/limits").stdout)[1]
    assert soft == hard == min(65536, allowed) and soft > 1024, (soft, hard, allowed)


def test_ovsr_as_root_group_member_and_outsider(host: NspawnHost) -> None:
    host.run("ovsr", "add-br", "br0")
    assert "Bridge br0" in host.run("ovsr", "show").stdout
    host.run("useradd", "--create-home", "--groups", "ovs-runtime", "netops")
    host.run("useradd", "--create-home", "outsider")
    assert host.run("ovsr", "list-br", user="netops").stdout.split() == ["br0"]
    denied = host.run("ovsr", "show", user="outsider", check=False)
    assert denied.returncode == 1
    assert "permission denied" in denied.stderr and "ovs-runtime group" in denied.stderr
    assert "Traceback" not in denied.stderr


def test_reload_and_restart_keep_config(host: NspawnHost) -> None:
    host.run(
        "ovsr",
        "--may-exist",
        "add-br",
        "br0",
        "--",
        "set",
        "Bridge",
        "br0",
        "other_config:mac-aging-time=120",
    )
    host.run("systemctl", "reload", "ovs-runtime")
    host.run("systemctl", "restart", "ovs-runtime")
    host.run("systemctl", "is-active", "--quiet", "ovs-runtime")
    assert (
        host.run("ovsr", "get", "Bridge", "br0", "other_config:mac-aging-time").stdout.strip()
        == '"120"'
    )
    assert "SIGHUP: reloaded" in host.journal()
