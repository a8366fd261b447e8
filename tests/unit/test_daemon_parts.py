"""Daemon pieces without a daemon: OpenFlow port numbering and the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovs_runtime.bridge.ofport_allocator import OFPP_LOCAL, allocate
from ovs_runtime.daemon.config import ConfigError, load_config


def test_ofport_allocation_is_stable_and_honours_requests() -> None:
    first = allocate(
        "br0", [("br0", None, None), ("a", None, None), ("b", 7, None), ("c", None, None)]
    )
    assert first == {"br0": OFPP_LOCAL, "b": 7, "a": 1, "c": 2}
    # An existing number is kept even when a lower one frees up.
    again = allocate("br0", [("br0", None, None), ("c", None, 2), ("d", None, None)])
    assert again == {"br0": OFPP_LOCAL, "c": 2, "d": 1}
    # A request beats a number someone else already holds.
    clash = allocate("br0", [("x", None, 3), ("y", 3, None)])
    assert clash["y"] == 3 and clash["x"] != 3


def test_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "ovs-runtimed.conf"
    assert load_config(str(tmp_path / "missing")).log_level == "info"
    conf.write_text("[daemon]\nlog_level = debug\nmax_message_bytes = 8192\n")
    assert load_config(str(conf)).max_message_bytes == 8192
    conf.write_text("[daemon]\nlog_level = debug\ncolour = blue\n")
    with pytest.raises(ConfigError, match=r"ovs-runtimed.conf:3: unknown key 'colour'"):
        load_config(str(conf))
    conf.write_text("[daemon]\nlog_level = loud\n")
    with pytest.raises(ConfigError, match=r":2: log_level 'loud'"):
        load_config(str(conf))
    conf.write_text("log_level = debug\n")
    with pytest.raises(ConfigError, match=r"conf:1: File contains no section headers"):
        load_config(str(conf))
