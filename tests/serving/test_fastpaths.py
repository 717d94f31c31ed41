"""The simulator's fast paths against their plain definitions: one-piece decode runs, block
crossings from the phase histogram, the decode curve's segment lookup, the waiting queues."""

from __future__ import annotations

import random
from bisect import bisect_right

import numpy as np
import pytest

from llmsim.serving.decoderuns import DecodeCurve, LinearRun, PiecewiseRun
from llmsim.serving.replica.kvblocks import block_crossings, steps_that_fit
from llmsim.serving.schedulers.base import FCFSQueue, PriorityQueue


@pytest.mark.parametrize("a, b", [(0.007, 3e-9), (0.02, 0.0), (0.01, 1e-4), (0.05, -1e-6)])
def test_linear_run_is_a_one_piece_run(a, b):
    """LinearRun computes exactly what the general piecewise run gives for one piece."""
    n = 300
    lin, gen = LinearRun(a, b, n), PiecewiseRun([1], [0.0], [a], [b], n)
    assert lin.first == gen.first == a
    for k in range(1, n + 1):
        assert lin.end(k) == gen.end(k)
        assert lin.gap(k) == gen.gap(k)
    for dt in np.linspace(0.0, 1.05 * lin.end(n), 997).tolist() + [lin.end(7), lin.end(n)]:
        assert lin.step_ending_at_or_after(dt) == gen.step_ending_at_or_after(dt), dt
    for k1, k2 in ((2, n), (2, 2), (5, 3), (1, 40)):
        assert lin.max_gap(k1, k2) == gen.max_gap(k1, k2)


def test_step_ending_at_or_after_definition():
    run = LinearRun(0.0071, 2.5e-9, 500)
    for dt in np.linspace(1e-4, run.end(500) + 1.0, 2001):
        k = run.step_ending_at_or_after(dt)
        if dt <= run.end(500):
            assert run.end(k) >= dt and (k == 1 or run.end(k - 1) < dt)
        else:
            assert k == 500


class _Hist:
    def __init__(self):
        self.calls = []

    def add_linear(self, g1, g2, cnt, weight):
        self.calls.append((g1, g2, cnt, weight))


def test_add_gaps_returns_the_largest_gap():
    for run in (LinearRun(0.01, 1e-6, 50), LinearRun(0.01, -1e-6, 50),
                PiecewiseRun([1, 20], [0.0, 0.2], [0.01, 0.011], [1e-6, 2e-6], 50)):
        h = _Hist()
        top = run.add_gaps(h, 2, 50, 3)
        assert top == run.max_gap(2, 50) == max(run.gap(k) for k in range(2, 51))
        assert sum(c[2] for c in h.calls) == 49 and all(c[3] == 3 for c in h.calls)
    assert LinearRun(0.01, 0.0, 5).add_gaps(_Hist(), 3, 2, 1) == 0.0


def test_curve_segment_lookup_matches_bisect():
    """The decode curve starts from the previous lookup's segment; the pieces it returns are
    those a fresh bisection gives."""
    times = lambda seqs, c: 0.005 + 1e-7 * seqs * np.asarray(c) ** 1.1  # noqa: E731
    curve = DecodeCurve(times, 8, 8192)
    fresh = DecodeCurve(times, 8, 8192)
    rng = random.Random(3)
    contexts = [1.0, 1.5, 8191.0, 8192.0, 9000.0] + [rng.uniform(1, 9000) for _ in range(300)]
    contexts += [100.0 + 0.25 * i for i in range(400)]  # close, increasing contexts
    for c1 in contexts:
        n = rng.choice([1, 3, 40, 500])
        fresh._i = 0  # no memory: always bisects from scratch
        a, b = curve.run(c1, n), fresh.run(c1, n)
        assert type(a) is type(b)
        ks = sorted({1, 2, n // 2 or 1, n})
        assert [a.end(k) for k in ks] == [b.end(k) for k in ks]
        i = min(max(bisect_right(curve.x, c1) - 1, 0), curve.last)
        assert a.first == fresh.run(c1, 1).first and curve._i == i


def _cross_brute(res, bs, lo, hi):
    return sum(res[t % bs] for t in range(lo, hi + 1))


@pytest.mark.parametrize("bs", [1, 4, 16, 32])
def test_block_crossings_and_fitting_against_brute_force(bs):
    rng = random.Random(bs)
    for _ in range(300):
        res = [rng.choice([0, 0, 1, 2, 5]) for _ in range(bs)]
        total = sum(res)
        lo = rng.randrange(0, 100)
        hi = lo + rng.randrange(-3, 4 * bs + 5)
        assert block_crossings(res, bs, lo, hi, total) == _cross_brute(res, bs, lo, hi)
        avail, cap = rng.randrange(0, 60), rng.randrange(-2, 200)
        steps = steps_that_fit(res, bs, lo, avail, cap, total)
        best = 0
        for m in range(1, max(cap, 0) + 1):
            if _cross_brute(res, bs, lo, lo + m - 1) <= avail:
                best = m
            else:
                break
        assert steps == best, (res, lo, avail, cap)


def test_waiting_queues():
    q = FCFSQueue()
    assert not q and len(q) == 0
    for rid in (3, 4, 5):
        q.push(rid)
    q.push_front(9)  # a preempted request goes back to the front
    assert (len(q), q.peek()) == (4, 9)
    assert [q.pop() for _ in range(4)] == [9, 3, 4, 5] and not q

    class Table:
        priority = [2, 0, 1, 0]
        arrival_s = [0.0, 1.0, 2.0, 3.0]

    p = PriorityQueue(Table())
    for rid in (0, 1, 2):
        p.push(rid)
    p.push_front(3)  # ordered by (priority, arrival, id) whatever the side
    assert bool(p) and len(p) == 4 and p.peek() == 1
    assert [p.pop() for _ in range(4)] == [1, 3, 2, 0] and not p
