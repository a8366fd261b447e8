"""Loading the ``Open_vSwitch`` schema file that ships inside the package.

The schema is parsed by the ``ovs`` library (Open vSwitch's own Python bindings, Debian
``python3-openvswitch``): it already implements RFC 7047's schema and type grammar, so
the server and any real OVS client agree on what a column's type means.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import ovs.db.error
import ovs.db.schema

from ovs_runtime.db.errors import OvsdbError

SCHEMA_RESOURCE = "Open_vSwitch.ovsschema"

from ovs.db.schema import ColumnSchema as ColumnSchema  # noqa: E402  (re-exported)
from ovs.db.schema import DbSchema as DbSchema  # noqa: E402
from ovs.db.schema import TableSchema as TableSchema  # noqa: E402


def schema_json() -> dict[str, Any]:
    """The shipped schema as JSON, exactly as ``get_schema`` returns it."""
    text = resources.files("ovs_runtime.db").joinpath(SCHEMA_RESOURCE).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def parse_schema(doc: dict[str, Any]) -> DbSchema:
    try:
        return DbSchema.from_json(doc)
    except ovs.db.error.Error as exc:
        raise OvsdbError("syntax error", f"invalid schema: {exc}") from exc


def load_schema() -> DbSchema:
    return parse_schema(schema_json())


def version_tuple(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch
