"""The fleet as Ansible sees it: hosts, groups and connection settings read from the same
inventory the playbooks use, through Ansible's own inventory and templating code (so
``group_vars``, ``host_vars`` and ``{{ inventory_dir }}`` mean what they mean there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class InventoryError(ValueError):
    pass


@dataclass(frozen=True)
class FleetHost:
    name: str
    address: str
    user: str
    port: int
    key_file: str | None
    groups: tuple[str, ...]


def host_variables(sources: list[str], name: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The named variables of one host, templated as a playbook would see them."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=sources)
    host = inventory.get_host(name)
    if host is None:
        raise InventoryError(f"host {name!r} is not in {', '.join(sources)}")
    variables = VariableManager(loader=loader, inventory=inventory).get_vars(host=host)
    templar = Templar(loader=loader, variables=variables)
    return {n: templar.template(variables[n]) for n in names if n in variables}


def load_hosts(sources: list[str], limit: str | None = None) -> list[FleetHost]:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=sources)
    variables = VariableManager(loader=loader, inventory=inventory)
    pattern = limit or "all"
    hosts = inventory.get_hosts(pattern)
    if not hosts:
        raise InventoryError(f"no hosts match {pattern!r} in {', '.join(sources)}")
    found = []
    for host in hosts:
        host_vars = variables.get_vars(host=host)
        templar = Templar(loader=loader, variables=host_vars)

        def var(name: str, default: Any = None, _vars: Any = host_vars, _t: Any = templar) -> Any:
            value = _vars.get(name, default)
            return _t.template(value) if isinstance(value, str) else value

        port = var("ansible_port", 22)
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise InventoryError(
                f"host {host.name}: ansible_port {port!r} is not a number"
            ) from None
        found.append(
            FleetHost(
                name=host.name,
                address=str(var("ansible_host", host.name)),
                user=str(var("ansible_user", "root")),
                port=port,
                key_file=var("ansible_ssh_private_key_file"),
                groups=tuple(sorted(g.name for g in host.get_groups() if g.name != "all")),
            )
        )
    return sorted(found, key=lambda h: h.name)
