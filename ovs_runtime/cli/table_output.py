"""How ``list`` and ``find`` print their rows: ovs-vsctl's table styles.

A command that selects rows leaves a ``Table`` (headings, and per row one cell per
column: the column's type and its value in the CLI's plain Python form). ``render``
prints it as ovs-vsctl does with the same options:

- ``--format``: ``list`` (the default: ``COLUMN : value`` lines, a blank line between
  rows), ``table`` (aligned columns under a dashed rule), ``csv`` or ``html``. ovsr's own
  ``--format json`` (one object per row) is handled by the caller, not here.
- ``--data``: ``string`` (values as ``ovs-vsctl get`` prints them), ``bare`` (no quotes
  or brackets) or ``json`` (RFC 7047 wire form, compact, as OVS writes it; real numbers,
  found only in ovsr's own Flow_Rule table, are Python's shortest form, not ``%.15g``).
- ``--no-headings``; ``--bare`` is ``--format=list --data=bare --no-headings``.

Every table after the first in one run is preceded by a blank line, except in HTML. A
table without rows prints its headings (``list``: nothing at all).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.cli import value_syntax as vs

FORMATS = ("list", "table", "csv", "html")  # and ovsr's own "json"
DATA_FORMATS = ("string", "bare", "json")
_UUID_PREFIX = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_CSV_SPECIAL = re.compile(r'[\n",]')
_HTML_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"))


@dataclass
class TableStyle:
    format: str = "list"
    data: str = "string"
    headings: bool = True


@dataclass
class Table:
    headings: list[str]
    rows: list[list[tuple[vs.Type | None, Any]]] = field(default_factory=list)


def wire_json(type_: vs.Type | None, value: Any) -> Any:
    """A value in RFC 7047's wire form as OVS writes it: a set of one is its atom."""
    if type_ is None:  # the _uuid column
        return ["uuid", value]
    if type_.is_map() or vs.is_scalar(type_):
        return vs.to_json(type_, value)
    if len(value) == 1:
        return vs.atom_to_json(value[0])
    return vs.to_json(type_, value)


def cell_text(cell: tuple[vs.Type | None, Any], data: str) -> str:
    type_, value = cell
    if data == "json":
        return json.dumps(
            wire_json(type_, value), ensure_ascii=False, separators=(",", ":"), sort_keys=True
        )
    if type_ is None:
        return str(value)
    if data == "bare":
        return vs.format_bare(value)
    return vs.format_value(type_, value)


def render(table: Table, style: TableStyle) -> list[str]:
    """The table's lines (without the blank line that separates tables)."""
    texts = [[cell_text(cell, style.data) for cell in row] for row in table.rows]
    if style.format == "table":
        return _aligned(table.headings, texts, style.headings)
    if style.format == "csv":
        head = [",".join(map(_csv_cell, table.headings))] if style.headings else []
        return head + [",".join(map(_csv_cell, row)) for row in texts]
    if style.format == "html":
        return _html(table.headings, texts, style.headings)
    lines: list[str] = []
    for number, row in enumerate(texts):
        if number:
            lines.append("")
        for heading, text in zip(table.headings, row, strict=True):
            lines.append(f"{heading:<20}: {text}" if style.headings else text)
    return lines


def _aligned(headings: list[str], texts: list[list[str]], with_headings: bool) -> list[str]:
    # Widths are in bytes of UTF-8, as ovs-vsctl counts them (``strlen``); a heading
    # counts only when it is printed.
    widths = [
        max([_bytes(heading) if with_headings else 0, *(_bytes(row[x]) for row in texts)])
        for x, heading in enumerate(headings)
    ]

    def line(cells: list[str]) -> str:
        # ovs-vsctl pads every cell to its column's width; the line ends at its text.
        pairs = zip(cells, widths, strict=True)
        return " ".join(cell + " " * (width - _bytes(cell)) for cell, width in pairs).rstrip(" ")

    lines = [line(headings), line(["-" * width for width in widths])] if with_headings else []
    return lines + [line(row) for row in texts]


def _bytes(text: str) -> int:
    return len(text.encode())


def _csv_cell(text: str) -> str:
    if not _CSV_SPECIAL.search(text):
        return text
    return '"' + text.replace('"', '""') + '"'


def _html_escape(text: str) -> str:
    for char, entity in _HTML_ENTITIES:
        text = text.replace(char, entity)
    return text


def _html_cell(element: str, text: str) -> str:
    """UUIDs become links to the row they name, shown by their first 8 digits."""
    out, position = [], 0
    for match in _UUID_PREFIX.finditer(text):
        out.append(_html_escape(text[position : match.start()]))
        out.append(f'<a href="#{match.group()}">{match.group()[:8]}</a>')
        position = match.end()
    out.append(_html_escape(text[position:]))
    return f"    <{element}>{''.join(out)}</{element}>"


def _html(headings: list[str], texts: list[list[str]], with_headings: bool) -> list[str]:
    lines = ["<table border=1>"]
    if with_headings:
        lines += ["  <tr>", *(_html_cell("th", h) for h in headings), "  </tr>"]
    for row in texts:
        lines.append("  <tr>")
        for heading, text in zip(headings, row, strict=True):
            if heading == "_uuid":
                name, short = _html_escape(text), _html_escape(text[:8])
                lines.append(f'    <td><a name="{name}">{short}</a></td>')
            else:
                lines.append(_html_cell("td", text))
        lines.append("  </tr>")
    return lines + ["</table>"]


def one_line(lines: list[str]) -> str:
    """``--oneline``: a command's output on one line, newlines as ``\\n`` and
    backslashes doubled."""
    text = "\n".join(lines)
    return text.replace("\\", "\\\\").replace("\n", "\\n")
