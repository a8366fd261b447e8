"""The daemon's heap keeper: it pauses the cycle collector for a large request and keeps
a grown database out of the collector's passes (the daemon test shows it wired in)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ovs_runtime.daemon.heap import FREEZE_GROWTH, HeapKeeper


@pytest.fixture
def collector() -> Iterator[None]:
    assert gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()


def test_pause_lasts_until_settle(collector: None) -> None:
    keeper = HeapKeeper(lambda: 0)
    keeper.pause()
    keeper.pause()  # repeated while the request arrives: still one pause
    assert not gc.isenabled()
    keeper.settle()
    assert gc.isenabled()
    keeper.settle()
    assert gc.isenabled()


def test_growth_freezes_and_shrinking_lowers_the_mark(collector: None) -> None:
    rows = [FREEZE_GROWTH - 1]
    keeper = HeapKeeper(lambda: rows[0])
    keeper.settle()
    assert gc.get_freeze_count() == 0, "less growth than the threshold: nothing frozen"
    rows[0] = FREEZE_GROWTH
    kept = [[n] for n in range(100)]  # tracked objects alive now
    keeper.settle()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept) and keeper.frozen_rows == FREEZE_GROWTH
    rows[0] = 10
    keeper.settle()
    assert keeper.frozen_rows == 10 and gc.get_freeze_count() == frozen
    rows[0] = 10 + FREEZE_GROWTH
    keeper.settle()
    assert keeper.frozen_rows == 10 + FREEZE_GROWTH
