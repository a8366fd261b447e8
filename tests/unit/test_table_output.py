"""ovs-vsctl's table styles for ``list`` and ``find`` (the real ovs-vsctl is the oracle
in tests/integration/test_ovs_tools_compat.py; these pin the rules without a daemon)."""

from __future__ import annotations

import pytest

from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.main import parse_argv
from ovs_runtime.cli.table_output import Table, TableStyle, one_line, render, wire_json
from tests.unit.db_helpers import coltype

UUID_A = "0a6c15dc-b632-4f03-953c-621e8229b3b4"
UUID_B = "258e5289-74d0-4fb3-a074-5c7f7146b1e5"


def ports_table() -> Table:
    name, tag = coltype("Port", "name"), coltype("Port", "tag")
    ids, ifaces = coltype("Port", "external_ids"), coltype("Port", "interfaces")
    return Table(
        ["_uuid", "name", "tag", "external_ids", "interfaces"],
        [
            [(None, UUID_A), (name, "br0"), (tag, []), (ids, {}), (ifaces, [("uuid", UUID_B)])],
            [
                (None, UUID_B),
                (name, "p1"),
                (tag, [5]),
                (ids, {"k": "a,b", "q": 'x"y'}),
                (ifaces, [("uuid", UUID_A), ("uuid", UUID_B)]),
            ],
        ],
    )


def test_list_is_the_default_with_a_blank_line_between_rows() -> None:
    lines = render(ports_table(), TableStyle())
    assert lines[:5] == [
        f"_uuid               : {UUID_A}",
        "name                : br0",
        "tag                 : []",
        "external_ids        : {}",
        f"interfaces          : [{UUID_B}]",
    ]
    assert lines[5] == "" and lines[7] == "name                : p1"
    assert lines[9] == 'external_ids        : {k="a,b", q="x\\"y"}'


def test_table_aligns_columns_and_ends_lines_at_their_text() -> None:
    table = Table(ports_table().headings[1:3], [row[1:3] for row in ports_table().rows])
    assert render(table, TableStyle(format="table")) == [
        "name tag",
        "---- ---",
        "br0  []",
        "p1   5",
    ]
    # Without headings, only the cells set the widths.
    assert render(table, TableStyle(format="table", headings=False)) == ["br0 []", "p1  5"]


def test_widths_count_bytes_of_utf8_as_ovs_vsctl_does() -> None:
    name = coltype("Port", "name")
    table = Table(
        ["name", "tag"], [[(name, "h\u00e9llo"), (None, "x")], [(name, "a"), (None, "y")]]
    )
    # "héllo" is 6 bytes: "a" is padded to 6, and the rule under "name" is 6 dashes.
    assert render(table, TableStyle(format="table", data="bare")) == [
        "name   tag",
        "------ ---",
        "h\u00e9llo x",
        "a      y",
    ]


@pytest.mark.parametrize(
    "style,expected",
    [
        (TableStyle(), []),
        (TableStyle(format="table"), ["name tag", "---- ---"]),
        (TableStyle(format="table", headings=False), []),
        (TableStyle(format="csv"), ["name,tag"]),
        (
            TableStyle(format="html"),
            [
                "<table border=1>",
                "  <tr>",
                "    <th>name</th>",
                "    <th>tag</th>",
                "  </tr>",
                "</table>",
            ],
        ),
    ],
)
def test_a_table_without_rows_prints_its_headings(style: TableStyle, expected: list[str]) -> None:
    assert render(Table(["name", "tag"]), style) == expected


def test_csv_quotes_cells_with_commas_quotes_or_newlines() -> None:
    lines = render(ports_table(), TableStyle(format="csv", data="string"))
    assert lines[0] == "_uuid,name,tag,external_ids,interfaces"
    assert lines[2] == f'{UUID_B},p1,5,"{{k=""a,b"", q=""x\\""y""}}","[{UUID_A}, {UUID_B}]"'


def test_html_escapes_and_links_uuids() -> None:
    lines = render(ports_table(), TableStyle(format="html"))
    assert lines[0] == "<table border=1>" and lines[-1] == "</table>"
    assert f'    <td><a name="{UUID_B}">{UUID_B[:8]}</a></td>' in lines
    assert "    <td>{k=&quot;a,b&quot;, q=&quot;x\\&quot;y&quot;}</td>" in lines
    link_a = f'<a href="#{UUID_A}">{UUID_A[:8]}</a>'
    assert f'    <td>[{link_a}, <a href="#{UUID_B}">{UUID_B[:8]}</a>]</td>' in lines


def test_data_bare_and_json() -> None:
    bare = render(ports_table(), TableStyle(data="bare", headings=False))
    assert bare[6:11] == [UUID_B, "p1", "5", 'k=a,b q=x"y', f"{UUID_A} {UUID_B}"]
    as_json = render(ports_table(), TableStyle(format="csv", data="json", headings=False))
    assert as_json[0] == (
        f'"[""uuid"",""{UUID_A}""]","""br0""","[""set"",[]]","[""map"",[]]",'
        f'"[""uuid"",""{UUID_B}""]"'
    )


def test_wire_json_writes_a_set_of_one_as_its_atom() -> None:
    ifaces = coltype("Port", "interfaces")
    assert wire_json(ifaces, [("uuid", UUID_A)]) == ["uuid", UUID_A]
    assert wire_json(ifaces, []) == ["set", []]
    assert wire_json(coltype("Port", "tag"), [5]) == 5
    assert wire_json(None, UUID_A) == ["uuid", UUID_A]
    assert wire_json(coltype("Port", "external_ids"), {"b": "1", "a": "2"}) == [
        "map",
        [["a", "2"], ["b", "1"]],
    ]
    assert vs.is_scalar(coltype("Port", "name"))


def test_one_line_escapes_newlines_and_backslashes() -> None:
    assert one_line(["br0", "br1"]) == "br0\\nbr1"
    assert one_line(['{path="c:\\\\d"}']) == '{path="c:\\\\\\\\d"}'
    assert one_line([]) == ""


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["list", "Port"], ("list", "list", "string", True)),
        (["--bare", "list", "Port"], ("list", "list", "bare", False)),
        (["--bare", "--format=table", "list", "Port"], ("table", "table", "bare", False)),
        (["-f", "csv", "-d", "json", "--no-headings", "list", "P"], ("csv", "csv", "json", False)),
        (["--format", "json", "list", "Port"], ("json", "list", "string", True)),
        (["--format=json", "--bare", "list", "Port"], ("json", "list", "bare", False)),
        (["-ftable", "-dbare", "list", "Port"], ("table", "table", "bare", True)),
    ],
)
def test_style_options_combine_in_order(argv: list[str], expected: tuple[object, ...]) -> None:
    opts, _ = parse_argv(argv)
    assert (opts.format, opts.style.format, opts.style.data, opts.style.headings) == expected
