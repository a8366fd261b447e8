"""JSON-RPC 1.0 on a byte stream, as RFC 7047 section 4 uses it.

Messages are concatenated JSON objects with no delimiter. ``MessageFramer`` finds where
each one ends by tracking bracket depth outside strings (scanning only the structural
bytes with a regex, so large messages stay cheap), and enforces a size limit so that a
client cannot make the server buffer without bound.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_STRUCTURAL = re.compile(rb'\\.|["{}\[\]]', re.S)
_WHITESPACE = b" \t\r\n"


class FramingError(Exception):
    """The stream is not valid JSON (or too large) and cannot be resynchronised."""


class MessageFramer:
    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.buffer = bytearray()
        self.scan_pos = 0
        self.depth = 0
        self.in_string = False

    def feed(self, data: bytes) -> list[Any]:
        """Add bytes; return every complete message they finish, parsed."""
        self.buffer += data
        messages: list[Any] = []
        while True:
            end = self._find_end()
            if end is None:
                break
            if end > self.max_message_bytes:
                raise FramingError(f"message exceeds the limit of {self.max_message_bytes} bytes")
            raw = bytes(self.buffer[:end])
            del self.buffer[:end]
            self.scan_pos = 0
            try:
                messages.append(json.loads(raw))
            except (ValueError, UnicodeDecodeError) as exc:
                raise FramingError(f"malformed JSON: {exc}") from exc
        if len(self.buffer) > self.max_message_bytes:
            raise FramingError(f"message exceeds the limit of {self.max_message_bytes} bytes")
        return messages

    def _skip_to_message_start(self) -> bool:
        """Between messages only whitespace may appear; True once a message has begun."""
        buf = self.buffer
        pos = self.scan_pos
        while pos < len(buf) and buf[pos] in _WHITESPACE:
            pos += 1
        if pos == len(buf):
            self.buffer.clear()
            self.scan_pos = 0
            return False
        if buf[pos] not in b"{[":
            raise FramingError(f"expected a JSON object, got {bytes(buf[pos : pos + 20])!r}")
        del self.buffer[:pos]
        self.scan_pos = 0
        return True

    def _find_end(self) -> int | None:
        if self.depth == 0 and not self._skip_to_message_start():
            return None
        buf = self.buffer
        last_end = self.scan_pos
        for match in _STRUCTURAL.finditer(buf, self.scan_pos):
            token = match.group()
            last_end = match.end()
            if self.in_string:
                if token == b'"':
                    self.in_string = False
                continue
            if token == b'"':
                self.in_string = True
            elif token in (b"{", b"["):
                self.depth += 1
            elif token in (b"}", b"]"):
                self.depth -= 1
                if self.depth == 0:
                    return match.end()
            else:
                raise FramingError("backslash outside a JSON string")
        # Resume after the last byte scanned, but never split a backslash escape.
        lone_backslash = buf.endswith(b"\\") and last_end != len(buf)
        self.scan_pos = len(buf) - 1 if lone_backslash else len(buf)
        return None


@dataclass(frozen=True)
class Request:
    method: str
    params: list[Any]
    id: Any  # None for a notification


@dataclass(frozen=True)
class Response:
    result: Any
    error: Any
    id: Any


class ShapeError(Exception):
    def __init__(self, message: str, msg_id: Any = None) -> None:
        super().__init__(message)
        self.msg_id = msg_id


def classify(message: Any) -> Request | Response:
    """Check a parsed message's shape (JSON-RPC 1.0) and say what it is."""
    if not isinstance(message, dict):
        raise ShapeError(f"a JSON-RPC message must be an object, got {type(message).__name__}")
    msg_id = message.get("id")
    if "method" in message:
        method, params = message["method"], message.get("params")
        if not isinstance(method, str):
            raise ShapeError('"method" must be a string', msg_id)
        if not isinstance(params, list):
            raise ShapeError(f'"params" of "{method}" must be an array', msg_id)
        extra = set(message) - {"method", "params", "id"}
        if extra:
            raise ShapeError(f"request has unknown members: {', '.join(sorted(extra))}", msg_id)
        return Request(method, params, msg_id)
    if "result" in message or "error" in message:
        if "id" not in message or msg_id is None:
            raise ShapeError("a response needs a non-null id")
        return Response(message.get("result"), message.get("error"), msg_id)
    raise ShapeError('message has neither "method" nor "result"/"error"', msg_id)


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_reply(msg_id: Any, error: str, details: str = "") -> dict[str, Any]:
    payload: dict[str, Any] = {"error": error}
    if details:
        payload["details"] = details
    return {"result": None, "error": payload, "id": msg_id}
