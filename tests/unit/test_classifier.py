"""The classifier against a brute-force reference: after any sequence of inserts and
removals, a lookup returns the rule a linear scan picks (highest priority, then the
earliest installed), and every subtable knows its highest priority."""

from __future__ import annotations

import random

import pytest

from ovs_runtime.ofproto import flow_key as fk
from ovs_runtime.ofproto.classifier import FlowTable, Rule
from ovs_runtime.ofproto.flow_syntax import parse_rule

NET = "198.51.100."
MATCHES = (
    "udp,nw_src={net}{a},tp_dst={port}",
    "udp,tp_dst={port}",
    "ip,nw_src={net}{a}",
    "udp,nw_src={net}{a},nw_dst={net}{b}",
)


def random_rule(rng: random.Random) -> Rule:
    match = rng.choice(MATCHES).format(
        net=NET, a=rng.randrange(4), b=rng.randrange(4), port=rng.randrange(3)
    )
    spec = parse_rule(f"priority={rng.choice((10, 20, 30, 40))},{match},actions=drop")
    rule = Rule(None, spec, 0.0)
    rule.compile({})
    return rule


def random_key(rng: random.Random) -> fk.Key:
    key = [0] * fk.KEY_SIZE
    key[fk.DL_TYPE] = fk.ETH_IP
    key[fk.NW_PROTO] = rng.choice((6, 17))
    key[fk.NW_SRC] = 0xC6336400 + rng.randrange(4)
    key[fk.NW_DST] = 0xC6336400 + rng.randrange(4)
    key[fk.TP_DST] = rng.randrange(3)
    return tuple(key)


def reference(rules: list[Rule], key: fk.Key) -> Rule | None:
    hits = [r for r in rules if fk.masked(key, r.mask) == r.values]
    return min(hits, key=lambda r: (-r.priority, r.seq), default=None)


@pytest.mark.parametrize("seed", range(8))
def test_lookups_agree_with_a_linear_scan_while_rules_come_and_go(seed: int) -> None:
    rng = random.Random(seed)
    table = FlowTable(0)
    installed: list[Rule] = []
    keys = [random_key(rng) for _ in range(24)]
    for step in range(400):
        if installed and (rng.random() < 0.45 or step > 250):
            rule = installed.pop(rng.randrange(len(installed)))
            table.remove(rule)
        elif step <= 250:
            rule = random_rule(rng)
            table.insert(rule)
            installed.append(rule)
        assert table.count == len(installed)
        for sub in table.subtables.values():
            in_sub = [r for b in sub.rules.values() for r in b]
            assert in_sub, "an empty subtable is dropped"
            assert sub.max_priority == max(r.priority for r in in_sub)
        assert [s.max_priority for s in table.order] == sorted(
            (s.max_priority for s in table.subtables.values()), reverse=True
        )
        for key in keys:
            assert table.lookup(key, [0] * fk.KEY_SIZE) is reference(installed, key)
    assert not installed and not table.subtables and table.order == []


def test_removing_a_rule_twice_or_one_never_installed_changes_nothing() -> None:
    rng = random.Random(1)
    table = FlowTable(0)
    kept, removed, stranger = random_rule(rng), random_rule(rng), random_rule(rng)
    table.insert(kept)
    table.insert(removed)
    table.remove(removed)
    table.remove(removed)
    table.remove(stranger)
    assert table.count == 1
    assert table.rules() == [kept]
