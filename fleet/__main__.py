"""ovsr-fleet -i INVENTORY [--limit PATTERN] status | collect DIR | migrate PORT --from HOST
--to HOST [--bridge BR] | rolling-restart [--timeout S]"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from fleet.inventory import InventoryError, load_hosts
from fleet.operations import (
    FleetError,
    collect,
    fleet_status,
    migrate,
    rolling_restart,
    status_table,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ovsr-fleet", description=__doc__)
    parser.add_argument(
        "-i", "--inventory", action="append", required=True, help="Ansible inventory (repeatable)"
    )
    parser.add_argument("-l", "--limit", help="host pattern, as ansible --limit (default: all)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("status", help="service, version, bridges, tunnels up/total, fdb size per host")
    pull = sub.add_parser("collect", help="pull state dumps and logs into DIR/HOST/")
    pull.add_argument("folder", type=Path)
    move = sub.add_parser("migrate", help="move a VM port's network state between hosts")
    move.add_argument("port")
    move.add_argument("--from", dest="source", required=True)
    move.add_argument("--to", dest="target", required=True)
    move.add_argument("--bridge", help="bridge on the target (default: the one it came from)")
    restart = sub.add_parser(
        "rolling-restart", help="restart hosts one by one, stop when one is unhealthy"
    )
    restart.add_argument(
        "--timeout", type=float, default=30, help="seconds for a host to be healthy again"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        hosts = load_hosts(args.inventory, args.limit)
        if args.action == "status":
            rows = fleet_status(hosts)
            if args.format == "json":
                print(json.dumps([asdict(r) for r in rows], indent=2))
            else:
                print("\n".join(status_table(rows)))
            return 1 if any(r.error or r.service != "active" for r in rows) else 0
        if args.action == "collect":
            problems = collect(hosts, args.folder)
            for problem in problems:
                print(f"ovsr-fleet: {problem}", file=sys.stderr)
            print(f"collected {len(hosts)} host(s) into {args.folder}")
            return 1 if problems else 0
        if args.action == "migrate":
            by_name = {h.name: h for h in load_hosts(args.inventory)}
            for name in (args.source, args.target):
                if name not in by_name:
                    raise InventoryError(f"host {name!r} is not in the inventory")
            summary = migrate(by_name[args.source], by_name[args.target], args.port, args.bridge)
            if args.format == "json":
                print(json.dumps(summary, indent=2))
            else:
                print(
                    f"moved port {args.port} from {args.source} to {args.target} "
                    f"(port number {summary.get('old_ofport')} -> {summary.get('ofport')}, "
                    f"{summary.get('announced', 0)} MAC address(es) announced)"
                )
            return 0
        rolling_restart(hosts, args.timeout)
        return 0
    except (InventoryError, FleetError) as exc:
        print(f"ovsr-fleet: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
