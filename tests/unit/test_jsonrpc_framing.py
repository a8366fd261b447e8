"""Splitting a byte stream into JSON-RPC messages, and rejecting what is not one."""

from __future__ import annotations

import json

import pytest

from ovs_runtime.db.jsonrpc import (
    FramingError,
    MessageFramer,
    Request,
    Response,
    ShapeError,
    classify,
)


def test_messages_split_across_and_within_chunks() -> None:
    framer = MessageFramer(1 << 20)
    a = {"method": "echo", "params": ['a}]{["\\'], "id": 1}
    b = {"method": "list_dbs", "params": [], "id": 2}
    stream = (json.dumps(a) + "  \n" + json.dumps(b)).encode()
    got = []
    for i in range(len(stream)):  # one byte at a time: every split point
        got.extend(framer.feed(stream[i : i + 1]))
    assert got == [a, b]
    assert framer.feed(stream) == [a, b]  # and all at once


def test_escaped_backslash_at_chunk_boundary() -> None:
    framer = MessageFramer(1 << 20)
    msg = {"method": "echo", "params": ["x\\"], "id": 1}
    raw = json.dumps(msg).encode()
    cut = raw.index(b"\\\\") + 1  # split between the two bytes of the escape
    assert framer.feed(raw[:cut]) == []
    assert framer.feed(raw[cut:]) == [msg]


def test_utf8_split_inside_character() -> None:
    framer = MessageFramer(1 << 20)
    raw = json.dumps({"method": "echo", "params": ["grüße"], "id": 1}, ensure_ascii=False).encode()
    cut = raw.index("ü".encode()) + 1
    assert framer.feed(raw[:cut]) == []
    assert framer.feed(raw[cut:])[0]["params"] == ["grüße"]


@pytest.mark.parametrize("garbage", [b"hello", b'{"a": tru}', b'{"a" 1}', b"123 ", b"{}\\x"])
def test_malformed_json_is_a_framing_error(garbage: bytes) -> None:
    with pytest.raises(FramingError):
        MessageFramer(1 << 20).feed(garbage)


def test_oversized_message() -> None:
    framer = MessageFramer(1000)
    with pytest.raises(FramingError, match="exceeds"):
        framer.feed(b'{"method": "echo", "params": ["' + b"x" * 2000)


def test_classify_shapes() -> None:
    assert classify({"method": "echo", "params": [], "id": 3}) == Request("echo", [], 3)
    assert classify({"method": "update", "params": [1], "id": None}).id is None
    assert isinstance(classify({"result": 1, "error": None, "id": 3}), Response)
    for bad in (
        [1, 2],
        {"method": 5, "params": []},
        {"method": "x", "params": {}},
        {"method": "x", "params": [], "id": 1, "extra": 1},
        {"id": 1},
        {"result": 1},
    ):
        with pytest.raises(ShapeError):
            classify(bad)
