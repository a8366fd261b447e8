"""``python -m lab up [--hypervisors N] | down | status``: the lab fleet (see lab.fleet)."""

from __future__ import annotations

import argparse
import sys

from lab import fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=fleet.__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="boot and wire the lab fleet (idempotent)")
    up.add_argument(
        "--hypervisors",
        type=int,
        default=fleet.DEFAULT_HYPERVISORS,
        help=f"how many hypervisors (1 to {fleet.MAX_HYPERVISORS}; default 3)",
    )
    sub.add_parser("down", help="stop every lab host and remove what up made (safe twice)")
    sub.add_parser("status", help="the lab hosts and whether they answer on SSH")
    args = parser.parse_args(argv)
    if args.action == "up":
        try:
            fleet.up(args.hypervisors)
        except (ValueError, fleet.LabError) as exc:
            print(f"lab: {exc}", file=sys.stderr)
            return 1
    elif args.action == "down":
        fleet.down()
    else:
        rows = fleet.status()
        if not rows:
            print("lab: not up")
            return 1
        for row in rows:
            print(
                f"{row['host']:<5} {row['role']:<12} {row['mgmt']:<15} "
                f"{'running' if row['running'] else 'stopped':<8} "
                f"ssh {'ok' if row['ssh'] else 'no answer'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
