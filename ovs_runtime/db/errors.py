"""RFC 7047 error objects: every failure a client can see is one of these."""

from __future__ import annotations

from typing import Any


class OvsdbError(Exception):
    """An error that travels to the client as ``{"error": tag, "details": ...}``.

    ``tag`` is one of the strings RFC 7047 section 4.1.3 and 5.2 define
    ("constraint violation", "referential integrity violation", "syntax error", ...).
    """

    def __init__(self, tag: str, details: str = "") -> None:
        super().__init__(f"{tag}: {details}" if details else tag)
        self.tag = tag
        self.details = details

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"error": self.tag}
        if self.details:
            obj["details"] = self.details
        return obj


def syntax_error(details: str) -> OvsdbError:
    return OvsdbError("syntax error", details)


def constraint_violation(details: str) -> OvsdbError:
    return OvsdbError("constraint violation", details)
