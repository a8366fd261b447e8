"""The ovs_runtime_install role on a real systemd host (a booted Debian 12 nspawn
container, Ansible running inside it with a local connection): it installs the .deb,
enables and starts the service, manages the config file, and a config change reloads
the daemon instead of restarting it."""

from __future__ import annotations

import re
import shutil
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
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NspawnHost]:
    deb, _ = build(tmp_path_factory.mktemp("pkg-role"))
    binds = {
        deb.parent: "/dist",
        REPO / "roles": "/srv/ovsr/roles",
        REPO / "playbooks": "/srv/ovsr/playbooks",
    }
    machine = NspawnHost("ovsr-role", binds).boot()
    try:
        yield machine
    finally:
        machine.shutdown()


def play(host: NspawnHost, *extra: str) -> tuple[int, str]:
    result = host.run(
        "env",
        "ANSIBLE_ROLES_PATH=/srv/ovsr/roles",
        "ANSIBLE_NOCOLOR=1",
        "ANSIBLE_LOCAL_TEMP=/tmp/ansible-local",
        "ANSIBLE_REMOTE_TEMP=/tmp/ansible-remote",
        "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=/usr/bin/python3",
        "-e",
        "ovs_runtime_install_package_dir=/dist",
        "-e",
        f"ovs_runtime_install_version={__version__}",
        "/srv/ovsr/playbooks/install.yml",
        *extra,
        check=False,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


def changed(out: str) -> int:
    match = re.search(r"changed=(\d+)", out)
    assert match, out
    return int(match.group(1))


def test_install_role_installs_enables_and_is_idempotent(host: NspawnHost) -> None:
    rc, out = play(host)
    assert rc == 0 and changed(out) >= 2, out
    assert host.run("dpkg-query", "-W", "-f=${Version}", "ovs-runtime").stdout == __version__
    assert host.run("systemctl", "is-enabled", "ovs-runtime").stdout.strip() == "enabled"
    host.run("systemctl", "is-active", "--quiet", "ovs-runtime")
    assert "Bridge" not in host.run("ovsr", "show").stdout
    rc, out = play(host)
    assert rc == 0 and changed(out) == 0, out


def test_config_change_reloads_not_restarts(host: NspawnHost) -> None:
    pid = host.run("systemctl", "show", "-p", "MainPID", "--value", "ovs-runtime").stdout
    rc, out = play(host, "-e", "ovs_runtime_install_log_level=debug")
    assert rc == 0 and "RUNNING HANDLER [ovs_runtime_install : Reload ovs-runtime]" in out, out
    assert "log_level = debug" in host.run("cat", "/etc/ovs-runtime/ovs-runtimed.conf").stdout
    assert (
        host.run("systemctl", "show", "-p", "MainPID", "--value", "ovs-runtime").stdout == pid
    )  # same process: reloaded, not restarted
    assert "SIGHUP: reloaded" in host.journal()


def test_bad_variable_fails_before_any_change(host: NspawnHost) -> None:
    before = host.run("cat", "/etc/ovs-runtime/ovs-runtimed.conf").stdout
    rc, out = play(host, "-e", "ovs_runtime_install_log_level=loud")
    assert rc != 0 and "ovs_runtime_install_log_level" in out and "loud" in out, out
    assert host.run("cat", "/etc/ovs-runtime/ovs-runtimed.conf").stdout == before
