"""ovs-vsctl's value grammar, and the plain Python form the CLI works in.

Column values in the CLI are plain Python: an atom is ``int``, ``float``, ``bool``,
``str`` or, for a UUID, the tuple ``("uuid", text)`` / ``("named-uuid", name)``; a map is
a ``dict``; a set or optional value is a sorted ``list``; a required scalar is the atom.

``parse_value`` reads what users type (``tag=10``, ``trunks=[10,20]``, ``trunks=10,20``,
``options={peer=patch1}``, ``other_config:mac-aging-time=300``, quoted strings with
C escapes); ``format_value`` prints values the way ``ovs-vsctl get``/``list`` do.
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from typing import Any

import ovs.db.types
from ovs.db.types import BaseType as BaseType  # noqa: E402  (re-exported)
from ovs.db.types import BooleanType as BooleanType
from ovs.db.types import IntegerType as IntegerType
from ovs.db.types import RealType as RealType
from ovs.db.types import StringType as StringType
from ovs.db.types import Type as Type  # noqa: E402

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
# Strings ovs-vsctl prints without quotes (``string_needs_quotes`` in OVS): a letter or
# underscore, then letters, digits, ``_``, ``-`` and ``.``; never true/false or a UUID.
BARE_STRING = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class ValueError_(Exception):
    """A value the user typed does not fit the column; the message says what would."""


# -- the Python form <-> RFC 7047 JSON ----------------------------------------------------


def is_scalar(type_: Type) -> bool:
    return bool(type_.n_min == 1 and type_.n_max == 1 and not type_.is_map())


def atom_from_json(json_atom: Any) -> Any:
    if (
        isinstance(json_atom, list)
        and len(json_atom) == 2
        and json_atom[0] in ("uuid", "named-uuid")
    ):
        return (json_atom[0], json_atom[1])
    return json_atom


def atom_to_json(atom: Any) -> Any:
    if isinstance(atom, tuple):
        return [atom[0], atom[1]]
    return atom


def _sort_key(atom: Any) -> Any:
    return (str(type(atom)), atom)


def from_json(type_: Type, json_value: Any) -> Any:
    if type_.is_map():
        pairs = json_value[1] if isinstance(json_value, list) and json_value[:1] == ["map"] else []
        return {atom_from_json(k): atom_from_json(v) for k, v in pairs}
    if isinstance(json_value, list) and json_value[:1] == ["set"]:
        atoms = [atom_from_json(a) for a in json_value[1]]
    else:
        atoms = [atom_from_json(json_value)]
    if is_scalar(type_):
        return atoms[0]
    return sorted(set(atoms), key=_sort_key)


def to_json(type_: Type, value: Any) -> Any:
    if type_.is_map():
        return [
            "map",
            [
                [atom_to_json(k), atom_to_json(v)]
                for k, v in sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
            ],
        ]
    if is_scalar(type_):
        return atom_to_json(value)
    return ["set", [atom_to_json(a) for a in value]]


def default_value(type_: Type) -> Any:
    if type_.is_map():
        return {}
    if is_scalar(type_):
        return {
            ovs.db.types.IntegerType: 0,
            ovs.db.types.RealType: 0.0,
            ovs.db.types.BooleanType: False,
            ovs.db.types.StringType: "",
            ovs.db.types.UuidType: ("uuid", "00000000-0000-0000-0000-000000000000"),
        }[type_.key.type]
    return []


# -- what users type ------------------------------------------------------------------


class _Tokens:
    """A tiny scanner over one value string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def word(self) -> tuple[str, bool]:
        """The next atom's text, and whether it was quoted."""
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            end = self.pos + 1
            while end < len(self.text):
                if self.text[end] == "\\":
                    end += 2
                    continue
                if self.text[end] == '"':
                    break
                end += 1
            if end >= len(self.text):
                raise ValueError_(f"unterminated quoted string in {self.text!r}")
            literal = self.text[self.pos : end + 1]
            self.pos = end + 1
            try:
                decoded: str = json.loads(literal)
            except json.JSONDecodeError as exc:
                raise ValueError_(f"bad quoted string {literal}: {exc.msg}") from None
            return decoded, True
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",]}= \t":
            self.pos += 1
        return self.text[start : self.pos], False

    def at_end(self) -> bool:
        return self.peek() == ""


def symbol(name: str) -> str:
    """The uuid-name an ``@NAME`` stands for in the transaction."""
    return "row_" + re.sub(r"\W", "_", name[1:])


def parse_atom(base: BaseType, text: str, quoted: bool = False, what: str = "value") -> Any:
    kind = base.type
    try:
        if kind == ovs.db.types.StringType:
            atom: Any = text
        elif quoted:
            raise ValueError_(f"{what}: {text!r} must not be quoted; expected {kind.to_string()}")
        elif kind == ovs.db.types.IntegerType:
            atom = int(text, 0) if text.lower().startswith("0x") else int(text)
        elif kind == ovs.db.types.RealType:
            atom = float(text)
        elif kind == ovs.db.types.BooleanType:
            if text not in ("true", "false"):
                raise ValueError
            atom = text == "true"
        else:
            if text.startswith("@"):
                atom = ("named-uuid", symbol(text))
            elif UUID_RE.match(text):
                atom = ("uuid", str(uuidlib.UUID(text)))
            else:
                raise ValueError
    except ValueError:
        raise ValueError_(
            f"{what}: {text!r} is not a valid {kind.to_string()}"
            + ("" if kind != ovs.db.types.UuidType else " (a UUID or @name)")
        ) from None
    _check_constraints(base, atom, what)
    return atom


def _check_constraints(base: BaseType, atom: Any, what: str) -> None:
    if base.enum is not None:
        allowed = sorted(a.value for a in base.enum.values)
        if atom not in allowed:
            raise ValueError_(f"{what}: {atom!r} is not one of: {', '.join(map(str, allowed))}")
    if isinstance(atom, (int, float)) and not isinstance(atom, bool):
        low = base.min
        high = base.max
        if (low is not None and atom < low) or (high is not None and atom > high):
            bounds = (
                f"{low if low is not None else '-inf'} to {high if high is not None else 'inf'}"
            )
            raise ValueError_(f"{what}: {atom} is out of range ({bounds})")


def parse_single_atom(base: BaseType, text: str, what: str = "value") -> Any:
    """One atom given alone, as the value of ``COLUMN:KEY=VALUE``: as ovs-vsctl reads
    it, an unquoted string is the whole text, commas, equals signs, colons and spaces
    included (``external_ids:ovn-bridge-mappings=physnet1:br-ex,physnet2:br-vlan``); a
    quoted one must be a single JSON string literal."""
    if base.type == ovs.db.types.StringType:
        if text == "":
            raise ValueError_(f'{what}: an empty string is not valid here; write "" for one')
        if not text.startswith('"'):
            return parse_atom(base, text, False, what)
    tokens = _Tokens(text)
    word, quoted = tokens.word()
    if not tokens.at_end():
        raise ValueError_(f"{what}: unexpected text after {word!r} in {text!r}")
    return parse_atom(base, word, quoted, what)


def split_assignment(text: str) -> tuple[str, tuple[str, bool] | None, str]:
    """``COLUMN[:KEY]=VALUE`` -> (column, (key text, whether quoted) or None, value
    text). A quoted key may hold ``=`` and ``:``; the value is everything after the
    ``=`` that ends the key."""
    column_end = min((i for i in (text.find(":"), text.find("=")) if i >= 0), default=-1)
    if column_end < 0:
        raise ValueError_(f"{text!r}: expected COLUMN[:KEY]=VALUE")
    column = text[:column_end]
    if text[column_end] == "=":
        return column, None, text[column_end + 1 :]
    tokens = _Tokens(text[column_end + 1 :])
    if tokens.peek() == '"':
        key, quoted = tokens.word()
        rest = tokens.text[tokens.pos :]
    else:
        key, sep, rest = tokens.text.partition("=")
        rest = sep + rest
        quoted = False
    if not rest.startswith("="):
        raise ValueError_(f"{text!r}: expected COLUMN:KEY=VALUE")
    return column, (key, quoted), rest[1:]


def parse_value(type_: Type, text: str, what: str = "value") -> Any:
    """Parse the right-hand side of ``COLUMN=VALUE`` for a column of ``type_``."""
    tokens = _Tokens(text)
    if type_.is_map():
        value: dict[Any, Any] = {}
        braced = tokens.take("{")
        while not tokens.at_end() and tokens.peek() != "}":
            key_text, kq = tokens.word()
            if not tokens.take("="):
                raise ValueError_(f"{what}: expected key=value in {text!r}")
            val_text, vq = tokens.word()
            value[parse_atom(type_.key, key_text, kq, what)] = parse_atom(
                type_.value, val_text, vq, what
            )
            tokens.take(",")
        if braced and not tokens.take("}"):
            raise ValueError_(f"{what}: missing '}}' in {text!r}")
        if not tokens.at_end():
            raise ValueError_(f"{what}: unexpected text after the map in {text!r}")
        return value
    braced = tokens.take("[")
    atoms = []
    while not tokens.at_end() and tokens.peek() != "]":
        word, quoted = tokens.word()
        if word == "" and not quoted:
            raise ValueError_(f"{what}: empty element in {text!r}")
        atoms.append(parse_atom(type_.key, word, quoted, what))
        tokens.take(",")
    if braced and not tokens.take("]"):
        raise ValueError_(f"{what}: missing ']' in {text!r}")
    if not tokens.at_end():
        raise ValueError_(f"{what}: unexpected text in {text!r}")
    unique = sorted(set(atoms), key=_sort_key)
    if not type_.n_min <= len(unique) <= type_.n_max:
        if is_scalar(type_):
            raise ValueError_(f"{what}: expected exactly one {type_.key.type.to_string()}")
        raise ValueError_(
            f"{what}: {len(unique)} values given; the column takes {type_.n_min} to {type_.n_max}"
        )
    return unique[0] if is_scalar(type_) else unique


# -- printing -------------------------------------------------------------------------


def format_atom(atom: Any) -> str:
    if isinstance(atom, tuple):
        return atom[1]
    if isinstance(atom, bool):
        return "true" if atom else "false"
    if isinstance(atom, str):
        if BARE_STRING.match(atom) and atom not in ("true", "false") and not UUID_RE.match(atom):
            return atom
        return json.dumps(atom, ensure_ascii=False)  # "héllo", as ovs-vsctl prints it
    return str(atom)


def format_value(type_: Type, value: Any) -> str:
    if type_.is_map():
        return (
            "{"
            + ", ".join(
                f"{format_atom(k)}={format_atom(v)}"
                for k, v in sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
            )
            + "}"
        )
    if is_scalar(type_):
        return format_atom(value)
    if type_.n_max == 1 and len(value) == 1:
        return format_atom(value[0])  # an optional value prints bare, as in ovs-vsctl
    return "[" + ", ".join(format_atom(a) for a in value) + "]"


def format_bare(value: Any) -> str:
    """A value as ``ovs-vsctl --bare`` prints it: elements separated by spaces, map
    entries as KEY=VALUE, nothing quoted."""

    def atom(a: Any) -> str:
        if isinstance(a, tuple):
            return str(a[1])
        if isinstance(a, bool):
            return "true" if a else "false"
        return str(a)

    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
        return " ".join(f"{atom(k)}={atom(v)}" for k, v in items)
    if isinstance(value, list):
        return " ".join(atom(a) for a in value)
    return atom(value)


def to_plain(value: Any) -> Any:
    """A value as plain JSON for ``--format json`` (UUIDs as strings)."""
    if isinstance(value, tuple):
        return value[1]
    if isinstance(value, dict):
        return {str(to_plain(k)): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
