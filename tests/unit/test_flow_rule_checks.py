"""The commit-time check of flow rules, incremental against a full check.

``check_flow_rules`` keeps an index of each bridge's rules from the commit before and
looks only at what a transaction changed. Two databases get the same random
transactions (inserts, duplicates, rewrites into and out of collisions, deletions, a
port that does not exist, commits that fail after the check): one checks
incrementally, the other finds no index for any transaction, which forces the full
check (both share the module's indexes, keyed by row object, so neither can use the
other's). They must accept and refuse the same transactions and end with the same
rules, and the incremental one must really have skipped the full check.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ovs_runtime.bridge import flow_rule_checks
from ovs_runtime.cli.flow_commands import flow_row
from ovs_runtime.db.database import Database
from ovs_runtime.db.errors import OvsdbError
from ovs_runtime.ofproto.flow_syntax import parse_rule
from tests.unit.db_helpers import add_bridge_ops, errors, new_db, select

BRIDGES = ("br0", "br1")


class FailAfterCheck:
    """A commit check after the flow-rule check that refuses while ``armed``: the flow
    check has passed and remembered its index, and the commit still does not happen."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, view: Any) -> None:
        if self.armed:
            raise OvsdbError("constraint violation", "refused after the flow-rule check")


def make_db(path: Path) -> tuple[Database, FailAfterCheck]:
    db = new_db(path)
    for bridge in BRIDGES:
        assert errors(db.transact(add_bridge_ops(bridge, (f"{bridge}-p1",)))) == []
    failer = FailAfterCheck()
    db.commit_checks += [flow_rule_checks.check_flow_rules, failer]
    return db, failer


def rule_values(priority: int, host: int, port: str | None) -> dict[str, Any]:
    actions = f"output:{port}" if port else "drop"
    return flow_row(
        parse_rule(f"priority={priority},ip,nw_dst=198.51.100.{host},actions={actions}")
    )


def rules_of(db: Database, bridge: str) -> Counter[tuple[int, str]]:
    [row] = select(db, "Bridge", [["name", "==", bridge]])
    members = row["flow_rules"]
    uuids = [m[1] for m in members[1]] if members[0] == "set" else [members[1]]
    found: Counter[tuple[int, str]] = Counter()
    for rule_uuid in uuids:
        [rule] = select(db, "Flow_Rule", [["_uuid", "==", ["uuid", rule_uuid]]])
        found[(rule["priority"], rule["match"])] += 1
    return found


def find_rule(db: Database, bridge: str, key: tuple[int, str]) -> str | None:
    [row] = select(db, "Bridge", [["name", "==", bridge]])
    rows = select(db, "Flow_Rule", [["priority", "==", key[0]], ["match", "==", key[1]]])
    members = row["flow_rules"]
    held = {m[1] for m in members[1]} if members[0] == "set" else {members[1]}
    for rule in rows:
        if rule["_uuid"][1] in held:
            return str(rule["_uuid"][1])
    return None


def random_ops(rng: random.Random, db: Database, plan: list[tuple[Any, ...]]) -> list[Any]:
    """The operations of ``plan`` for this database (rules found by content, since the
    two databases give the same rule different UUIDs)."""
    ops: list[Any] = []
    for step in plan:
        kind, bridge = step[0], step[1]
        where = [["name", "==", bridge]]
        if kind == "insert":
            _, _, priority, host, port, name = step
            ops.append(
                {
                    "op": "insert",
                    "table": "Flow_Rule",
                    "uuid-name": name,
                    "row": rule_values(priority, host, port),
                }
            )
            ops.append(
                {
                    "op": "mutate",
                    "table": "Bridge",
                    "where": where,
                    "mutations": [["flow_rules", "insert", ["named-uuid", name]]],
                }
            )
            continue
        key = step[2]
        rule_uuid = find_rule(db, bridge, key)
        if rule_uuid is None:
            continue
        if kind == "delete":
            ops.append(
                {
                    "op": "mutate",
                    "table": "Bridge",
                    "where": where,
                    "mutations": [["flow_rules", "delete", ["uuid", rule_uuid]]],
                }
            )
        else:  # rewrite the rule into another priority and destination
            _, _, _, priority, host = step
            values = rule_values(priority, host, None)
            ops.append(
                {
                    "op": "update",
                    "table": "Flow_Rule",
                    "where": [["_uuid", "==", ["uuid", rule_uuid]]],
                    "row": {"priority": values["priority"], "match": values["match"]},
                }
            )
    return ops


def random_plan(
    rng: random.Random, step: int, known: list[tuple[str, tuple[int, str]]]
) -> list[Any]:
    plan: list[Any] = []
    for n in range(rng.choice((1, 1, 1, 2, 3))):
        bridge = rng.choice(BRIDGES)
        roll = rng.random()
        if roll < 0.55 or not known:
            port = f"{bridge}-p1" if rng.random() < 0.2 else None
            if rng.random() < 0.05:
                port = "no-such-port"
            plan.append(
                ("insert", bridge, rng.randint(1, 3), rng.randint(0, 7), port, f"r{step}_{n}")
            )
        elif roll < 0.8:
            plan.append(("delete", *rng.choice(known)))
        else:
            plan.append(("rewrite", *rng.choice(known), rng.randint(1, 3), rng.randint(0, 7)))
    return plan


@contextmanager
def counting_full_checks(counter: Counter[str]) -> Iterator[None]:
    real = flow_rule_checks._check_all

    def counted(*args: Any) -> Any:
        counter["full"] += 1
        return real(*args)

    flow_rule_checks._check_all = counted  # type: ignore[assignment]
    try:
        yield
    finally:
        flow_rule_checks._check_all = real


@contextmanager
def without_indexes() -> Iterator[None]:
    """Every check finds no index, so checks every rule of the bridge."""
    real = flow_rule_checks._index_for
    flow_rule_checks._index_for = lambda *args: None
    try:
        yield
    finally:
        flow_rule_checks._index_for = real


@pytest.mark.parametrize("seed", range(6))
def test_incremental_check_agrees_with_the_full_check(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    incremental, fail_incremental = make_db(tmp_path / "incremental")
    full, fail_full = make_db(tmp_path / "full")
    counter: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    forced_failures = 0
    for step in range(150):
        known = [(b, key) for b in BRIDGES for key in rules_of(incremental, b)]
        plan = random_plan(rng, step, known)
        fail = rng.random() < 0.05
        forced_failures += fail
        fail_incremental.armed = fail_full.armed = fail
        before = counter["full"]
        with counting_full_checks(counter):
            got = errors(incremental.transact(random_ops(rng, incremental, plan)))
        used_full = counter["full"] - before
        with without_indexes():
            want = errors(full.transact(random_ops(rng, full, plan)))
        assert bool(got) == bool(want), (step, plan, got, want)
        if got and not fail:
            assert got[0]["error"] == want[0]["error"], (step, plan)
        outcomes["refused" if got else "accepted"] += 1
        for bridge in BRIDGES:
            rules = rules_of(incremental, bridge)
            assert rules == rules_of(full, bridge), (step, plan)
            assert all(n == 1 for n in rules.values()), (step, rules)
        if not fail and not got:
            assert used_full <= len(BRIDGES), (step, used_full)
    # The random walk took both ways, and the incremental database ran the full check
    # only when it had no index: at the start and after a commit failed.
    assert outcomes["accepted"] > 50 and outcomes["refused"] > 10, outcomes
    assert counter["full"] <= len(BRIDGES) * (1 + forced_failures), (counter, forced_failures)


def test_a_rule_rewritten_into_another_rules_place_is_refused(tmp_path: Path) -> None:
    db, _ = make_db(tmp_path)
    for host in (1, 2):
        plan = [("insert", "br0", 5, host, None, f"r{host}")]
        assert errors(db.transact(random_ops(random.Random(0), db, plan))) == []
    clash = [("rewrite", "br0", (5, "ip,nw_dst=198.51.100.2"), 5, 1)]
    refused = errors(db.transact(random_ops(random.Random(0), db, clash)))
    assert "two rules with table 0, priority 5" in refused[0]["details"]
    # Rewriting both in one transaction, into each other's place, is fine.
    swap = [
        ("rewrite", "br0", (5, "ip,nw_dst=198.51.100.2"), 5, 1),
        ("rewrite", "br0", (5, "ip,nw_dst=198.51.100.1"), 5, 2),
    ]
    assert errors(db.transact(random_ops(random.Random(0), db, swap))) == []
    assert rules_of(db, "br0") == Counter(
        {(5, "ip,nw_dst=198.51.100.1"): 1, (5, "ip,nw_dst=198.51.100.2"): 1}
    )


def test_commits_that_fail_after_the_check_keep_the_index(tmp_path: Path) -> None:
    """Failed commits in a row, and a transaction whose rewrite changes nothing, leave
    the committed state's index usable: the next transaction needs no full check."""
    db, failer = make_db(tmp_path)
    rng = random.Random(0)
    for host in range(4):
        plan = [("insert", "br0", 5, host, None, f"r{host}")]
        assert errors(db.transact(random_ops(rng, db, plan))) == []
    counter: Counter[str] = Counter()
    with counting_full_checks(counter):
        failer.armed = True
        for attempt in range(3):
            plan = [("insert", "br0", 6, attempt, None, f"f{attempt}")]
            assert errors(db.transact(random_ops(rng, db, plan)))
        failer.armed = False
        same = [("rewrite", "br0", (5, "ip,nw_dst=198.51.100.1"), 5, 1)]  # to itself
        assert errors(db.transact(random_ops(rng, db, same))) == []
        clash = [("insert", "br0", 5, 2, None, "again")]
        refused = errors(db.transact(random_ops(rng, db, clash)))
        assert "two rules with table 0, priority 5" in refused[0]["details"]
        plan = [("insert", "br0", 6, 1, None, "ok")]
        assert errors(db.transact(random_ops(rng, db, plan))) == []
    assert counter["full"] == 0
    assert rules_of(db, "br0")[(6, "ip,nw_dst=198.51.100.1")] == 1
