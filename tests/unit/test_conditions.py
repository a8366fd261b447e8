"""``where`` clauses: filtering many rows at once (equality first, strings first) picks
exactly the rows, in the same order, that testing every clause on every row picks."""

from __future__ import annotations

import random
import uuid

import pytest

from ovs_runtime.db import condition
from ovs_runtime.db.datum import Row, column_type, datum_from_json
from ovs_runtime.db.schema import load_schema

SCHEMA = load_schema()
TABLE = SCHEMA.tables["Flow_Rule"]
MATCHES = [f"udp,tp_dst={n}" for n in range(5)]


def random_row(rng: random.Random) -> Row:
    values = {
        "table": rng.randrange(3),
        "priority": rng.choice((0, 10, 20)),
        "match": rng.choice(MATCHES),
        "actions": rng.choice(("drop", "NORMAL")),
    }
    return {name: datum_from_json(column_type(TABLE, name), v) for name, v in values.items()}


def random_clause(rng: random.Random) -> object:
    return rng.choice(
        (
            ["table", "==", rng.randrange(3)],
            ["table", "<", rng.randrange(3)],
            ["priority", "==", rng.choice((0, 10, 20))],
            ["priority", "!=", rng.choice((0, 10, 20))],
            ["match", "==", rng.choice(MATCHES)],
            ["match", "!=", rng.choice(MATCHES)],
            ["actions", "==", "drop"],
            True,
            False,
        )
    )


@pytest.mark.parametrize("seed", range(6))
def test_filtering_many_rows_agrees_with_testing_each(seed: int) -> None:
    rng = random.Random(seed)
    rows = [(uuid.UUID(int=n), random_row(rng)) for n in range(300)]
    for _ in range(200):
        where = [random_clause(rng) for _ in range(rng.randrange(4))]
        clauses = condition.parse_where(TABLE, where)
        expected = [(u, r) for u, r in rows if condition.matches_all(clauses, r)]
        assert condition.select_rows(clauses, iter(rows)) == expected, where
