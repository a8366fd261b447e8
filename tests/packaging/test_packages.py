"""The .deb and .rpm: built from one tree, lint-clean, reproducible, with the right
dependencies, files, scriptlets and a systemd unit that verifies and is hardened."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovs_runtime import __version__

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# PyPI names of our runtime requirements -> the Debian 12 packages that provide them.
DEBIAN_NAMES = {
    "ovs": "python3-openvswitch",
    "pyroute2": "python3-pyroute2",
    "pyyaml": "python3-yaml",
    "systemd-python": "python3-systemd",
}
RPM_NAMES = {
    "ovs": "python3-openvswitch",
    "pyroute2": "python3-pyroute2",
    "pyyaml": "python3-pyyaml",
    "systemd-python": "python3-systemd",
}

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-buildpackage") is None or shutil.which("rpmbuild") is None,
    reason="packaging tools missing: run `make deps`",
)


def build(out: Path, epoch: str = "1764000000", version: str = __version__) -> tuple[Path, Path]:
    env = dict(
        os.environ,
        OVSR_BUILD_DIR=str(out / "build"),
        OVSR_DIST_DIR=str(out / "dist"),
        SOURCE_DATE_EPOCH=epoch,
        PATH=SYSTEM_PATH,
    )
    if version != __version__:
        env["OVSR_VERSION"] = version
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/build-packages.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deb = out / "dist" / f"ovs-runtime_{version}_all.deb"
    rpm = out / "dist" / f"ovs-runtime-{version}-1.noarch.rpm"
    assert deb.exists() and rpm.exists()
    return deb, rpm


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    yield build(tmp_path_factory.mktemp("pkg"))


def run(*argv: str) -> str:
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env=dict(os.environ, PATH=SYSTEM_PATH)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def requirement_names() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~ ;\[]", dep)[0].lower() for dep in project["dependencies"]}


def test_deb_depends_match_runtime_requirements(packages: tuple[Path, Path]) -> None:
    deb, _ = packages
    depends = run("dpkg-deb", "-f", str(deb), "Depends")
    names = {re.split(r"[ (]", d.strip())[0] for d in depends.split(",")}
    wanted = {DEBIAN_NAMES[r] for r in requirement_names()}
    assert wanted <= names, (wanted, names)
    # python3 comes from dh-python; systemd (for systemd-sysusers) from dh_installsysusers.
    extra = names - wanted - {"python3", "python3:any", "systemd"}
    assert not extra, f"Depends not in pyproject's requirements: {extra}"
    assert "python3-pyroute2 (>= 0.7.2)" in depends


def test_lintian_is_clean(packages: tuple[Path, Path]) -> None:
    deb, _ = packages
    proc = subprocess.run(
        ["lintian", "--fail-on", "error,warning", str(deb)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PATH=SYSTEM_PATH),
    )
    tags = [line for line in proc.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert proc.returncode == 0 and tags == [], proc.stdout + proc.stderr


def test_deb_layout(packages: tuple[Path, Path]) -> None:
    deb, _ = packages
    files = run("dpkg-deb", "-c", str(deb))
    for path in (
        "./usr/bin/ovsr",
        "./usr/bin/ovs-runtimed",
        "./lib/systemd/system/ovs-runtime.service",
        "./usr/lib/sysusers.d/ovs-runtime.conf",
        "./etc/ovs-runtime/ovs-runtimed.conf",
        "./usr/lib/python3/dist-packages/ovs_runtime/db/Open_vSwitch.ovsschema",
        "./usr/share/man/man8/ovsr.8.gz",
        "./usr/lib/systemd/network/80-ovs-runtime.network",
        "./usr/lib/NetworkManager/conf.d/80-ovs-runtime.conf",
    ):
        assert path in files, path
    conffiles = subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    assert b"/etc/ovs-runtime/ovs-runtimed.conf" in conffiles


def test_rpmlint_has_no_errors(packages: tuple[Path, Path]) -> None:
    _, rpm = packages
    proc = subprocess.run(
        ["rpmlint", "-r", str(REPO / "packaging/rpm/ovs-runtime.rpmlintrc"), str(rpm)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert " 0 errors" in proc.stdout, proc.stdout


def test_rpm_layout_requirements_and_scriptlets(
    packages: tuple[Path, Path], tmp_path: Path
) -> None:
    _, rpm = packages
    files = run("rpm", "-qlp", str(rpm)).split()
    for path in (
        "/usr/bin/ovsr",
        "/usr/bin/ovs-runtimed",
        "/usr/lib/systemd/system/ovs-runtime.service",
        "/usr/lib/sysusers.d/ovs-runtime.conf",
        "/etc/ovs-runtime/ovs-runtimed.conf",
        "/var/lib/ovs-runtime",
        "/usr/lib/systemd/network/80-ovs-runtime.network",
        "/usr/lib/NetworkManager/conf.d/80-ovs-runtime.conf",
    ):
        assert path in files, path
    requires = run("rpm", "-qpR", str(rpm))
    for req in requirement_names():
        assert RPM_NAMES[req] in requires, req
    scripts = run("rpm", "-qp", "--scripts", str(rpm))
    assert "systemd-sysusers" in scripts and "try-restart ovs-runtime.service" in scripts
    assert "disable --now ovs-runtime.service" in scripts
    root = tmp_path / "root"
    run(
        "rpm",
        "--root",
        str(root),
        "--nodeps",
        "--noscripts",
        "--dbpath",
        str(root / "rpmdb"),
        "-i",
        str(rpm),
    )
    assert (root / "usr/bin/ovsr").stat().st_mode & 0o111
    assert (root / "usr/lib/python3.11/site-packages/ovs_runtime/__init__.py").exists()
    assert (
        "__version__"
        in (root / "usr/lib/python3.11/site-packages/ovs_runtime/__init__.py").read_text()
    )


def test_deb_is_reproducible(packages: tuple[Path, Path], tmp_path: Path) -> None:
    deb, _ = packages
    again, _ = build(tmp_path)
    assert (
        hashlib.sha256(deb.read_bytes()).hexdigest()
        == hashlib.sha256(again.read_bytes()).hexdigest()
    )


def test_systemd_unit_verifies_and_is_hardened(packages: tuple[Path, Path], tmp_path: Path) -> None:
    deb, _ = packages
    root = tmp_path / "root"
    run("dpkg-deb", "-x", str(deb), str(root))
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy("/bin/kill", root / "bin/kill")  # ExecReload's command, from the base system
    run("systemd-analyze", "verify", f"--root={root}", "ovs-runtime.service")
    unit = root / "lib/systemd/system/ovs-runtime.service"
    report = run("systemd-analyze", "security", "--offline=true", str(unit))
    score = float(
        re.search(r"Overall exposure level for ovs-runtime.service: ([\d.]+)", report).group(1)
    )  # type: ignore[union-attr]
    print(f"systemd-analyze security exposure: {score}")
    assert score <= 4.0
    text = unit.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "FileDescriptorStoreMax=",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_PACKET AF_INET AF_INET6",
        "Before=network-pre.target",
        "RuntimeDirectoryPreserve=yes",
    ):
        assert line in text, line
