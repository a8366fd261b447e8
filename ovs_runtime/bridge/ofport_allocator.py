"""OpenFlow port numbers, allocated the way Open vSwitch does.

The bridge's local port (the internal interface named like the bridge) is
``OFPP_LOCAL`` = 65534. Every other interface keeps the number it already has,
gets its ``ofport_request`` if that is free, or else the lowest free number from 1.
Numbers are stable across restarts because they are stored in ``Interface.ofport``.
"""

from __future__ import annotations

OFPP_LOCAL = 65534
OFPP_MAX = 65279


def allocate(
    bridge: str,
    interfaces: list[tuple[str, int | None, int | None]],
) -> dict[str, int]:
    """``interfaces`` is (name, ofport_request, current ofport); returns name -> ofport."""
    result: dict[str, int] = {}
    used: set[int] = set()
    if any(name == bridge for name, _, _ in interfaces):
        result[bridge] = OFPP_LOCAL
    # Requests win first, then numbers already held, then the rest, in name order.
    for name, request, _ in sorted(interfaces):
        if name != bridge and request is not None and request not in used:
            result[name] = request
            used.add(request)
    for name, _, current in sorted(interfaces):
        if name in result or current is None or not 1 <= current <= OFPP_MAX or current in used:
            continue
        result[name] = current
        used.add(current)
    next_free = 1
    for name, _, _ in sorted(interfaces):
        if name in result:
            continue
        while next_free in used:
            next_free += 1
        result[name] = next_free
        used.add(next_free)
    return result
