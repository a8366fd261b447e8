"""Splitting a byte stream into JSON-RPC messages, and rejecting what is not one."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ovs_runtime.db.jsonrpc import (
    SKIP_STEP,
    FramingError,
    InvalidText,
    MessageFramer,
    Request,
    Response,
    ShapeError,
    classify,
    lone_surrogate,
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


def random_text(rng: random.Random, n: int) -> str:
    alphabet = 'ab{}[]"\\ ,:xyzü€\n\t\x00'
    return "".join(rng.choices(alphabet, k=n))


def random_value(rng: random.Random, depth: int, size: int) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return rng.choice([random_text(rng, rng.randint(0, size)), rng.randint(-9, 99), None, True])
    if roll < 0.65:
        return [random_value(rng, depth + 1, size) for _ in range(rng.randint(0, 6))]
    return {
        random_text(rng, 5): random_value(rng, depth + 1, size) for _ in range(rng.randint(0, 6))
    }


def big_message(rng: random.Random, n: int) -> dict[str, Any]:
    """A message over the skip-ahead's step: many rows, long strings of quotes,
    brackets and backslash runs that the steps cut through."""
    rows = [random_value(rng, 0, 40) for _ in range(n)]
    tricky = ["\\" * rng.randint(0, 9) + '"' * rng.randint(0, 3) + "]}" for _ in range(200)]
    return {"id": rng.randint(0, 99), "result": [rows, "".join(tricky) * 50, 'x\\"' * 30000]}


@pytest.mark.parametrize("seed", range(5))
def test_large_messages_frame_exactly_at_every_kind_of_split(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large and small messages, split at random points into chunks of one byte to
    300 KiB, come out exactly as sent; the skip-ahead really skipped."""
    rng = random.Random(seed)
    messages: list[Any] = []
    for n in range(6):
        if n == 0 or rng.random() < 0.5:
            messages.append(big_message(rng, rng.randint(100, 600)))
        else:
            messages.append({"method": "echo", "params": [random_value(rng, 0, 8)], "id": 1})
    stream = b"".join(
        json.dumps(m, ensure_ascii=rng.random() < 0.5).encode() + rng.choice([b"", b" ", b"\n"])
        for m in messages
    )
    skipped: list[int] = []
    real_step = MessageFramer._step

    def counted(self: MessageFramer, buf: bytearray, pos: int, end: int) -> Any:
        state = real_step(self, buf, pos, end)
        if state is not None:
            skipped.append(state[0] - pos)
        return state

    monkeypatch.setattr(MessageFramer, "_step", counted)
    framer = MessageFramer(1 << 26)
    got: list[Any] = []
    at = 0
    while at < len(stream):
        size = rng.choice([13, 1021, 4096, 65536, 65537, 300_000, rng.randint(1, 200_000)])
        got.extend(framer.feed(stream[at : at + size]))
        at += size
    assert got == messages
    assert framer.feed(stream) == messages  # and all at once
    big = sum(len(json.dumps(m)) for m in messages if "result" in m)
    assert sum(skipped) > big // 2  # most of the large messages went by in C-speed steps


def test_a_lone_backslash_at_a_step_end_escapes_the_next_byte() -> None:
    for run in range(1, 6):
        text = "a" * (SKIP_STEP - 20 - run) + "\\" * run + '"]}{['
        msg = {"id": 1, "result": [text, "tail"]}
        raw = json.dumps(msg).encode()
        for cut in range(SKIP_STEP - 30, SKIP_STEP + 30, 3):
            framer = MessageFramer(1 << 22)
            assert framer.feed(raw[:cut]) + framer.feed(raw[cut:]) == [msg]


def test_garbage_inside_a_large_message_is_still_a_framing_error() -> None:
    raw = b'{"id": 1, "result": [' + b'"x", ' * 20000 + b"tru]}"
    with pytest.raises(FramingError):
        MessageFramer(1 << 22).feed(raw)


def test_strings_without_escapes_that_run_across_steps() -> None:
    """The fast way through a step without backslashes: quotes alternate, so a step
    that begins inside a string must count the brackets between its quotes."""
    rng = random.Random(5)
    text = "".join(rng.choices("ab{[{[{[]} ", k=3 * SKIP_STEP))  # more openers than closers
    msg = {"id": 1, "result": [text, {"k": [text[:5000], []]}, text[::-1]]}
    raw = json.dumps(msg).encode()
    assert b"\\" not in raw
    for _ in range(20):
        framer = MessageFramer(1 << 22)
        cut = rng.randint(1, len(raw) - 1)
        assert framer.feed(raw[:cut]) + framer.feed(raw[cut:] + raw) == [msg, msg]


def test_strings_that_are_not_unicode_are_singled_out() -> None:
    framer = MessageFramer(1 << 20, check_text=True)
    stream = (
        rb'{"method":"echo","params":["\ud800"],"id":1}'  # escaped lone surrogate
        + b'{"method":"echo","params":[{"k\xed\xb0\x80":1}],"id":2}'  # raw, in a key
        + rb'{"method":"echo","params":["\ud83d\ude00"],"id":3}'  # a valid pair
        + rb'{"method":"echo","params":["\\ud800"],"id":4}'  # an escaped backslash
        + rb'{"method":"echo","params":[],"id":"\udfff"}'  # even the id
    )
    messages = framer.feed(stream)
    assert messages[0] == InvalidText(1, "\ud800")
    assert messages[1] == InvalidText(2, "k\udc00")
    assert messages[2]["params"] == ["\U0001f600"]
    assert messages[3]["params"] == ["\\ud800"]
    assert messages[4] == InvalidText(None, "\udfff")
    # A client's framer takes what it is given.
    assert MessageFramer(1 << 20).feed(stream)[0]["params"] == ["\ud800"]
    assert lone_surrogate({"a": [1, {"b": "ok"}], "c": None}) is None
