"""Unit tests run without root and create no devices: tunnel ports segment TCP in
Python here (the kernel segmenter has its own integration tests)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_kernel_segmenter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ovs_runtime.netdev.kernel_gso._shared", None)
    monkeypatch.setattr("ovs_runtime.netdev.kernel_gso._unavailable", True)
