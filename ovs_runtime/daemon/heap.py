"""The daemon's long-lived objects and Python's cycle collector.

A bridge with 100,000 flow rules keeps millions of Python objects alive: database rows,
parsed rules, classifier entries. A full pass of the cycle collector walks every one of
them, about a second at that size, and holds the interpreter lock throughout, so the
datapath thread forwards nothing meanwhile. Loading the rules also set off a dozen such
passes, each longer than the last.

None of these objects is part of a reference cycle (measured: deleting 100,000 rules
leaves no cyclic garbage), so reference counting frees them when they go and the cycle
collector has nothing to find among them. So:

- while a large request arrives and is applied, the collector is paused
  (``pause``; the OVSDB server calls it for requests over a megabyte);
- afterwards (``settle``, after each commit's reconciliation and every second), the
  collector runs again, and if the database grew by ``FREEZE_GROWTH`` rows or more since
  the last time, every object now alive moves to the collector's permanent generation
  (``gc.freeze``), out of its future passes.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

FREEZE_GROWTH = 10_000  # rows


class HeapKeeper:
    def __init__(self, row_count: Callable[[], int]) -> None:
        self.row_count = row_count  # rows in the database now
        self.frozen_rows = 0  # the row count at the last freeze (or lower, after deletions)
        self.paused = False

    def pause(self) -> None:
        """A large request is on its way: no collector passes until ``settle``."""
        if not self.paused and gc.isenabled():
            gc.disable()
            self.paused = True
            log.debug("large request: cycle collector paused")

    def settle(self) -> None:
        # Freeze before the collector resumes: its first pass would otherwise walk
        # everything the paused request created.
        rows = self.row_count()
        if rows - self.frozen_rows >= FREEZE_GROWTH:
            gc.freeze()
            self.frozen_rows = rows
            log.debug("%d rows: %d objects out of collector passes", rows, gc.get_freeze_count())
        elif rows < self.frozen_rows:
            self.frozen_rows = rows  # refcounting freed them; grow from here
        if self.paused:
            gc.enable()
            self.paused = False
