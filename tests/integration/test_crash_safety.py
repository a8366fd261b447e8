"""Every acknowledged transaction survives ``kill -9``, and the database always opens.

A writer streams transactions; at random moments the daemon is killed with SIGKILL and
restarted, at least 50 times. After each restart every transaction whose reply arrived
before the kill must be in the database.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from ovs_runtime.cli.client import ClientError, OvsdbClient
from tests.daemon_process import DaemonProcess

KILLS = 50


def _writer(daemon: DaemonProcess, start: int, acked: list[int], stop: threading.Event) -> None:
    try:
        client = OvsdbClient(daemon.db, 5.0)
    except ClientError:
        return
    n = start
    try:
        while not stop.is_set():
            client.deadline = time.monotonic() + 5.0
            ops = [
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [],
                    "mutations": [["external_ids", "insert", ["map", [[f"t{n}", str(n)]]]]],
                }
            ]
            if n % 10 == 0:  # a multi-row transaction now and then
                ops += [
                    {
                        "op": "insert",
                        "table": "Interface",
                        "uuid-name": "i",
                        "row": {"name": f"if{n}"},
                    },
                    {
                        "op": "insert",
                        "table": "Port",
                        "uuid-name": "p",
                        "row": {"name": f"if{n}", "interfaces": ["named-uuid", "i"]},
                    },
                    {
                        "op": "insert",
                        "table": "Bridge",
                        "uuid-name": "b",
                        "row": {"name": f"br{n}", "ports": ["named-uuid", "p"]},
                    },
                    {
                        "op": "mutate",
                        "table": "Open_vSwitch",
                        "where": [],
                        "mutations": [["bridges", "insert", ["named-uuid", "b"]]],
                    },
                ]
            result = client.call("transact", ["Open_vSwitch", *ops])
            assert all(not (isinstance(r, dict) and "error" in r) for r in result), result
            acked.append(n)
            n += 1
    except ClientError:
        pass  # the daemon died under us: this transaction was never acknowledged
    finally:
        client.close()


def test_kill9_loop_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "crash")
    rng = random.Random(7047)
    acked: list[int] = []
    next_n = 0
    try:
        for _ in range(KILLS):
            daemon.start()
            stop = threading.Event()
            writer = threading.Thread(target=_writer, args=(daemon, next_n, acked, stop))
            writer.start()
            time.sleep(rng.uniform(0.02, 0.25))
            daemon.kill9()
            stop.set()
            writer.join(10)
            next_n = (max(acked) + 1 if acked else 0) + 1000  # fresh keys after each crash
        daemon.start()
        rows = daemon.transact(
            {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids"]}
        )[0]["rows"]
        present = {int(v) for _, v in rows[0]["external_ids"][1]}
        bridges = daemon.transact(
            {"op": "select", "table": "Bridge", "where": [], "columns": ["name"]}
        )[0]["rows"]
        bridge_names = {b["name"] for b in bridges}
    finally:
        daemon.stop()
    assert len(acked) > KILLS * 5, f"too few transactions acknowledged: {len(acked)}"
    missing = sorted(set(acked) - present)
    assert missing == [], f"{len(missing)} acknowledged transactions lost: {missing[:10]}"
    assert {f"br{n}" for n in acked if n % 10 == 0} <= bridge_names
    print(f"{KILLS} kills, {len(acked)} acknowledged transactions, all present after restart")
