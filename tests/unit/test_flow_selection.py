"""Rules chosen by a filter in the daemon (``ovsr/select-flows``), against the same
filter applied by ovsr to every rule it reads: the same rows, in the same order, for
strict and non-strict filters; bad requests are refused with what is expected; a filter
survives its trip as text (no root, no daemon process)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from ovs_runtime.bridge.flow_rules import COLUMNS
from ovs_runtime.cli.client import ClientError
from ovs_runtime.cli.flow_commands import BridgeRules, _selected, flow_row, run_flow_command
from ovs_runtime.daemon.flow_selection import select_flows
from ovs_runtime.db.database import Database
from ovs_runtime.db.datum import scalar
from ovs_runtime.db.server import RpcError
from ovs_runtime.ofproto.flow_match import FlowSyntaxError
from ovs_runtime.ofproto.flow_syntax import (
    FlowFilter,
    format_filter,
    parse_filter,
    parse_rule,
)
from tests.unit.db_helpers import add_bridge_ops, errors, new_db

PORTS = ("p1", "p2", "uplink", "vm-7")
FILTERS = (
    "",
    "ip",
    "udp",
    "tcp,tp_dst=80",
    "ip,nw_src=198.51.100.0/24",
    "ip,nw_src=198.51.100.7",
    "udp,nw_dst=203.0.113.0/25,tp_dst=53",
    "in_port=p1",
    "in_port=2",
    "in_port=vm-7",
    "out_port=vm-7",
    "table=1",
    "table=1,ip",
    "priority=20,ip",
    "cookie=0x10/0xff",
    "cookie=0x5/-1",
    "out_port=uplink",
    "out_port=p2,ip",
    "dl_vlan=10",
    "arp",
    "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00",
    "ipv6,ipv6_dst=2001:db8::/32",
)


def resolve(text: str) -> str:
    """As ovsr's: a port's name first, then an OpenFlow port number."""
    numbers = {str(n): name for n, name in enumerate(PORTS, 1)}
    if text in PORTS:
        return text
    if text in numbers:
        return numbers[text]
    raise FlowSyntaxError(f"no port {text!r}")


def random_rule(rng: random.Random) -> str:
    match = rng.choice(
        (
            "ip",
            "udp",
            "tcp,tp_dst=80",
            "tcp,tp_dst=443",
            f"ip,nw_src=198.51.100.{rng.randint(1, 9)}",
            f"udp,nw_dst=203.0.113.{rng.randint(1, 200)},tp_dst=53",
            f"in_port={rng.choice(PORTS)}",
            f"in_port={rng.choice(PORTS)},dl_vlan={rng.choice((10, 20))}",
            "arp",
            "ipv6,ipv6_dst=2001:db8::1",
            "dl_dst=01:00:5e:00:00:01",
            "",
        )
    )
    head = f"table={rng.choice((0, 0, 1))},priority={rng.choice((10, 20, 30))}"
    head += f",cookie={rng.choice((0x5, 0x10, 0x115, 0x20)):#x}"
    actions = rng.choice(
        ("drop", "NORMAL", "output:uplink", "output:p2", "output:p1,NORMAL", "output:vm-7")
    )
    return f"{head},{match},actions={actions}" if match else f"{head},actions={actions}"


def loaded_db(path: Path, count: int = 200, seed: int = 11) -> Database:
    """A database with bridge br0 (ports ``PORTS``) holding ``count`` random rules."""
    db = new_db(path)
    assert not errors(db.transact(add_bridge_ops("br0", PORTS)))
    rng = random.Random(seed)
    ops: list[dict[str, Any]] = []
    for n in range(count):
        rule = parse_rule(random_rule(rng), resolve)
        ops.append(
            {"op": "insert", "table": "Flow_Rule", "uuid-name": f"r{n}", "row": flow_row(rule)}
        )
        ops.append(
            {
                "op": "mutate",
                "table": "Bridge",
                "where": [["name", "==", "br0"]],
                "mutations": [["flow_rules", "insert", ["named-uuid", f"r{n}"]]],
            }
        )
    assert not errors(db.transact(ops))
    return db


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Any]:
    return loaded_db(tmp_path / "db", count=300, seed=7).tables


def selected_by_ovsr(tables: dict[str, Any], flt: FlowFilter, strict: bool) -> list[str]:
    """What ovsr chooses when it reads every rule and tests each itself."""
    bridge = next(iter(tables["Bridge"].values()))
    view = BridgeRules("br0", "", "")
    for atom in bridge["flow_rules"].values:
        row = tables["Flow_Rule"][atom.value]
        view.rows[str(atom.value)] = {c: scalar(row[c]) for c in COLUMNS}
    return _selected(view, flt, strict)


@pytest.mark.parametrize("text", FILTERS)
def test_a_filter_survives_its_trip_as_text(text: str) -> None:
    flt = parse_filter(text, resolve)
    assert parse_filter(format_filter(flt)) == flt


@pytest.mark.parametrize("strict", (False, True))
@pytest.mark.parametrize("text", FILTERS)
def test_the_daemon_chooses_what_ovsr_would(
    tables: dict[str, Any], text: str, strict: bool
) -> None:
    flt = parse_filter(text, resolve)
    expected = selected_by_ovsr(tables, flt, strict)
    rows = select_flows(tables, ["br0", format_filter(flt), strict])["rows"]
    assert [row["_uuid"][1] for row in rows] == expected
    for row in rows:  # select's row format: the rule columns as ovsr reads them
        assert set(row) == {"_uuid", *COLUMNS}


def test_filters_choose_some_rules_but_not_all(tables: dict[str, Any]) -> None:
    """The comparison above is only worth something if filters discriminate."""
    counts = {
        text: len(select_flows(tables, ["br0", text, False])["rows"])
        for text in ("", "udp", "table=1", "out_port=uplink", "cookie=0x5/-1")
    }
    assert counts[""] == 300
    assert all(0 < n < 300 for text, n in counts.items() if text)


@pytest.mark.parametrize(
    ("params", "error"),
    (
        ([], "expected [bridge name, filter text, strict (true or false)]"),
        (["br0", "ip"], "expected [bridge name"),
        (["br0", "ip", "yes"], "expected [bridge name"),
        ([7, "ip", False], "expected [bridge name"),
        (["nosuch", "ip", False], "no bridge named nosuch"),
        (["br0", "tcp,tp_dst=http", False], "filter 'tcp,tp_dst=http'"),
        (["br0", "ip,actions=drop", False], "takes no actions="),
        (["br0", "in_port=nosuch", False], "bridge br0 has no port 'nosuch'"),
    ),
)
def test_bad_requests_are_refused_with_what_is_expected(
    tables: dict[str, Any], params: list[Any], error: str
) -> None:
    with pytest.raises(RpcError) as caught:
        select_flows(tables, params)
    assert error in str(caught.value.details)


class InProcessClient:
    """ovsr's client, answered by an in-process database: ``transact`` runs there, and
    ``ovsr/select-flows`` either runs the daemon's method or, as an older daemon would,
    fails (the transport is all that is replaced)."""

    def __init__(self, db: Database, daemon_selects: bool) -> None:
        self.db = db
        self.daemon_selects = daemon_selects
        self.selections = 0

    def call(self, method: str, params: list[Any]) -> Any:
        if method == "transact":
            return self.db.transact(params[1:])
        if method == "ovsr/select-flows" and self.daemon_selects:
            self.selections += 1
            return select_flows(self.db.tables, params)
        raise ClientError(f"{method} failed: unknown method")


def rules_held(db: Database) -> list[tuple[Any, ...]]:
    bridge = next(iter(db.tables["Bridge"].values()))
    rows = db.tables["Flow_Rule"]
    return [tuple(scalar(rows[a.value][c]) for c in COLUMNS) for a in bridge["flow_rules"].values]


COMMANDS = (
    ("dump-flows", ["br0", "udp"], False),
    ("del-flows", ["br0", "tcp,tp_dst=80"], False),
    ("mod-flows", ["br0", "in_port=p1,actions=output:p2"], False),
    ("del-flows", ["br0", "priority=20,arp"], True),
    ("mod-flows", ["br0", "table=1,priority=30,ip,actions=drop"], True),
    ("del-flows", ["br0", "cookie=0x10/0xff,out_port=uplink"], False),
    ("dump-flows", ["br0", "in_port=uplink"], False),
    ("dump-flows", ["br0"], False),
)


def test_commands_change_and_show_the_same_with_and_without_the_daemons_choice(
    tmp_path: Path,
) -> None:
    fast = InProcessClient(loaded_db(tmp_path / "fast"), daemon_selects=True)
    slow = InProcessClient(loaded_db(tmp_path / "slow"), daemon_selects=False)
    assert rules_held(fast.db) == rules_held(slow.db)
    for name, args, strict in COMMANDS:
        opts = {"strict": strict}
        fast_data, fast_lines = run_flow_command(fast, name, args, opts, False)  # type: ignore[arg-type]
        slow_data, slow_lines = run_flow_command(slow, name, args, opts, False)  # type: ignore[arg-type]
        if name == "dump-flows":  # the same rules; row UUIDs differ between the two
            fast_data = [{k: v for k, v in r.items() if k != "uuid"} for r in fast_data]
            slow_data = [{k: v for k, v in r.items() if k != "uuid"} for r in slow_data]
            assert fast_data, f"{name} {args} shows nothing: the check would prove little"
        assert (fast_data, fast_lines) == (slow_data, slow_lines), (name, args)
        assert rules_held(fast.db) == rules_held(slow.db), (name, args)
    assert fast.selections == len(COMMANDS)
    assert len(rules_held(fast.db)) < 200, "the deletions deleted something"


class BrokenClient(InProcessClient):
    """The connection fails while the daemon is asked to choose."""

    def call(self, method: str, params: list[Any]) -> Any:
        if method == "ovsr/select-flows":
            raise ClientError("lost the connection to unix:/run/db.sock: reset by peer")
        return super().call(method, params)


def test_a_failed_connection_is_reported_not_answered_by_reading_every_rule(
    tmp_path: Path,
) -> None:
    client = BrokenClient(loaded_db(tmp_path / "db"), daemon_selects=True)
    with pytest.raises(ClientError, match="lost the connection"):
        run_flow_command(client, "del-flows", ["br0", "udp"], {}, False)  # type: ignore[arg-type]
