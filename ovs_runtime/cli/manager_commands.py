"""ovs-vsctl's manager commands: ``set-manager``, ``get-manager`` and ``del-manager``,
on ``Open_vSwitch.manager_options`` (the daemon listens on each target; see
``daemon/managers.py``)."""

from __future__ import annotations

from ovs_runtime.cli.command_registry import CommandContext, command


def _clear_managers(ctx: CommandContext) -> str:
    m = ctx.model
    root = m.root()
    for ref in m.rows["Open_vSwitch"][root]["manager_options"]:
        m.delete("Manager", m.key_of(ref))
    m.set("Open_vSwitch", root, "manager_options", [])
    return root


@command("set-manager", 1, 1000, "set-manager TARGET...")
def cmd_set_manager(ctx: CommandContext, args: list[str]) -> None:
    """Replace the managers with these targets (ptcp:PORT[:IP] or punix:PATH)."""
    m = ctx.model
    root = _clear_managers(ctx)
    keys = [m.insert("Manager", {"target": target}) for target in dict.fromkeys(args)]
    m.set("Open_vSwitch", root, "manager_options", [m.ref("Manager", k) for k in keys])


@command("get-manager", 0, 0, "get-manager", writes=False)
def cmd_get_manager(ctx: CommandContext, args: list[str]) -> None:
    m = ctx.model
    root = m.lookup("Open_vSwitch", ".", must_exist=False)
    refs = m.rows["Open_vSwitch"][root]["manager_options"] if root is not None else []
    for target in sorted(m.rows["Manager"][m.key_of(ref)]["target"] for ref in refs):
        ctx.emit(target, target)


@command("del-manager", 0, 0, "del-manager")
def cmd_del_manager(ctx: CommandContext, args: list[str]) -> None:
    _clear_managers(ctx)
