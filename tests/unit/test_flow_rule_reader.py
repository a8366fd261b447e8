"""Rules from the database to the datapath, by difference, against a full read.

A ``FlowRuleReader`` fed the changed Flow_Rule UUIDs of each commit must return the
same specs as a fresh full read, and keep the very spec objects of unchanged rows; a
``BridgeFlows`` configured step by step with them must hold the same rules, timeouts
and "reads beyond Ethernet" flag as one configured from scratch, and keep the rule
objects (and so the counters) of unchanged and mod-flows rules.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from ovs_runtime.bridge import flow_rules
from ovs_runtime.bridge.flow_rules import FlowRuleReader, FlowRuleSpec
from ovs_runtime.cli.flow_commands import flow_row
from ovs_runtime.datapath.bridge_flows import BridgeFlows
from ovs_runtime.db.database import Database, RowChange
from ovs_runtime.ofproto.flow_syntax import parse_rule
from tests.unit.db_helpers import add_bridge_ops, errors, new_db, select

MATCHES = ("", "dl_type=0x0800", "ip,nw_dst=198.51.100.1", "tcp,tp_dst=80", "udp,tp_dst=53")
ACTIONS = ("drop", "NORMAL", "mod_nw_tos:8,NORMAL", "dec_ttl,NORMAL")


def random_rule(rng: random.Random) -> dict[str, Any]:
    match = rng.choice(MATCHES)
    timeout = rng.choice(("", "", "idle_timeout=60,", "hard_timeout=90,"))
    head = f"{timeout}priority={rng.randint(1, 40)}" + (f",{match}" if match else "")
    return flow_row(parse_rule(f"{head},actions={rng.choice(ACTIONS)}"))


def bridge_uuid(db: Database, name: str) -> uuid.UUID:
    return uuid.UUID(select(db, "Bridge", [["name", "==", name]])[0]["_uuid"][1])


def random_ops(rng: random.Random, db: Database, bridge: str) -> list[Any]:
    rows = db.tables["Bridge"][bridge_uuid(db, bridge)]["flow_rules"].values
    held = [atom.value for atom in rows]
    ops: list[Any] = []
    for n in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.5 or not held:
            ops.append(
                {
                    "op": "insert",
                    "table": "Flow_Rule",
                    "uuid-name": f"n{n}",
                    "row": random_rule(rng),
                }
            )
            ops.append(
                {
                    "op": "mutate",
                    "table": "Bridge",
                    "where": [["name", "==", bridge]],
                    "mutations": [["flow_rules", "insert", ["named-uuid", f"n{n}"]]],
                }
            )
        elif roll < 0.75:
            ops.append(
                {
                    "op": "mutate",
                    "table": "Bridge",
                    "where": [["name", "==", bridge]],
                    "mutations": [["flow_rules", "delete", ["uuid", str(rng.choice(held))]]],
                }
            )
        else:  # a new priority or new actions for an existing row (mod-flows)
            fresh = random_rule(rng)
            column = rng.choice(("actions", "priority"))
            ops.append(
                {
                    "op": "update",
                    "table": "Flow_Rule",
                    "where": [["_uuid", "==", ["uuid", str(rng.choice(held))]]],
                    "row": {column: fresh[column]},
                }
            )
    return ops


def installed(flows: BridgeFlows) -> set[tuple[Any, ...]]:
    return {
        (row_uuid, spec.version, rule.table, rule.priority, rule.actions)
        for row_uuid, (spec, rule) in flows.rules.items()
    }


def in_pipeline(flows: BridgeFlows) -> set[tuple[Any, ...]]:
    return {
        (rule.uuid, rule.priority, rule.actions)
        for table in flows.pipeline.tables.values()
        for rule in table.rules()
        if not rule.implicit
    }


@pytest.mark.parametrize("seed", range(4))
def test_reading_and_installing_by_difference_agrees_with_a_full_read(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    db = new_db(tmp_path)
    for name in ("br0", "br1"):
        assert errors(db.transact(add_bridge_ops(name))) == []
    changed: set[uuid.UUID] = set()

    def note(changes: list[RowChange], _txn: str) -> None:
        changed.update(c.uuid for c in changes if c.table == "Flow_Rule")

    db.listeners.append(note)
    reader = FlowRuleReader()
    flows = {name: BridgeFlows(0.0) for name in ("br0", "br1")}
    previous: dict[str, dict[uuid.UUID, FlowRuleSpec]] = {"br0": {}, "br1": {}}
    kept_objects = 0
    for _step in range(120):
        bridge = rng.choice(("br0", "br1"))
        touched = set(changed)
        assert errors(db.transact(random_ops(rng, db, bridge))) == []
        touched = changed - touched
        rows = db.tables["Flow_Rule"]
        for name in ("br0", "br1"):
            b_uuid = bridge_uuid(db, name)
            row = db.tables["Bridge"][b_uuid]
            got = reader.read(rows, b_uuid, row, changed)
            want = FlowRuleReader().read(rows, b_uuid, row, None)
            assert {(s.uuid, s.version) for s in got} == {(s.uuid, s.version) for s in want}
            for spec in got:  # unchanged rows: the very same spec object
                if spec.uuid in previous[name] and spec.uuid not in touched:
                    assert spec is previous[name][spec.uuid]
                    kept_objects += 1
            previous[name] = {s.uuid: s for s in got}
            before = {u: rule for u, (_s, rule) in flows[name].rules.items()}
            flows[name].configure(got, {}, 1.0)
            scratch = BridgeFlows(0.0)
            scratch.configure(want, {}, 1.0)
            assert installed(flows[name]) == installed(scratch)
            assert in_pipeline(flows[name]) == in_pipeline(scratch)
            assert {r.uuid for r in flows[name].timed} == {r.uuid for r in scratch.timed}
            assert flows[name].deep == scratch.deep
            assert {r.uuid for r in flows[name].deep_rules} == {r.uuid for r in scratch.deep_rules}
            for row_uuid, (spec, rule) in flows[name].rules.items():
                old = before.get(row_uuid)
                if old is not None and old.spec.identity == spec.rule.identity:
                    assert rule is old  # unchanged or mod-flows: counters continue
        changed.clear()
    assert kept_objects > 500


def test_a_row_that_did_not_parse_is_read_again_when_rewritten(tmp_path: Path) -> None:
    """Rows written before the commit check existed may not parse; the reader skips
    them, and picks one up once it is rewritten into a rule."""
    db = new_db(tmp_path)  # no commit checks: the row below is accepted as written
    assert errors(db.transact(add_bridge_ops("br0"))) == []
    changed: set[uuid.UUID] = set()
    db.listeners.append(
        lambda changes, _txn: changed.update(c.uuid for c in changes if c.table == "Flow_Rule")
    )
    good = random_rule(random.Random(1))
    bad = dict(good, match="no_such_field=1")
    ops = []
    for name, row in (("good", good), ("bad", bad)):
        ops.append({"op": "insert", "table": "Flow_Rule", "uuid-name": name, "row": row})
        ops.append(
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["name", "==", "br0"]],
                "mutations": [["flow_rules", "insert", ["named-uuid", name]]],
            }
        )
    results = db.transact(ops)
    assert errors(results) == []
    bad_uuid = uuid.UUID(results[2]["uuid"][1])
    reader = FlowRuleReader()
    b_uuid = bridge_uuid(db, "br0")

    def read() -> set[uuid.UUID]:
        specs = reader.read(db.tables["Flow_Rule"], b_uuid, db.tables["Bridge"][b_uuid], changed)
        changed.clear()
        return {s.uuid for s in specs}

    assert bad_uuid not in read()
    fixed = [
        {
            "op": "update",
            "table": "Flow_Rule",
            "where": [["_uuid", "==", ["uuid", str(bad_uuid)]]],
            "row": {"match": "tcp,tp_dst=22"},
        }
    ]
    assert errors(db.transact(fixed)) == []
    assert bad_uuid in read()
    assert len(read()) == 2


def test_every_bridge_keeps_its_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With three large bridges, pruning the parse cache after a pass keeps all three
    bridges' parses, so the next pass parses nothing again."""
    db = new_db(tmp_path)
    rng = random.Random(3)
    names = ("br0", "br1", "br2")
    for name in names:
        assert errors(db.transact(add_bridge_ops(name))) == []
        ops: list[Any] = []
        for n in range(1100):
            row = flow_row(
                parse_rule(f"priority={n},udp,tp_dst={rng.randint(1, 65535)},actions=drop")
            )
            ops.append({"op": "insert", "table": "Flow_Rule", "uuid-name": f"r{n}", "row": row})
        members = ["set", [["named-uuid", f"r{n}"] for n in range(1100)]]
        ops.append(
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["name", "==", name]],
                "mutations": [["flow_rules", "insert", members]],
            }
        )
        assert errors(db.transact(ops)) == []
    reader = FlowRuleReader()

    def one_pass() -> None:
        for name in names:
            b_uuid = bridge_uuid(db, name)
            specs = reader.read(db.tables["Flow_Rule"], b_uuid, db.tables["Bridge"][b_uuid], None)
            assert len(specs) == 1100
        reader.keep_only({bridge_uuid(db, name) for name in names})

    one_pass()
    parses: list[str] = []
    real_parse = flow_rules.flow_syntax.parse_rule
    monkeypatch.setattr(
        flow_rules.flow_syntax, "parse_rule", lambda text: parses.append(text) or real_parse(text)
    )
    one_pass()
    assert parses == []


def test_a_timed_out_rule_stays_out_until_its_row_is_gone() -> None:
    """Between a rule timing out and its row's deletion, the bridge layer still hands
    the rule over (a configuration change may come in between): it must not come back
    for another idle period."""

    def spec(text: str) -> FlowRuleSpec:
        rule = parse_rule(text)
        return FlowRuleSpec(uuid.uuid4(), (text,), rule, 0.0)

    idle = spec("idle_timeout=5,priority=5,udp,actions=drop")
    other = spec("priority=6,tcp,actions=drop")
    flows = BridgeFlows(100.0)
    flows.configure([idle, other], {}, 100.0)
    assert flows.expire(106.0) == [(idle.uuid, "idle")]
    assert not flows.configure([idle, other], {}, 107.0)
    third = spec("priority=7,icmp,actions=drop")
    assert flows.configure([idle, other, third], {}, 107.5)
    assert set(flows.rules) == {other.uuid, third.uuid}
    flows.configure([other, third], {}, 108.0)  # the row is deleted
    assert not flows.timed_out
    again = spec("idle_timeout=5,priority=5,udp,actions=drop")  # added anew: a new row
    assert flows.configure([other, third, again], {}, 109.0)
    assert again.uuid in flows.rules
