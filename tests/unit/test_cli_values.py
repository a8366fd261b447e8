"""ovs-vsctl value syntax, argument parsing and desired-state normalisation (no daemon)."""

from __future__ import annotations

from typing import Any

import pytest

from ovs_runtime.cli import apply as apply_cmd
from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.main import UsageError, parse_argv
from ovs_runtime.db.schema import load_schema
from tests.unit.db_helpers import coltype

SCHEMA = load_schema()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("10", [10]),
        ("[]", []),
        ("[10,20]", [10, 20]),
        ("20,10", [10, 20]),
        ("[ 5 , 6 ]", [5, 6]),
    ],
)
def test_parse_sets(text: str, expected: list[int]) -> None:
    assert vs.parse_value(coltype("Port", "trunks"), text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        # As ovs-vsctl: the value of COLUMN:KEY= is one atom, and an unquoted string
        # is all of the rest (the OVN settings are written this way).
        (
            "external_ids:ovn-bridge-mappings=physnet1:br-ex,physnet2:br-vlan",
            ("external_ids", ("ovn-bridge-mappings", False), "physnet1:br-ex,physnet2:br-vlan"),
        ),
        ('other_config:"a=b:c"=d', ("other_config", ("a=b:c", True), "d")),
        ("fail_mode=secure", ("fail_mode", None, "secure")),
        ("external_ids:k==", ("external_ids", ("k", False), "=")),
    ],
)
def test_split_assignment(text: str, expected: tuple[Any, ...]) -> None:
    assert vs.split_assignment(text) == expected


def test_single_atoms_take_the_whole_text() -> None:
    strings = coltype("Bridge", "external_ids").value
    assert vs.parse_single_atom(strings, "geneve,vxlan") == "geneve,vxlan"
    assert vs.parse_single_atom(strings, "a b={c}") == "a b={c}"
    assert vs.parse_single_atom(strings, '"quoted, \\"x\\""') == 'quoted, "x"'
    assert vs.parse_single_atom(strings, '""') == ""
    for bad, message in (
        ("", "empty string is not valid"),
        ('"a" b', "unexpected text after"),
        ('"open', "unterminated"),
    ):
        with pytest.raises(vs.ValueError_, match=message):
            vs.parse_single_atom(strings, bad)
    tag = coltype("Port", "tag").key
    assert vs.parse_single_atom(tag, "10") == 10
    with pytest.raises(vs.ValueError_, match="unexpected text after '10'"):
        vs.parse_single_atom(tag, "10,11")
    with pytest.raises(vs.ValueError_, match="expected COLUMN"):
        vs.split_assignment("external_ids:novalue")


def test_parse_maps_and_quoting() -> None:
    t = coltype("Interface", "options")
    assert vs.parse_value(t, '{peer=p1, key="a b"}') == {"peer": "p1", "key": "a b"}
    assert vs.parse_value(t, "{}") == {}
    assert vs.parse_value(coltype("Bridge", "name"), '"br 0"') == "br 0"


@pytest.mark.parametrize(
    "table,column,text,message",
    [
        ("Port", "tag", "ten", "not a valid integer"),
        ("Port", "tag", "4096", "out of range"),
        ("Port", "tag", "1,2", "takes 0 to 1"),
        ("Port", "vlan_mode", "sideways", "not one of"),
        ("Interface", "options", "{peer}", "expected key=value"),
        ("Port", "trunks", "[1,2", "missing ']'"),
    ],
)
def test_parse_errors_name_the_problem(table: str, column: str, text: str, message: str) -> None:
    with pytest.raises(vs.ValueError_, match=message):
        vs.parse_value(coltype(table, column), text, what=f"{table} column {column}")


def test_format_matches_ovs_vsctl_style() -> None:
    assert vs.format_value(coltype("Port", "trunks"), [10, 20]) == "[10, 20]"
    assert (
        vs.format_value(coltype("Interface", "options"), {"peer": "p1", "n": "3"})
        == '{n="3", peer=p1}'
    )
    assert vs.format_value(coltype("Bridge", "name"), "br0") == "br0"


def test_argv_chaining_and_options() -> None:
    opts, invs = parse_argv(
        [
            "--db=unix:/x",
            "--timeout",
            "3",
            "--no-wait",
            "--may-exist",
            "add-br",
            "br0",
            "--",
            "--if-exists",
            "del-port",
            "p1",
        ]
    )
    assert opts.db == "unix:/x" and opts.timeout == 3.0 and not opts.wait
    assert [(i.name, i.args, i.opts) for i in invs] == [
        ("add-br", ["br0"], {"may-exist": True}),
        ("del-port", ["p1"], {"if-exists": True}),
    ]


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "missing command"),
        (["frob"], "unknown command"),
        (["add-br"], "takes 1 to 3 arguments"),
        (["--timeout", "0", "show"], "greater than 0"),
        (["--timeout", "soon", "show"], "number of seconds"),
        (["--timeout", "nan", "show"], "greater than 0 and at most 86400"),
        (["--timeout=inf", "show"], "greater than 0 and at most 86400"),
        (["--timeout", "1e400", "show"], "greater than 0 and at most 86400"),
        (["--timeout", "-3", "show"], "greater than 0"),
        (["--db", "tcp:1.2.3.4:6640", "show"], "expected unix:PATH"),
        (["--may-exist", "del-br", "b"], "does not accept --may-exist"),
        (["show", "--", "--", "show"], "empty command"),
        (["--bogus", "show"], "unknown option"),
        (["--format=yaml", "list", "Port"], "expected one of list, table, csv, html or json"),
        (["--data", "xml", "list", "Port"], "expected one of string, bare, json"),
        (["--data"], "--data needs a value"),
        (["--no-headings=yes", "list", "Port"], "--no-headings takes no value"),
        (["list", "Port", "--", "--oneline", "list-br"], "--oneline is a global option"),
    ],
)
def test_argv_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_argv(argv)


@pytest.mark.parametrize("value", ["nan", "inf", "0", "3601", "soon"])
def test_confirm_timeout_must_be_a_real_number_of_seconds(value: str) -> None:
    from ovs_runtime.cli.main import Invocation, _confirm_timeout

    with pytest.raises(UsageError, match="--confirm-timeout"):
        _confirm_timeout([Invocation("apply", ["x.yaml"], {"confirm-timeout": value})])


def test_desired_state_normalisation() -> None:
    doc: dict[str, Any] = {
        "bridges": [
            {
                "name": "br0",
                "fail_mode": "secure",
                "other_config": {"mac-aging-time": 300},
                "ports": {
                    "p1": {"tag": "10", "trunks": [20, "10"]},
                    "pa": {"type": "patch", "options": {"peer": "pb"}},
                },
            }
        ]
    }
    desired = apply_cmd.parse_desired(doc, SCHEMA)
    br = desired["br0"]
    assert br["columns"]["fail_mode"] == ["secure"]
    assert br["columns"]["other_config"] == {"mac-aging-time": "300"}
    assert br["ports"]["p1"]["columns"] == {"tag": [10], "trunks": [10, 20]}
    assert br["ports"]["pa"]["interface"] == {"type": "patch", "options": {"peer": "pb"}}


@pytest.mark.parametrize(
    "doc,message",
    [
        ({"bridge": {}}, "unknown top-level"),
        ({"bridges": {"br0": {"ports": {"p1": {"tag": 5000}}}}}, "out of range"),
        ({"bridges": {"br0": {"ports": {"p1": {"tag": True}}}}}, "expected an integer"),
        ({"bridges": {"br0": {"colour": "red"}}}, "unknown setting 'colour'"),
        ({"bridges": [{"fail_mode": "secure"}]}, "needs a 'name'"),
        ({"bridges": {"br0": {"ports": {"p1": {"vlan_mode": "bogus"}}}}}, "not one of"),
        ({"bridges": {"br0": {"ports": {"p1": {"trunks": {"a": 1}}}}}}, "expected a single"),
    ],
)
def test_desired_state_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(apply_cmd.ApplyError, match=message):
        apply_cmd.parse_desired(doc, SCHEMA)


def test_a_fake_bridge_is_refused_with_what_to_do_instead() -> None:
    from ovs_runtime.cli.bridge_commands import cmd_add_br
    from ovs_runtime.cli.command_registry import CommandContext
    from ovs_runtime.cli.model import Model, ModelError

    model = Model(
        SCHEMA,
        {t: [] for t in SCHEMA.tables}
        | {
            "Open_vSwitch": [
                {"_uuid": ["uuid", "00000000-0000-0000-0000-000000000001"], "bridges": ["set", []]}
            ]
        },
    )
    with pytest.raises(ModelError, match=r"add-port br0 fake0 tag=10 -- set Interface fake0"):
        cmd_add_br(CommandContext(model), ["fake0", "br0", "10"])
    with pytest.raises(ModelError, match=r"'add-br' takes exactly 1 or 3 arguments"):
        cmd_add_br(CommandContext(model), ["fake0", "br0"])
    assert not model.changed()
