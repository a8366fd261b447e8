"""``ovsr``: the command line.

    ovsr [--db unix:PATH] [--timeout SECS] [--no-wait] [--format list|table|csv|html|json]
         [--data string|bare|json] [--no-headings] [--bare] [--pretty] [--oneline]
         [--dry-run] COMMAND [ARG...] [-- [OPTION...] COMMAND [ARG...]]...

Commands chained with ``--`` run as one atomic transaction, as with ovs-vsctl. Unless
``--no-wait`` is given, ``ovsr`` waits until the daemon reports the change live
(``Open_vSwitch.cur_cfg``). Every wait is bounded by ``--timeout``; a daemon that is down
or wedged gives a one-line error and a non-zero exit, never a hang.

``list`` and ``find`` print in ovs-vsctl's table styles (``--format``, ``--data``,
``--no-headings``, ``--bare``); ``--oneline`` puts each other command's output on one
line, as ovs-vsctl does. ``--format json`` is ovsr's own: the commands' results as JSON
(``list`` and ``find``: one object per row, keyed by column), for scripts.

Exit status: 0 success; 1 error; for ``apply``, 0 means no change and 2 means changed;
``br-exists`` exits 2 when the bridge does not exist.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ovs_runtime import __version__
from ovs_runtime.cli import apply as apply_cmd
from ovs_runtime.cli import (  # noqa: F401  (register)
    bridge_commands,
    manager_commands,
    port_mobility,
    table_commands,
    table_output,
)
from ovs_runtime.cli import show as show_cmd
from ovs_runtime.cli import value_syntax as vs
from ovs_runtime.cli.client import ClientError, OvsdbClient, default_target
from ovs_runtime.cli.command_registry import (
    COMMANDS,
    CommandContext,
    ExitStatus,
    NotYet,
    command,
)
from ovs_runtime.cli.flow_commands import (
    FLOW_COMMANDS,
    FLOW_OPTIONS,
    OFFLINE_COMMANDS,
    FlowCommandError,
    check_flows,
    run_flow_command,
)
from ovs_runtime.cli.inspect_commands import INSPECT_COMMANDS, run_inspect
from ovs_runtime.cli.model import Model, ModelError, table_name
from ovs_runtime.cli.table_output import DATA_FORMATS, FORMATS, TableStyle
from ovs_runtime.db.errors import OvsdbError
from ovs_runtime.db.schema import DbSchema, parse_schema
from ovs_runtime.ofproto.flow_match import FlowSyntaxError

DB_NAME = "Open_vSwitch"
TABLE_COMMANDS = {
    *("set", "get", "list", "find", "clear", "add", "remove", "create", "destroy"),
    "wait-until",
}
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 86400.0  # a day; larger values overflow the socket's timeout
MAX_RETRIES = 10
WAIT_UNTIL_POLL = 0.1  # seconds between looks for wait-until
EXIT_ERROR = 1


class UsageError(Exception):
    pass


@dataclass
class Invocation:
    name: str
    args: list[str]
    opts: dict[str, Any] = field(default_factory=dict)


@dataclass
class GlobalOptions:
    db: str = field(default_factory=default_target)
    timeout: float = DEFAULT_TIMEOUT
    wait: bool = True
    format: str = "list"  # list/find's table style, or "json"; other commands print text
    style: TableStyle = field(default_factory=TableStyle)
    oneline: bool = False  # each non-table command's output on one line, as ovs-vsctl
    dry_run: bool = False  # check everything, commit nothing, as ovs-vsctl --dry-run


@command("show", 0, 0, "show", writes=False)
def cmd_show(ctx: CommandContext, args: list[str]) -> None:
    ctx.out.extend(show_cmd.show_text(ctx.model))
    ctx.data.append(show_cmd.show_data(ctx.model))


GLOBAL_WITH_VALUE = {"--db", "--timeout", "-t", "--format", "-f", "--data", "-d"}
GLOBAL_FLAGS = ("--no-wait", "--bare", "--dry-run", "--no-headings", "--oneline", "--pretty")
COMMAND_OPTIONS = {
    "--may-exist",
    "--if-exists",
    "--columns",
    "--id",
    "--all",
    "--check",
    "--state",
    "--confirm-timeout",
}


SHORT_WITH_VALUE = ("-f", "-d", "-t")


def _split_option(token: str) -> tuple[str, str | None]:
    if token.startswith("--") and "=" in token:
        name, value = token.split("=", 1)
        return name, value
    if token[:2] in SHORT_WITH_VALUE and len(token) > 2:  # -ftable, as getopt reads it
        return token[:2], token[2:]
    return token, None


def parse_argv(argv: list[str]) -> tuple[GlobalOptions, list[Invocation]]:
    opts = GlobalOptions()
    segments: list[list[str]] = [[]]
    for token in argv:
        if token == "--":
            segments.append([])
        else:
            segments[-1].append(token)
    invocations = []
    for index, segment in enumerate(segments):
        inv_opts: dict[str, Any] = {}
        i = 0
        while i < len(segment) and segment[i].startswith("-") and segment[i] != "-":
            name, value = _split_option(segment[i])
            if name in GLOBAL_WITH_VALUE or name in GLOBAL_FLAGS:
                if index != 0:
                    raise UsageError(f"{name} is a global option; put it before the first command")
                if name in GLOBAL_FLAGS:
                    if value is not None:
                        raise UsageError(f"{name} takes no value")
                    _set_flag(opts, name)
                else:
                    if value is None:
                        i += 1
                        if i >= len(segment):
                            raise UsageError(f"{name} needs a value")
                        value = segment[i]
                    _set_global(opts, name, value)
            elif name in COMMAND_OPTIONS:
                _set_command_option(inv_opts, name, value)
            elif name == "--strict":  # ovs-ofctl takes it before the command
                inv_opts["strict"] = True
            elif name in ("-h", "--help"):
                raise UsageError("help")
            elif name == "--version":
                raise UsageError("version")
            else:
                raise UsageError(f"unknown option {segment[i]!r}")
            i += 1
        rest = segment[i:]
        if not rest and index == 0 and len(segments) > 1:
            continue  # "ovsr --db X -- cmd ...": the first segment holds only options
        if not rest:
            if len(segments) == 1 and index == 0:
                raise UsageError("missing command; try 'ovsr --help'")
            raise UsageError("empty command between '--' separators")
        if rest[0] in FLOW_COMMANDS:
            low, high, usage_text = FLOW_COMMANDS[rest[0]]
            args = []
            for token in rest[1:]:
                if token in FLOW_OPTIONS.get(rest[0], ()):
                    inv_opts[token[2:]] = True
                elif token.startswith("--"):
                    raise UsageError(
                        f"'{rest[0]}' does not accept {token}; usage: ovsr {usage_text}"
                    )
                else:
                    args.append(token)
            for key in inv_opts:
                if f"--{key}" not in FLOW_OPTIONS.get(rest[0], ()):
                    raise UsageError(f"'{rest[0]}' does not accept --{key}")
            if not low <= len(args) <= high or len(segments) > 1:
                raise UsageError(f"usage: ovsr {usage_text} (it cannot be chained with --)")
            invocations.append(Invocation(rest[0], args, inv_opts))
            continue
        if rest[0] in INSPECT_COMMANDS:
            low, high, usage_text = INSPECT_COMMANDS[rest[0]]
            if not low <= len(rest) - 1 <= high or len(segments) > 1:
                raise UsageError(f"usage: ovsr {usage_text} (it cannot be chained with --)")
            invocations.append(Invocation(rest[0], rest[1:], inv_opts))
            continue
        name, args = rest[0], []
        for token in rest[1:]:  # command options may also follow the command name
            opt_name, value = _split_option(token)
            if opt_name in COMMAND_OPTIONS:
                _set_command_option(inv_opts, opt_name, value)
            else:
                args.append(token)
        cmd = COMMANDS.get(name)
        if cmd is None:
            raise UsageError(f"unknown command {name!r}; try 'ovsr --help'")
        if not cmd.min_args <= len(args) <= cmd.max_args:
            raise UsageError(
                f"'{name}' takes {_arity(cmd.min_args, cmd.max_args)}; usage: ovsr {cmd.usage}"
            )
        for key in inv_opts:
            if key not in cmd.options:
                raise UsageError(f"'{name}' does not accept --{key}")
        invocations.append(Invocation(name, args, inv_opts))
    return opts, invocations


def _set_flag(opts: GlobalOptions, name: str) -> None:
    if name == "--no-wait":
        opts.wait = False
    elif name == "--dry-run":
        opts.dry_run = True
    elif name == "--bare":  # as ovs-vsctl: --format=list --data=bare --no-headings
        if opts.format != "json":  # (ovsr's JSON stays JSON, whatever the option order)
            opts.format = "list"
        opts.style.format = "list"
        opts.style.data = "bare"
        opts.style.headings = False
    elif name == "--no-headings":
        opts.style.headings = False
    elif name == "--oneline":
        opts.oneline = True
    # --pretty: ovsr's JSON is always indented


def _set_command_option(inv_opts: dict[str, Any], name: str, value: str | None) -> None:
    key = name[2:]
    if key == "columns":
        if not value:
            raise UsageError("--columns needs a value: --columns=COL[,COL]...")
        inv_opts[key] = value.split(",")
    elif key in ("id", "state", "confirm-timeout"):
        if not value:
            raise UsageError(f"{name} needs a value: {name}=VALUE")
        if key == "id" and (not value.startswith("@") or len(value) < 2):
            raise UsageError(f"--id={value}: expected --id=@NAME")
        inv_opts[key] = value
    else:
        if value is not None:
            raise UsageError(f"{name} takes no value")
        inv_opts[key] = True


def _arity(low: int, high: int) -> str:
    if low == high:
        return f"{low} argument(s)"
    if high >= 1000:
        return f"at least {low} argument(s)"
    return f"{low} to {high} arguments"


def _set_global(opts: GlobalOptions, name: str, value: str) -> None:
    if name == "--db":
        if not value.startswith("unix:"):
            raise UsageError(f"--db {value!r}: expected unix:PATH")
        opts.db = value
    elif name in ("--timeout", "-t"):
        try:
            opts.timeout = float(value)
        except ValueError:
            raise UsageError(f"--timeout {value!r}: expected a number of seconds") from None
        if not 0 < opts.timeout <= MAX_TIMEOUT:  # (also false for nan)
            raise UsageError(
                f"--timeout {value!r}: expected a number of seconds greater than 0 and at "
                f"most {MAX_TIMEOUT:.0f} (ovsr never waits forever)"
            )
    elif name in ("--data", "-d"):
        if value not in DATA_FORMATS:
            raise UsageError(f"--data {value!r}: expected one of {', '.join(DATA_FORMATS)}")
        opts.style.data = value
    else:
        if value not in (*FORMATS, "json"):
            raise UsageError(f"--format {value!r}: expected one of {', '.join(FORMATS)} or json")
        opts.format = value
        if value != "json":
            opts.style.format = value


# -- running ----------------------------------------------------------------------------


# A bridge's flow rules can be 100,000 rows (and its flow_rules column as many UUIDs):
# the commands that do not look at them do not download them (4.4 s for ``list-br``).
RULES_TABLE, RULES_COLUMN = "Flow_Rule", "flow_rules"


def _snapshot(
    client: OvsdbClient, schema: DbSchema, with_rules: bool = True
) -> dict[str, list[dict[str, Any]]]:
    tables = sorted(t for t in schema.tables if with_rules or t != RULES_TABLE)
    ops: list[dict[str, Any]] = []
    for table in tables:
        op: dict[str, Any] = {"op": "select", "table": table, "where": []}
        if not with_rules and table == "Bridge":
            op["columns"] = [
                "_uuid",
                *(c for c in schema.tables[table].columns if c != RULES_COLUMN),
            ]
        ops.append(op)
    results = client.call("transact", [DB_NAME, *ops])
    return {t: r["rows"] for t, r in zip(tables, results, strict=False)}


def _needs_flow_rules(schema: DbSchema, invocations: list[Invocation]) -> bool:
    """Whether any command reads or writes flow-rule rows or a bridge's flow_rules."""
    for inv in invocations:
        if inv.name in ("port-export", "port-import"):
            return True
        if inv.name not in TABLE_COMMANDS or not inv.args:
            continue
        try:
            table = table_name(schema, inv.args[0])
        except ModelError:
            return True  # (the command itself will say what is wrong)
        if table == RULES_TABLE:
            return True
        if table == "Bridge":
            if any(RULES_COLUMN in arg for arg in inv.args[1:]):
                return True
            if inv.name in ("list", "find") and RULES_COLUMN in inv.opts.get(
                "columns", [RULES_COLUMN]
            ):
                return True
    return False


def _check_transaction(client: OvsdbClient, ops: list[Any]) -> None:
    """``--check``: have the daemon run the transaction up to its commit checks (a tunnel
    without remote_ip, a mirror without output...) and raise what a real run would."""
    results = client.call("ovsr/check-transaction", [DB_NAME, *ops])
    error = _first_error(results)
    if error is not None:
        raise OvsdbError(error["error"], error.get("details", ""))


def _first_error(results: list[Any]) -> dict[str, Any] | None:
    for result in results:
        if isinstance(result, dict) and "error" in result:
            return result
    return None


@dataclass
class RunResult:
    contexts: list[CommandContext]
    committed: bool
    exit_code: int = 0


def run_commands(
    client: OvsdbClient, opts: GlobalOptions, invocations: list[Invocation]
) -> RunResult:
    schema = parse_schema(client.call("get_schema", [DB_NAME]))
    with_rules = _needs_flow_rules(schema, invocations)
    attempt = 0
    while attempt < MAX_RETRIES:
        attempt += 1
        snapshot = _snapshot(client, schema, with_rules)
        model = Model(schema, snapshot)
        contexts = []
        try:
            for inv in invocations:
                ctx = CommandContext(model, inv.opts)
                args = inv.args
                if inv.name in TABLE_COMMANDS:
                    args = [model.table_name(args[0]), *args[1:]]
                COMMANDS[inv.name].func(ctx, args)
                contexts.append(ctx)
        except ExitStatus as status:
            # As ovs-vsctl: the answer ends the run; nothing is committed or printed.
            return RunResult([], False, status.code)
        except NotYet as waiting:
            # wait-until: look again shortly, as long as --timeout allows.
            attempt -= 1
            if client.deadline - time.monotonic() <= WAIT_UNTIL_POLL:
                raise ClientError(
                    f"timed out after {client.timeout:g} s in wait-until {waiting} "
                    "(raise --timeout to wait longer)"
                ) from None
            time.sleep(WAIT_UNTIL_POLL)
            continue
        dry_run = opts.dry_run or any(inv.opts.get("check") for inv in invocations)
        ops = model.operations()
        if dry_run and model.changed():
            _check_transaction(client, ops)  # the daemon's own checks, committing nothing
        if dry_run or not model.changed():
            return RunResult(contexts, False)
        if opts.wait:
            root = model.root()
            ops.append(
                {
                    "op": "mutate",
                    "table": "Open_vSwitch",
                    "where": [["_uuid", "==", list(model.ref("Open_vSwitch", root))]],
                    "mutations": [["next_cfg", "+=", 1]],
                }
            )
            ops.append(
                {
                    "op": "select",
                    "table": "Open_vSwitch",
                    "where": [["_uuid", "==", list(model.ref("Open_vSwitch", root))]],
                    "columns": ["next_cfg"],
                }
            )
        token = _arm_rollback(client, invocations, snapshot)
        ops.append(
            {
                "op": "comment",
                "comment": "ovsr: "
                + " -- ".join(" ".join([inv.name, *inv.args]) for inv in invocations),
            }
        )
        results = client.call("transact", [DB_NAME, *ops])
        error = _first_error(results)
        if error is not None and token is not None:
            client.call("ovsr/confirm", [token])  # nothing changed: nothing to roll back
        if error is not None:
            failed_op = ops[results.index(error)] if results.index(error) < len(ops) else None
            if error.get("error") == "timed out" and failed_op and failed_op["op"] == "wait":
                continue  # someone else changed what we read: start again on fresh data
            raise OvsdbError(error["error"], error.get("details", ""))
        _resolve_created(contexts, model, ops, results)
        if token is not None:
            for ctx in contexts:
                ctx.out.append(
                    f"pending confirmation: run 'ovsr confirm {token}' within "
                    f"{_confirm_timeout(invocations):g} s, or the change is rolled back"
                )
                for data in ctx.data:
                    if isinstance(data, dict):
                        data["confirm_token"] = token
        if opts.wait:
            target = results[-2]["rows"][0]["next_cfg"]
            wait_for_cur_cfg(client, target)
        return RunResult(contexts, True)
    raise ClientError(f"gave up after {MAX_RETRIES} attempts: the database kept changing under us")


def _confirm_timeout(invocations: list[Invocation]) -> float | None:
    for inv in invocations:
        value = inv.opts.get("confirm-timeout")
        if value is not None:
            try:
                seconds = float(value)
            except ValueError:
                raise UsageError(f"--confirm-timeout={value}: expected seconds") from None
            if not 0 < seconds <= 3600:
                raise UsageError("--confirm-timeout must be between 0 and 3600 seconds")
            return seconds
    return None


def _arm_rollback(
    client: OvsdbClient, invocations: list[Invocation], snapshot: dict[str, list[dict[str, Any]]]
) -> str | None:
    """Before a --confirm-timeout change: leave the daemon what to restore."""
    seconds = _confirm_timeout(invocations)
    if seconds is None:
        return None
    import uuid

    from ovs_runtime.bridge.confirm_rollback import RESTORED_TABLES  # (only here: asyncio)

    token = str(uuid.uuid4())
    keep = {t: snapshot[t] for t in ("Open_vSwitch", *RESTORED_TABLES) if t in snapshot}
    client.call("ovsr/arm-rollback", [token, seconds, keep])
    return token


def _resolve_created(
    contexts: list[CommandContext], model: Model, ops: list[Any], results: list[Any]
) -> None:
    named = {
        op["uuid-name"]: results[i]["uuid"][1] for i, op in enumerate(ops) if op["op"] == "insert"
    }
    for ctx in contexts:
        ctx.out = [named.get(line[1:], line) if line.startswith("@") else line for line in ctx.out]
        ctx.data = [named.get(d, d) if isinstance(d, str) else d for d in ctx.data]


def wait_for_cur_cfg(client: OvsdbClient, target: int) -> None:
    """Block (within the client's deadline) until the daemon has applied ``target``."""
    initial = client.call(
        "monitor", [DB_NAME, "cur_cfg", {"Open_vSwitch": {"columns": ["cur_cfg"]}}]
    )
    if _cur_cfg(initial) >= target:
        return
    while True:
        message = client.receive()
        if isinstance(message, dict) and message.get("method") == "update":
            if _cur_cfg(message["params"][1]) >= target:
                return


def _cur_cfg(updates: dict[str, Any]) -> int:
    best = -1
    for row in updates.get("Open_vSwitch", {}).values():
        new = row.get("new")
        if new and "cur_cfg" in new:
            best = max(best, int(new["cur_cfg"]))
    return best


def _finish(client: OvsdbClient, invocations: list[Invocation], result: RunResult) -> None:
    """Second halves that need the running datapath, after the transaction."""
    if not result.contexts:  # ended early by an exit status (br-exists)
        return
    for inv, ctx in zip(invocations, result.contexts, strict=True):
        if inv.name == "port-export":
            port_mobility.add_learned_macs(client, ctx)
        elif inv.name == "port-import" and result.committed:
            port_mobility.announce(client, ctx)


def render(opts: GlobalOptions, result: RunResult) -> None:
    if opts.format == "json":
        data = [
            ctx.data[0] if len(ctx.data) == 1 else ctx.data for ctx in result.contexts if ctx.data
        ]
        if data:
            print(json.dumps(data[0] if len(data) == 1 else data, indent=2, sort_keys=True))
        return
    tables = 0
    for ctx in result.contexts:
        if ctx.table is not None:
            if tables and opts.style.format != "html":
                print()  # as ovs-vsctl: a blank line before every table but the first
            tables += 1
            for line in table_output.render(ctx.table, opts.style):
                print(line)
        elif opts.oneline:
            print(table_output.one_line(ctx.out))
        else:
            for line in ctx.out:
                print(line)


def usage() -> str:
    lines = [__doc__.strip(), "", "Commands:"]
    usages = [COMMANDS[name].usage for name in COMMANDS]
    usages += [usage for _, _, usage in INSPECT_COMMANDS.values()]
    usages += [usage for _, _, usage in FLOW_COMMANDS.values()]
    lines += [f"  {usage}" for usage in sorted(usages)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, invocations = parse_argv(argv)
    except UsageError as exc:
        if str(exc) == "help":
            print(usage())
            return 0
        if str(exc) == "version":
            print(f"ovsr {__version__}")
            return 0
        print(f"ovsr: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        for inv in invocations:
            if inv.name == "apply":
                apply_cmd.load_request(inv)  # validate the file before touching the daemon
            if inv.name == "port-import":
                port_mobility.read_document(inv.args[0])
        _confirm_timeout(invocations)
        if invocations[0].name in OFFLINE_COMMANDS:
            data, lines = check_flows(invocations[0].args)
            print(json.dumps(data, indent=2) if opts.format == "json" else "\n".join(lines))
            return 0
        client = OvsdbClient(opts.db, opts.timeout)
        try:
            if invocations[0].name in FLOW_COMMANDS:
                inv = invocations[0]
                if opts.dry_run and inv.name not in ("dump-flows", "trace"):
                    raise UsageError(
                        f"--dry-run does not apply to {inv.name}; "
                        "use replace-flows --check to see what would change"
                    )
                data, lines = run_flow_command(client, inv.name, inv.args, inv.opts, opts.wait)
                if opts.format == "json":
                    print(json.dumps(data, indent=2, sort_keys=True))
                elif opts.oneline:
                    print(table_output.one_line(lines))
                elif lines:
                    print("\n".join(lines))
                return 0
            if invocations[0].name in INSPECT_COMMANDS:
                data, lines = run_inspect(client, invocations[0].name, invocations[0].args)
                if opts.format == "json":
                    print(json.dumps(data, indent=2, sort_keys=True))
                elif opts.oneline:
                    print(table_output.one_line(lines))
                else:
                    print("\n".join(lines))
                return 0
            result = run_commands(client, opts, invocations)
            _finish(client, invocations, result)
        finally:
            client.close()
    except (
        ClientError,
        ModelError,
        vs.ValueError_,
        apply_cmd.ApplyError,
        UsageError,
        port_mobility.PortDocumentError,
        FlowCommandError,
        FlowSyntaxError,
    ) as exc:
        print(f"ovsr: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OvsdbError as exc:
        print(f"ovsr: transaction failed: {exc.tag}: {exc.details}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    render(opts, result)
    if any(inv.name == "apply" for inv in invocations):
        return apply_cmd.exit_code(result.contexts)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
