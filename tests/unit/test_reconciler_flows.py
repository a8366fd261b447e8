"""Flow rules from the database into the datapath through the reconciler (no root).

The reconciler collects the Flow_Rule rows each commit changed and its reader applies
only those; the userspace datapath runs on in-memory ports. Rules added, rewritten
(mod-flows: the rule object and its counters stay) and deleted must reach the
datapath, and a pass that fails part-way must not lose the changes of the bridges it
did not reach. The same path with real traffic: tests/integration/test_flow_rules.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ovs_runtime.bridge.reconciler import Reconciler
from ovs_runtime.cli.flow_commands import flow_row
from ovs_runtime.datapath.userspace import UserspaceDatapath
from ovs_runtime.db.database import Database
from ovs_runtime.netdev.memory import MemoryNetdev
from ovs_runtime.ofproto.flow_syntax import parse_rule
from tests.unit.db_helpers import add_bridge_ops, errors, new_db, select

BRIDGES = ("br0", "br1")


def add_rule(db: Database, bridge: str, text: str) -> str:
    results = db.transact(
        [
            {
                "op": "insert",
                "table": "Flow_Rule",
                "uuid-name": "r",
                "row": flow_row(parse_rule(text)),
            },
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["name", "==", bridge]],
                "mutations": [["flow_rules", "insert", ["named-uuid", "r"]]],
            },
        ]
    )
    assert errors(results) == []
    return str(results[0]["uuid"][1])


def rewrite_actions(db: Database, rule_uuid: str, actions: str) -> dict[str, Any]:
    return {
        "op": "update",
        "table": "Flow_Rule",
        "where": [["_uuid", "==", ["uuid", rule_uuid]]],
        "row": {"actions": actions},
    }


def installed(dp: UserspaceDatapath, bridge: str) -> dict[str, Any]:
    return {str(u): rule for u, (_spec, rule) in dp.bridges[bridge].flows.rules.items()}


async def scenario(db: Database, dp: UserspaceDatapath) -> None:
    Reconciler(db, dp)  # (it listens to the database)
    for name in BRIDGES:
        assert errors(db.transact(add_bridge_ops(name, (f"{name}-p1", f"{name}-p2")))) == []
    await asyncio.sleep(0)
    rules = {name: add_rule(db, name, "priority=10,udp,tp_dst=53,actions=drop") for name in BRIDGES}
    extra = add_rule(db, "br0", "priority=20,tcp,tp_dst=22,actions=NORMAL")
    await asyncio.sleep(0)
    assert set(installed(dp, "br0")) == {rules["br0"], extra}
    assert set(installed(dp, "br1")) == {rules["br1"]}

    # mod-flows: new actions on the same rule object, so its counters continue.
    before = installed(dp, "br0")[rules["br0"]]
    before.n_packets = 7
    assert errors(db.transact([rewrite_actions(db, rules["br0"], "output:br0-p2")])) == []
    await asyncio.sleep(0)
    after = installed(dp, "br0")[rules["br0"]]
    assert after is before and after.n_packets == 7
    assert after.actions == parse_rule("udp,actions=output:br0-p2").actions

    # A pass that fails at its first bridge: the next pass still applies both rewrites.
    real = dp.configure_flows
    calls: list[str] = []

    def fail_once(bridge: str, fail_mode: str, specs: list[Any]) -> None:
        calls.append(bridge)
        if len(calls) == 1:
            raise RuntimeError("datapath refused")
        real(bridge, fail_mode, specs)

    dp.configure_flows = fail_once  # type: ignore[method-assign]
    ops = [rewrite_actions(db, rules[name], f"output:{name}-p1") for name in BRIDGES]
    assert errors(db.transact(ops)) == []
    loop = asyncio.get_running_loop()
    seen: list[Any] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context.get("exception")))
    await asyncio.sleep(0)
    assert len(calls) == 1 and isinstance(seen[0], RuntimeError)
    db.transact(
        [
            {
                "op": "mutate",
                "table": "Open_vSwitch",
                "where": [],
                "mutations": [["next_cfg", "+=", 1]],
            }
        ]
    )
    await asyncio.sleep(0)
    for name in BRIDGES:
        want = parse_rule(f"udp,actions=output:{name}-p1").actions
        assert installed(dp, name)[rules[name]].actions == want, name

    # Deleting a rule from the bridge (garbage collection drops its row) removes it.
    delete = {
        "op": "mutate",
        "table": "Bridge",
        "where": [["name", "==", "br0"]],
        "mutations": [["flow_rules", "delete", ["uuid", extra]]],
    }
    assert errors(db.transact([delete])) == []
    await asyncio.sleep(0)
    assert set(installed(dp, "br0")) == {rules["br0"]}
    assert not select(db, "Flow_Rule", [["_uuid", "==", ["uuid", extra]]])


def test_rules_reach_the_datapath_by_difference(tmp_path: Path) -> None:
    db = new_db(tmp_path)
    netdevs: dict[str, MemoryNetdev] = {}

    def open_netdev(kind: str, name: str, options: dict[str, str]) -> MemoryNetdev:
        netdevs[name] = MemoryNetdev(name)
        return netdevs[name]

    dp = UserspaceDatapath(open_netdev, clock=lambda: 1000.0)
    try:
        asyncio.run(scenario(db, dp))
    finally:
        dp.stop()
