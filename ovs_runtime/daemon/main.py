"""``ovs-runtimed``: the switch daemon.

    ovs-runtimed [--state-dir DIR] [--run-dir DIR] [--log-level LEVEL] [--config FILE]

Several instances run side by side with different ``--state-dir``/``--run-dir``. Logs
go to stderr, one line per event. SIGTERM/SIGINT stop cleanly, SIGHUP reloads the
config file and re-runs the reconciler.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from ovs_runtime import __version__
from ovs_runtime.bridge import qos_tc
from ovs_runtime.bridge.address_handover import AddressHandover
from ovs_runtime.bridge.bond_config import check_bonds
from ovs_runtime.bridge.confirm_rollback import PendingRollbacks, SnapshotError
from ovs_runtime.bridge.device_settings import check_device_settings
from ovs_runtime.bridge.flow_export_config import check_flow_export
from ovs_runtime.bridge.flow_rule_checks import check_flow_rules
from ovs_runtime.bridge.kernel_arp_guard import KernelArpGuard
from ovs_runtime.bridge.mirror_config import check_mirrors
from ovs_runtime.bridge.port_security_config import check_port_security
from ovs_runtime.bridge.qos_config import check_qos
from ovs_runtime.bridge.reconciler import Reconciler
from ovs_runtime.bridge.tunnel_config import check_tunnels
from ovs_runtime.bridge.unsupported_features import check_unsupported_features
from ovs_runtime.daemon import config as daemon_config
from ovs_runtime.daemon import run_lock, systemd_notify
from ovs_runtime.daemon.flow_selection import select_flows
from ovs_runtime.daemon.heap import HeapKeeper
from ovs_runtime.daemon.managers import ManagerListeners, manager_check
from ovs_runtime.datapath.fd_store import FdStore
from ovs_runtime.datapath.netdev_factory import KernelNetdevs
from ovs_runtime.datapath.userspace import UserspaceDatapath
from ovs_runtime.db.database import Database, RowChange, open_database
from ovs_runtime.db.migrate import NewerSchemaError
from ovs_runtime.db.schema import load_schema
from ovs_runtime.db.server import OvsdbServer, RpcError
from ovs_runtime.db.storage import StorageError
from ovs_runtime.packet.announce import parse_mac

log = logging.getLogger("ovs-runtimed")

SOCKET_NAME = "db.sock"
STATUS_INTERVAL = 1.0
IFACE_TYPES = ["", "system", "internal", "tap", "patch"]
DATAPATH_TYPES = ["netdev"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ovs-runtimed", description=__doc__.split("\n")[1])
    parser.add_argument(
        "--state-dir",
        default="/var/lib/ovs-runtime",
        help="database directory (default: %(default)s)",
    )
    parser.add_argument(
        "--run-dir",
        default="/run/ovs-runtime",
        help="socket and pid directory (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=daemon_config.LOG_LEVELS,
        help="log verbosity (default: from the config file, else info)",
    )
    parser.add_argument(
        "--config",
        default=daemon_config.DEFAULT_CONFIG,
        help="config file; a missing file means defaults (default: %(default)s)",
    )
    parser.add_argument(
        "--datapath",
        choices=("userspace", "none"),
        default="userspace",
        help="forward packets in userspace (default), or run only the database and reconciler",
    )
    parser.add_argument(
        "--max-message-bytes", type=int, help="largest JSON-RPC message accepted (default: 64 MiB)"
    )
    parser.add_argument("--version", action="version", version=f"ovs-runtimed {__version__}")
    return parser.parse_args(argv)


def setup_logging(level: str) -> None:
    # journald adds its own timestamps; by hand, a timestamp helps.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(stream=sys.stderr, format=fmt, level=level.upper(), force=True)


def ensure_root_row(db: Database) -> None:
    """The Open_vSwitch row exists, and says which versions and types it serves."""
    info = {
        "ovs_version": __version__,
        "db_version": db.schema.version,
        "datapath_types": ["set", DATAPATH_TYPES],
        "iface_types": ["set", IFACE_TYPES],
    }
    if db.tables["Open_vSwitch"]:
        ops = [{"op": "update", "table": "Open_vSwitch", "where": [], "row": info}]
    else:
        ops = [{"op": "insert", "table": "Open_vSwitch", "row": info}]
    result = db.transact(ops)
    if any(isinstance(r, dict) and "error" in r for r in result):
        raise StorageError(f"cannot initialise the Open_vSwitch row: {result}")


class Daemon:
    def __init__(self, args: argparse.Namespace, config: daemon_config.DaemonConfig) -> None:
        self.args = args
        self.config = config
        self.stop_event = asyncio.Event()
        self.db: Database | None = None
        self.server: OvsdbServer | None = None
        self.reconciler: Reconciler | None = None
        self.managers: ManagerListeners | None = None
        self.datapath: UserspaceDatapath | None = None
        self.heap: HeapKeeper | None = None

    async def run(self) -> int:
        # Signal handlers first: a SIGHUP or SIGTERM must never hit the default action,
        # even one sent the moment the socket appears.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        os.makedirs(self.args.state_dir, exist_ok=True)
        os.makedirs(self.args.run_dir, exist_ok=True)
        run_lock.acquire(self.args.run_dir)
        self.db = open_database(load_schema(), self.args.state_dir)
        ensure_root_row(self.db)
        self.db.commit_checks += [
            check_tunnels,
            check_mirrors,
            check_qos,
            check_flow_rules,
            check_port_security,
            check_flow_export,
            check_device_settings,
            check_unsupported_features,
            check_bonds,
            manager_check({os.path.join(self.args.run_dir, SOCKET_NAME)}),
        ]
        fd_store = FdStore(systemd_notify.notify if systemd_notify.under_systemd() else None)
        if self.args.datapath == "userspace":
            self.datapath = UserspaceDatapath(KernelNetdevs(fd_store))
            self.datapath.start()
        handover = AddressHandover(Path(self.args.run_dir) / "moved-addresses")
        arp_guard = KernelArpGuard(Path(self.args.run_dir) / "arp-guard.json")
        self.reconciler = Reconciler(self.db, self.datapath, handover, arp_guard)
        self.reconciler.reconcile()
        db = self.db
        heap = self.heap = HeapKeeper(lambda: sum(len(rows) for rows in db.tables.values()))
        heap.settle()

        # Registered after the reconciler: its call_soon(reconcile) runs before settle.
        def settle_after_reconciling(_changes: list[RowChange], _txn_id: str) -> None:
            loop.call_soon(heap.settle)

        db.listeners.append(settle_after_reconciling)
        fd_store.release_unclaimed()
        max_bytes = self.args.max_message_bytes or self.config.max_message_bytes
        self.server = OvsdbServer(self.db, max_bytes)
        self.server.large_request_hook = heap.pause
        self._register_inspection_methods(self.server)
        socket_path = os.path.join(self.args.run_dir, SOCKET_NAME)
        await self.server.listen_unix(socket_path, 0o660, self.config.socket_group)
        self.managers = ManagerListeners(self.db, self.server)
        await self.managers.reconcile()
        watchdog = systemd_notify.watchdog_interval()
        if watchdog:
            loop.create_task(self._watchdog(watchdog))
        loop.create_task(self._status_loop())

        systemd_notify.notify(f"READY=1\nSTATUS={self._status()}\nMAINPID={os.getpid()}")
        log.info(
            "ovs-runtimed %s ready, pid %d, serving unix:%s", __version__, os.getpid(), socket_path
        )
        await self.stop_event.wait()
        systemd_notify.notify("STOPPING=1\nSTATUS=stopping")
        await self.managers.close()
        await self.server.close()
        if self.datapath is not None:
            self.datapath.stop()
        self.db.close()
        log.info("stopped cleanly")
        return 0

    def _status(self) -> str:
        bridges = len(self.reconciler.running) if self.reconciler else 0
        clients = len(self.server.sessions) if self.server else 0
        return f"{bridges} bridge(s), {clients} client(s)"

    def _request_stop(self, signame: str) -> None:
        log.info("%s received, stopping", signame)
        self.stop_event.set()

    def _reload(self) -> None:
        systemd_notify.notify("RELOADING=1\nSTATUS=reloading")
        try:
            self.config = daemon_config.load_config(self.args.config)
            if not self.args.log_level:
                daemon_config.apply_log_level(self.config.log_level)
            log.info("SIGHUP: reloaded %s", self.args.config)
        except daemon_config.ConfigError as exc:
            log.error("SIGHUP: keeping the previous configuration: %s", exc)
        if self.reconciler:
            self.reconciler.reconcile()
        systemd_notify.notify(f"READY=1\nSTATUS={self._status()}")

    async def _status_loop(self) -> None:
        """Every second: re-attach ports whose device came back, age MAC entries, and
        write link state and statistics to the Interface rows."""
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            if self.heap is not None:
                self.heap.settle()  # should a large request have failed before its commit
            if self.reconciler is not None:
                try:
                    self.reconciler.refresh_status()
                except Exception:  # status must never take the daemon down
                    log.exception("status refresh failed")
            if self.managers is not None:
                try:
                    await self.managers.tick()
                except Exception:
                    log.exception("manager status refresh failed")

    def _register_inspection_methods(self, server: OvsdbServer) -> None:
        def need_datapath() -> UserspaceDatapath:
            if self.datapath is None:
                raise RpcError("not supported", "this daemon runs with --datapath none")
            return self.datapath

        def bridge_arg(params: list[Any], required: bool) -> str | None:
            if not params:
                if required:
                    raise RpcError("syntax error", "a bridge name is required")
                return None
            name = params[0]
            if not isinstance(name, str) or name not in need_datapath().bridges:
                raise RpcError("unknown bridge", f"no bridge named {name}")
            return name

        def fdb_show(params: list[Any]) -> Any:
            bridge = bridge_arg(params, required=True)
            assert bridge is not None
            return need_datapath().fdb(bridge)

        def fdb_flush(params: list[Any]) -> Any:
            return {"flushed": need_datapath().fdb_flush(bridge_arg(params, required=False))}

        def announce(params: list[Any]) -> Any:
            bridge = bridge_arg(params, required=True)
            assert bridge is not None
            if (
                len(params) != 3
                or not isinstance(params[1], str)
                or not isinstance(params[2], list)
            ):
                raise RpcError("syntax error", "expected [bridge, port, [[mac, vlan], ...]]")
            try:
                entries = [(parse_mac(mac), int(vlan)) for mac, vlan in params[2]]
            except (TypeError, ValueError) as exc:
                raise RpcError("syntax error", f"bad [mac, vlan] entry: {exc}") from None
            try:
                return {"announced": need_datapath().announce(bridge, params[1], entries)}
            except KeyError as exc:
                raise RpcError("unknown port", str(exc.args[0])) from None

        def qos_show(params: list[Any]) -> Any:
            if len(params) != 1 or not isinstance(params[0], str):
                raise RpcError("syntax error", "expected [port]")
            ports = {p.name: p for b in need_datapath().bridges.values() for p in b.ports.values()}
            handle = ports.get(params[0])
            if handle is None:
                raise RpcError("unknown port", f"no port named {params[0]}")
            return {
                "port": params[0],
                "qos": handle.spec.qos.type if handle.spec.qos else None,
                "error": handle.spec.qos_error,
                "classes": qos_tc.show(handle.iface) if handle.spec.qos else [],
            }

        def bond_show(params: list[Any]) -> Any:
            if len(params) > 1 or not all(isinstance(p, str) for p in params):
                raise RpcError("syntax error", "expected [] or [bond port name]")
            try:
                return need_datapath().bond_show(params[0] if params else None)
            except KeyError as exc:
                raise RpcError("unknown port", str(exc.args[0])) from None

        def lacp_show(params: list[Any]) -> Any:
            if len(params) > 1 or not all(isinstance(p, str) for p in params):
                raise RpcError("syntax error", "expected [] or [bond port name]")
            try:
                return need_datapath().lacp_show(params[0] if params else None)
            except KeyError as exc:
                raise RpcError("unknown port", str(exc.args[0])) from None

        def bond_set_active(params: list[Any]) -> Any:
            if len(params) != 2 or not all(isinstance(p, str) for p in params):
                raise RpcError("syntax error", "expected [bond port name, member name]")
            try:
                need_datapath().bond_set_active(params[0], params[1])
            except KeyError as exc:
                raise RpcError("unknown port", str(exc.args[0])) from None
            except ValueError as exc:
                raise RpcError("refused", str(exc)) from None
            return need_datapath().bond_show(params[0])

        def flow_stats(params: list[Any]) -> Any:
            bridge = bridge_arg(params, required=True)
            assert bridge is not None
            if len(params) == 1:
                return need_datapath().flow_statistics(bridge)
            usage = "expected [bridge] or [bridge, [rule UUID, ...]]"
            if len(params) != 2 or not isinstance(params[1], list):
                raise RpcError("syntax error", usage)
            try:
                only = {uuid.UUID(text) for text in params[1]}
            except (TypeError, ValueError, AttributeError):
                raise RpcError("syntax error", f"{usage}: not a UUID among them") from None
            return need_datapath().flow_statistics(bridge, only)

        def trace(params: list[Any]) -> Any:
            bridge = bridge_arg(params, required=True)
            assert bridge is not None
            if len(params) != 3 or not all(isinstance(p, str) for p in params[1:]):
                raise RpcError("syntax error", "expected [bridge, in_port name, frame in hex]")
            try:
                frame = bytes.fromhex(params[2])
            except ValueError:
                raise RpcError("syntax error", "the frame must be hex digits") from None
            if len(frame) < 14:
                raise RpcError("syntax error", "the frame is shorter than an Ethernet header")
            try:
                return need_datapath().trace(bridge, frame, params[1])
            except KeyError as exc:
                raise RpcError("unknown port", str(exc.args[0])) from None

        rollbacks = PendingRollbacks(server.db)

        def guarded(method: Any) -> Any:
            def call(params: list[Any]) -> Any:
                try:
                    return method(params)
                except SnapshotError as exc:
                    raise RpcError("syntax error", str(exc)) from exc

            return call

        server.extra_methods["ovsr/arm-rollback"] = guarded(rollbacks.arm)
        server.extra_methods["ovsr/confirm"] = guarded(rollbacks.confirm)
        server.extra_methods["ovsr/fdb-show"] = fdb_show
        server.extra_methods["ovsr/fdb-flush"] = fdb_flush
        server.extra_methods["ovsr/announce"] = announce
        server.extra_methods["ovsr/qos-show"] = qos_show
        server.extra_methods["ovsr/bond-show"] = bond_show
        server.extra_methods["ovsr/bond-set-active"] = bond_set_active
        server.extra_methods["ovsr/lacp-show"] = lacp_show
        server.extra_methods["ovsr/flow-stats"] = flow_stats
        server.extra_methods["ovsr/trace"] = trace
        server.extra_methods["ovsr/select-flows"] = lambda params: select_flows(
            server.db.tables, params
        )
        server.extra_methods["ovsr/dpif-show"] = lambda params: need_datapath().describe()

    async def _watchdog(self, interval: float) -> None:
        # Pinged from the event loop itself, so a wedged loop stops the pings and
        # systemd restarts us.
        while True:
            systemd_notify.notify(f"WATCHDOG=1\nSTATUS={self._status()}")
            await asyncio.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level or "info")
    # ``kill -USR1`` writes every thread's stack to stderr (the journal): how to see
    # where a wedged daemon is stuck without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        config = daemon_config.load_config(args.config)
    except daemon_config.ConfigError as exc:
        log.error("refusing to start: %s", exc)
        return 1
    if not args.log_level:
        daemon_config.apply_log_level(config.log_level)
    try:
        return asyncio.run(Daemon(args, config).run())
    except run_lock.AlreadyRunning as exc:
        log.error("refusing to start: %s", exc)
    except (StorageError, NewerSchemaError) as exc:
        log.error("refusing to start: %s", exc)
    except OSError as exc:
        log.error("refusing to start: %s", exc)
    systemd_notify.notify("STATUS=failed to start\nERRNO=1")
    return 1


if __name__ == "__main__":
    sys.exit(main())
