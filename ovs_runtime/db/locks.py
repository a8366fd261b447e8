"""RFC 7047 section 4.1.8-4.1.10: named locks (``lock``, ``steal``, ``unlock``).

A lock has one owner and a queue of waiters. The server tells a waiter with a
``locked`` notification when it gets the lock, and a robbed owner with ``stolen``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Notify = Callable[[Any, str, list[Any]], None]  # (session, method, params)


class LockTable:
    def __init__(self, notify: Notify) -> None:
        self.notify = notify
        self.owners: dict[str, Any] = {}
        self.waiters: dict[str, list[Any]] = {}

    def held_by(self, session: Any) -> frozenset[str]:
        return frozenset(name for name, owner in self.owners.items() if owner is session)

    def lock(self, session: Any, name: str) -> bool:
        owner = self.owners.get(name)
        if owner is None:
            self.owners[name] = session
            return True
        if owner is not session:
            queue = self.waiters.setdefault(name, [])
            if session not in queue:
                queue.append(session)
            return False
        return True

    def steal(self, session: Any, name: str) -> None:
        owner = self.owners.get(name)
        if owner is not None and owner is not session:
            self.notify(owner, "stolen", [name])
            self.waiters.setdefault(name, []).append(owner)
        self.owners[name] = session

    def unlock(self, session: Any, name: str) -> None:
        queue = self.waiters.get(name, [])
        if session in queue:
            queue.remove(session)
        if self.owners.get(name) is session:
            del self.owners[name]
            if queue:
                nxt = queue.pop(0)
                self.owners[name] = nxt
                self.notify(nxt, "locked", [name])

    def release_all(self, session: Any) -> None:
        names = set(self.owners) | set(self.waiters)
        for name in names:
            self.unlock(session, name)
