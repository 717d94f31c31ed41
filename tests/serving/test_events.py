"""The event loop: time order, priorities, FIFO among equals, cancellation."""

from __future__ import annotations

import pytest

from llmsim.serving.events import EventLoop


def test_order_priority_fifo_and_cancel():
    loop = EventLoop()
    seen = []
    add = lambda t, p: seen.append((t, p))  # noqa: E731
    loop.schedule(2.0, 0, add, "late")
    loop.schedule(1.0, 1, add, "b")
    loop.schedule(1.0, 0, add, "a")
    loop.schedule(1.0, 1, add, "c")
    x = loop.schedule(1.5, 0, add, "cancelled")
    loop.cancel(x)
    loop.run()
    assert seen == [(1.0, "a"), (1.0, "b"), (1.0, "c"), (2.0, "late")]
    assert loop.now_s == 2.0 and loop.num_events == 4


def test_handlers_can_schedule_and_past_is_refused():
    loop = EventLoop()
    out = []

    def tick(t, n):
        out.append(t)
        if n:
            loop.schedule(t + 0.5, 0, tick, n - 1)

    loop.schedule(0.0, 0, tick, 3)
    loop.run(until_s=1.0)
    assert out == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError):
        loop.schedule(0.2, 0, tick, 0)
