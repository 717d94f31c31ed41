"""KV blocks a decode run needs, from the block-boundary phase histogram (pure functions).

A decoder that joins the decoding set at decode tick ``j`` with ``c`` tokens cached writes
token ``c + s - j`` at decode step ``s``, so it starts a new block of ``bs`` tokens at step
``s`` iff ``s = j + 1 - c (mod bs)``: its *phase*. The replica keeps the histogram ``res`` of
its live decoders' phases (``res[p]``: decoders starting a block at ticks ``= p (mod bs)``),
so the blocks any run of decode steps needs, and the longest run that fits the free blocks,
cost O(block_size) however many requests decode.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate


def block_crossings(res: list[int], bs: int, lo: int, hi: int, total: int) -> int:
    """Blocks needed over decode ticks ``lo..hi`` by decoders whose block-boundary phases
    have the histogram ``res`` (``total = sum(res)``): at tick ``s``, ``res[s % bs]`` of
    them start a block, so every ``bs`` consecutive ticks need ``total`` blocks."""
    n = hi - lo + 1
    if n <= 0 or not total:
        return 0
    full, rem = divmod(n, bs)
    s = lo % bs
    e = s + rem
    part = sum(res[s:e]) if e <= bs else sum(res[s:]) + sum(res[:e - bs])
    return full * total + part


def steps_that_fit(res: list[int], bs: int, lo: int, avail: int, cap: int, total: int) -> int:
    """Most decode steps from tick ``lo`` (at most ``cap``) whose new blocks fit ``avail``
    (``res`` and ``total`` as for :func:`block_crossings`)."""
    if cap <= 0:
        return 0
    if total == 0:
        return cap
    full = avail // total
    steps = full * bs
    if steps >= cap:  # the usual case: blocks to spare
        return cap
    p = list(accumulate(res + res, initial=0))  # prefix sums over two cycles of ticks
    s = lo % bs
    j = bisect_right(p, p[s] + avail - full * total, s, s + bs + 1) - 1 - s
    return min(steps + j, cap)
