"""Unit tests run without root and create no devices: tunnel ports segment TCP in
Python here (the kernel segmenter has its own integration tests)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.flow_collectors import collector_socket


@pytest.fixture(autouse=True)
def no_kernel_segmenter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ovs_runtime.netdev.kernel_gso._shared", None)
    monkeypatch.setattr("ovs_runtime.netdev.kernel_gso._unavailable", True)


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    """A flow collector on loopback, closed after the test."""
    sock = collector_socket(0.2)
    try:
        yield sock
    finally:
        sock.close()
