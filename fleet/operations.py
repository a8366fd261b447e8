"""Fleet operations over SSH with Fabric: status, collect, migrate and rolling-restart.

Every operation runs ordinary commands on the hosts (``ovsr``, ``systemctl``,
``journalctl``), so what it does can be read in the host's own logs and repeated by hand.
Hosts are contacted in parallel where order does not matter (status, collect) and one
at a time where it does (rolling-restart stops at the first unhealthy host).
"""

from __future__ import annotations

import io
import json
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabric import Connection
from invoke.exceptions import UnexpectedExit

from fleet.inventory import FleetHost

TUNNEL_TYPES = ("vxlan", "geneve", "gre")
PACKAGE_VERSION = (
    "dpkg-query -W -f='${Version}' ovs-runtime 2>/dev/null"
    " || rpm -q --qf '%{VERSION}-%{RELEASE}' ovs-runtime 2>/dev/null || echo none"
)


class FleetError(RuntimeError):
    pass


def connect(host: FleetHost, timeout: float = 10) -> Connection:
    kwargs: dict[str, Any] = {"look_for_keys": host.key_file is None}
    if host.key_file:
        kwargs["key_filename"] = host.key_file
    return Connection(
        host.address,
        user=host.user,
        port=host.port,
        connect_timeout=timeout,
        connect_kwargs=kwargs,
    )


def run(conn: Connection, command: str, admin: bool = False, check: bool = True) -> str:
    """Run a command quietly; ``admin`` commands go through sudo for a non-root user."""
    runner = conn.sudo if admin and conn.user != "root" else conn.run
    try:
        result = runner(command, hide=True, warn=not check, in_stream=False)
    except UnexpectedExit as exc:
        detail = (exc.result.stderr or exc.result.stdout).strip().splitlines()
        raise FleetError(
            f"{conn.host}: '{command}' exited {exc.result.exited}: {detail[-1] if detail else ''}"
        ) from None
    return str(result.stdout)


# -- status ---------------------------------------------------------------------------------


@dataclass
class HostStatus:
    host: str
    service: str = "unknown"
    version: str = "?"
    bridges: list[str] = field(default_factory=list)
    tunnels_up: int = 0
    tunnels: int = 0
    fdb: int = 0
    error: str | None = None


def host_status(host: FleetHost) -> HostStatus:
    status = HostStatus(host.name)
    try:
        with connect(host) as conn:
            status.service = run(conn, "systemctl is-active ovs-runtime", check=False).strip()
            status.version = run(conn, PACKAGE_VERSION, check=False).strip() or "none"
            if status.service == "active":
                dpif = json.loads(run(conn, "ovsr --timeout 10 --format json dpif-show"))
                for name, bridge in dpif["bridges"].items():
                    status.bridges.append(name)
                    status.fdb += int(bridge["mac_table"]["entries"])
                    for port in bridge["ports"].values():
                        if port["type"] in TUNNEL_TYPES:
                            status.tunnels += 1
                            status.tunnels_up += port["state"] == "up"
    except (FleetError, OSError, ValueError, KeyError) as exc:
        status.error = str(exc)
    return status


def fleet_status(hosts: list[FleetHost]) -> list[HostStatus]:
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        return list(pool.map(host_status, hosts))


def status_table(rows: list[HostStatus]) -> list[str]:
    lines = [
        f"{'HOST':<12} {'SERVICE':<9} {'VERSION':<10} {'BRIDGES':<20} {'TUNNELS':>8} {'FDB':>6}"
    ]
    for r in rows:
        tunnels = f"{r.tunnels_up}/{r.tunnels}"
        bridges = ",".join(r.bridges) or "-"
        lines.append(
            f"{r.host:<12} {r.service:<9} {r.version:<10} {bridges:<20} {tunnels:>8} {r.fdb:>6}"
        )
        if r.error:
            lines.append(f"{'':<12} error: {r.error}")
    return lines


# -- collect --------------------------------------------------------------------------------

COLLECTED = {
    "ovsr-show.txt": "ovsr --timeout 10 show",
    "dpif-show.json": "ovsr --timeout 10 --format json dpif-show",
    "interfaces.json": "ovsr --timeout 10 --format json list Interface",
    "service.txt": "systemctl status --no-pager ovs-runtime",
    "journal.txt": "journalctl -u ovs-runtime --no-pager -n 1000",
    "ovs-runtimed.conf": "cat /etc/ovs-runtime/ovs-runtimed.conf",
    "version.txt": PACKAGE_VERSION,
}


def collect_host(host: FleetHost, folder: Path) -> list[str]:
    """Write the host's state dumps and logs under ``folder/HOST``; returns problems."""
    target = folder / host.name
    target.mkdir(parents=True, exist_ok=True)
    problems = []
    try:
        with connect(host) as conn:
            for name, command in COLLECTED.items():
                admin = command.startswith(("journalctl", "cat "))
                try:
                    (target / name).write_text(run(conn, command, admin=admin))
                except FleetError as exc:
                    (target / f"{name}.error").write_text(f"{exc}\n")
                    problems.append(str(exc))
            try:
                dpif = json.loads((target / "dpif-show.json").read_text())
                for bridge in dpif["bridges"]:
                    fdb = run(
                        conn, f"ovsr --timeout 10 --format json fdb-show {shlex.quote(bridge)}"
                    )
                    (target / f"fdb-{bridge}.json").write_text(fdb)
            except (OSError, ValueError, KeyError, FleetError) as exc:
                problems.append(f"{host.name}: fdb: {exc}")
    except OSError as exc:
        problems.append(f"{host.name}: {exc}")
    return problems


def collect(hosts: list[FleetHost], folder: Path) -> list[str]:
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        results = pool.map(lambda h: collect_host(h, folder), hosts)
    return [p for problems in results for p in problems]


# -- migrate --------------------------------------------------------------------------------


def migrate(source: FleetHost, target: FleetHost, port: str, bridge: str | None) -> dict[str, Any]:
    """Move a VM port's network state from ``source`` to ``target``: export there, import
    here (the target announces the VM's MACs), then remove the port from the source."""
    if source.name == target.name:
        raise FleetError(f"migrate: source and target are the same host ({source.name})")
    quoted = shlex.quote(port)
    with connect(source) as src, connect(target) as dst:
        document = run(src, f"ovsr --timeout 10 port-export {quoted}")
        json.loads(document)  # a broken export stops here, before the target changes
        remote = f"/tmp/ovsr-port-{port}.json"
        dst.put(io.BytesIO(document.encode()), remote)
        try:
            args = f"{shlex.quote(remote)}" + (f" {shlex.quote(bridge)}" if bridge else "")
            summary = json.loads(run(dst, f"ovsr --timeout 30 --format json port-import {args}"))
        finally:
            run(dst, f"rm -f {shlex.quote(remote)}", check=False)
        run(src, f"ovsr --timeout 30 del-port {quoted}")
    summary["from"], summary["to"] = source.name, target.name
    return summary


# -- rolling restart -------------------------------------------------------------------------


def _snapshot(conn: Connection) -> dict[str, list[str]]:
    dpif = json.loads(run(conn, "ovsr --timeout 10 --format json dpif-show"))
    return {name: sorted(b["ports"]) for name, b in dpif["bridges"].items()}


def _healthy(conn: Connection, before: dict[str, list[str]], timeout: float) -> str | None:
    """None when the service is active and runs the same bridges and ports as before."""
    deadline = time.monotonic() + timeout
    problem = "not checked"
    while time.monotonic() < deadline:
        state = run(conn, "systemctl is-active ovs-runtime", check=False).strip()
        if state != "active":
            problem = f"service is {state}"
        else:
            try:
                after = _snapshot(conn)
            except (FleetError, ValueError) as exc:
                problem = f"ovsr does not answer: {exc}"
            else:
                if after == before:
                    return None
                problem = f"bridges/ports differ: before {before}, after {after}"
        time.sleep(1)
    return problem


def rolling_restart(hosts: list[FleetHost], timeout: float = 30, log: Any = print) -> list[str]:
    """Restart one host at a time; stop at the first unhealthy one. Returns the hosts
    restarted and healthy; raises FleetError naming the host that failed."""
    done: list[str] = []
    for host in hosts:
        with connect(host) as conn:
            before = _snapshot(conn)
            pid = run(conn, "systemctl show -p MainPID --value ovs-runtime").strip()
            try:
                run(conn, "systemctl restart ovs-runtime", admin=True)
            except FleetError as exc:
                problem: str | None = str(exc)
            else:
                problem = _healthy(conn, before, timeout)
            if problem is not None:
                journal = run(
                    conn, "journalctl -u ovs-runtime --no-pager -n 15", admin=True, check=False
                )
                raise FleetError(
                    f"{host.name} is unhealthy after restart ({problem}); stopped, "
                    f"{len(hosts) - len(done) - 1} host(s) not touched. Journal:\n{journal}"
                )
            new_pid = run(conn, "systemctl show -p MainPID --value ovs-runtime").strip()
            log(f"{host.name}: restarted (pid {pid} -> {new_pid}), healthy")
            done.append(host.name)
    return done
