"""A minimal discrete-event loop: a heap of ``(time_s, priority, seq, handler, payload)``.

It knows nothing about LLMs (DESIGN principle 6). Events at the same time run in ``priority``
order (lower first), then in the order they were scheduled (``seq``), so a run is bit-identical
for the same inputs. Cancellation is lazy: a cancelled event stays in the heap and is skipped
when popped.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

Handler = Callable[[float, Any], None]
_heappush = heapq.heappush


class EventLoop:
    """Schedule callbacks at simulated times and run them in order."""

    __slots__ = ("_heap", "_seq", "_cancelled", "now_s", "num_events")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Handler, Any]] = []
        self._seq = 0
        self._cancelled: set[int] = set()
        self.now_s = 0.0
        self.num_events = 0

    def schedule(self, time_s: float, priority: int, handler: Handler, payload: Any = None) -> int:
        """Run ``handler(time_s, payload)`` at ``time_s``; returns an id for :meth:`cancel`."""
        if time_s < self.now_s:
            raise ValueError(f"cannot schedule in the past ({time_s} < {self.now_s})")
        seq = self._seq + 1
        self._seq = seq
        _heappush(self._heap, (time_s, priority, seq, handler, payload))
        return seq

    def cancel(self, event_id: int) -> None:
        """Skip the event with this id when its time comes (no-op if it already ran)."""
        self._cancelled.add(event_id)

    def peek_time_s(self) -> float | None:
        """Time of the next pending event (cancelled ones included), or None."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)

    def has_live_events(self) -> bool:
        """Whether any pending event is not cancelled (O(pending events))."""
        cancelled = self._cancelled
        return any(e[2] not in cancelled for e in self._heap)

    def run(self, until_s: float = math.inf) -> None:
        """Pop and run events in order until the heap is empty or the next is after ``until_s``."""
        heap, cancelled, pop = self._heap, self._cancelled, heapq.heappop
        bounded = until_s != math.inf
        while heap:
            if bounded and heap[0][0] > until_s:
                break
            time_s, _prio, seq, handler, payload = pop(heap)
            if cancelled and seq in cancelled:
                cancelled.discard(seq)
                continue
            self.now_s = time_s
            self.num_events += 1
            handler(time_s, payload)
