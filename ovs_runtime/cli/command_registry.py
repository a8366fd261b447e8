"""The command registry of ``ovsr``'s ovs-vsctl-style commands.

Every command is a function ``(ctx, args)`` registered with ``@command``; ``ctx.opts``
holds its own options (``--may-exist``, ``--if-exists``, ``--columns=``, ``--id=@name``).
Output goes to ``ctx.out`` (text lines) and ``ctx.data`` (the same for ``--format json``);
``list`` and ``find`` leave ``ctx.table``, which ``table_output`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime.cli.model import Model
from ovs_runtime.cli.table_output import Table


@dataclass
class CommandContext:
    model: Model
    opts: dict[str, Any] = field(default_factory=dict)
    out: list[str] = field(default_factory=list)
    data: list[Any] = field(default_factory=list)
    table: Table | None = None  # list and find: rows, printed in the chosen table style

    def emit(self, text: str, data: Any) -> None:
        self.out.append(text)
        self.data.append(data)


@dataclass(frozen=True)
class Command:
    func: Callable[[CommandContext, list[str]], None]
    min_args: int
    max_args: int
    usage: str
    options: frozenset[str] = frozenset()
    writes: bool = True


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    min_args: int,
    max_args: int,
    usage: str,
    options: tuple[str, ...] = (),
    writes: bool = True,
) -> Callable[[Callable[[CommandContext, list[str]], None]], Any]:
    def register(func: Callable[[CommandContext, list[str]], None]) -> Any:
        COMMANDS[name] = Command(func, min_args, max_args, usage, frozenset(options), writes)
        return func

    return register


class ExitStatus(Exception):
    """A command's answer is its exit status (``br-exists``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class NotYet(Exception):
    """``wait-until``: the record or its condition is not there yet; the whole command
    line runs again on fresh data, until ``--timeout``."""
