"""The daemon's conffile, ``/etc/ovs-runtime/ovs-runtimed.conf`` (INI syntax).

Options on the command line win over the file. A file that does not parse, or holds an
unknown key or a bad value, is an error naming the file, line and what is accepted: the
daemon refuses to start rather than run on half a config, and a SIGHUP reload keeps the
previous settings.
"""

from __future__ import annotations

import configparser
import logging
from dataclasses import dataclass

DEFAULT_CONFIG = "/etc/ovs-runtime/ovs-runtimed.conf"
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class DaemonConfig:
    log_level: str = "info"
    socket_group: str = "ovs-runtime"
    max_message_bytes: int = 64 * 1024 * 1024


def _line_of(path: str, key: str) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.split("=", 1)[0].strip() == key:
                    return number
    except OSError:
        pass
    return 0


def load_config(path: str | None) -> DaemonConfig:
    if path is None:
        return DaemonConfig()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f, source=path)
    except FileNotFoundError:
        return DaemonConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        first = str(getattr(exc, "message", exc)).split("\n")[0].split(" file:")[0]
        where = f"{path}:{line}" if line else path
        raise ConfigError(f"{where}: {first}; expected INI syntax with a [daemon] section") from exc
    for section in parser.sections():
        if section != "daemon":
            raise ConfigError(f"{path}: unknown section [{section}]; accepted: [daemon]")
    values = dict(parser["daemon"]) if parser.has_section("daemon") else {}
    known = {"log_level", "socket_group", "max_message_bytes"}
    for key in values:
        if key not in known:
            raise ConfigError(
                f"{path}:{_line_of(path, key)}: unknown key {key!r}; accepted: "
                + ", ".join(sorted(known))
            )
    config = DaemonConfig()
    level = values.get("log_level", config.log_level).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(
            f"{path}:{_line_of(path, 'log_level')}: log_level {level!r} is not one of "
            + ", ".join(LOG_LEVELS)
        )
    raw_max = values.get("max_message_bytes", str(config.max_message_bytes))
    try:
        max_bytes = int(raw_max)
        if max_bytes < 4096:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{path}:{_line_of(path, 'max_message_bytes')}: max_message_bytes {raw_max!r} "
            "must be an integer of at least 4096"
        ) from None
    return DaemonConfig(level, values.get("socket_group", config.socket_group), max_bytes)


def apply_log_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
