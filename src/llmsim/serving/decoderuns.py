"""Decode runs in closed form (DESIGN "Speed is a feature"): the arithmetic of ``n`` decode
steps whose contexts grow by one per step.

Between two events that change the batch, decode steps differ only by the context: with ``B``
decoding sequences, every sequence reads one more key per step, so the context per sequence is
``c1, c1 + 1, c1 + 2, ...``. For each ``B`` the decode step time ``T_B(c)`` is tabulated once
(:class:`DecodeCurve`) from the ``StepTimeModel``'s vectorised ``decode_step_times`` on a grid
of contexts refined until linear interpolation is within 1e-5 (relative) of the model at every
segment midpoint (the analytic model is affine in ``c`` for memory-bound attention, with smooth
efficiency ramps and kinks at sliding windows). On one grid segment step ``k`` takes
``g_k = a + b (k - k0)``, so a run's end time ``E(k) = sum g = m a + b m (m - 1) / 2``
(``m = k - k0 + 1``), the step in progress at a given time (a quadratic), and the run's ITL
sum / max are O(1) per segment crossed (usually one: a :class:`LinearRun`; a run across grid
points is a :class:`PiecewiseRun`). ``pricing.StepPricer.decode_run`` hands them out.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from typing import Any

import numpy as np

_sqrt, _ceil = math.sqrt, math.ceil


class LinearRun:
    """``n`` decode steps whose durations are affine in the step index, ``g_k = a + b (k - 1)``
    (1-based): a run whose contexts stay on one segment of the decode curve's grid, the usual
    case. The end of step ``k`` is ``E(k) = k a + b k (k - 1) / 2``."""

    __slots__ = ("a", "b", "n", "first")

    def __init__(self, a: float, b: float, n: int):
        self.a, self.b, self.n = a, b, n
        self.first = a  # duration of the first step

    def end(self, k: int) -> float:
        """Time from the run's start to the end of step ``k``."""
        return k * self.a + self.b * k * (k - 1) * 0.5

    def ends(self, k1: int, k2: int) -> np.ndarray:
        """``end(k)`` for ``k = k1..k2`` (vectorised; per-token ITLs only)."""
        k = np.arange(k1, k2 + 1, dtype=np.float64)
        return k * self.a + self.b * k * (k - 1) * 0.5

    def gap(self, k: int) -> float:
        return self.a + self.b * (k - 1)

    def step_ending_at_or_after(self, dt: float) -> int:
        """Smallest ``k`` in [1, n] with ``end(k) >= dt`` (n if none): the root of the
        quadratic ``E(m) = dt``, then corrected by at most a step or two for rounding."""
        a, b, n = self.a, self.b, self.n
        if dt <= a:  # E(1) == a exactly
            return 1
        if dt > n * a + b * n * (n - 1) * 0.5:
            return n
        qa = b * 0.5
        qb = a - qa
        disc = qb * qb + 4.0 * qa * dt
        disc = _sqrt(disc) if disc > 0.0 else 0.0
        m = 2.0 * dt / (qb + disc) if qb + disc > 0 else 1.0
        k = _ceil(m)
        k = 1 if k < 1 else (n if k > n else k)
        while k > 1 and (k - 1) * a + b * (k - 1) * (k - 2) * 0.5 >= dt:
            k -= 1
        while k < n and k * a + b * k * (k - 1) * 0.5 < dt:
            k += 1
        return k

    def add_gaps(self, hist: Any, k1: int, k2: int, weight: float) -> float:
        """Add the gaps of steps ``k1..k2`` to ``hist`` (``weight`` each); returns their max."""
        if k2 < k1:
            return 0.0
        a, b = self.a, self.b
        g1 = a + b * (k1 - 1)
        g2 = a + b * (k2 - 1)
        hist.add_linear(g1, g2, k2 - k1 + 1, weight)
        return g1 if g1 >= g2 else g2

    def max_gap(self, k1: int, k2: int) -> float:
        if k2 < k1:
            return 0.0
        g1 = self.a + self.b * (k1 - 1)
        g2 = self.a + self.b * (k2 - 1)
        return g1 if g1 >= g2 else g2

    def truncate(self, n: int) -> None:
        self.n = n


class PiecewiseRun:
    """``n`` decode steps whose durations are affine in the step index on each piece:
    ``g_k = a_p + b_p (k - k0_p)`` for ``k0_p <= k < k0_{p+1}`` (1-based). One piece per
    segment of the decode curve's grid the run's contexts cross (two or more; one piece is a
    :class:`LinearRun`)."""

    __slots__ = ("k0", "cum", "a", "b", "n", "first")

    def __init__(self, k0: list[int], cum: list[float], a: list[float], b: list[float],
                 n: int):
        self.k0, self.cum, self.a, self.b, self.n = k0, cum, a, b, n
        self.first = a[0]  # duration of the first step

    def _piece(self, k: int) -> int:
        return bisect_right(self.k0, k) - 1

    def end(self, k: int) -> float:
        """Time from the run's start to the end of step ``k``."""
        p = bisect_right(self.k0, k) - 1
        m = k - self.k0[p] + 1
        return self.cum[p] + m * self.a[p] + self.b[p] * m * (m - 1) * 0.5

    def ends(self, k1: int, k2: int) -> np.ndarray:
        """``end(k)`` for ``k = k1..k2`` (vectorised; per-token ITLs only)."""
        k = np.arange(k1, k2 + 1, dtype=np.int64)
        k0 = np.asarray(self.k0, dtype=np.int64)
        p = np.searchsorted(k0, k, side="right") - 1
        m = (k - k0[p] + 1).astype(np.float64)
        a, b = np.asarray(self.a)[p], np.asarray(self.b)[p]
        return np.asarray(self.cum)[p] + m * a + b * m * (m - 1) * 0.5

    def gap(self, k: int) -> float:
        p = self._piece(k)
        return self.a[p] + self.b[p] * (k - self.k0[p])

    def step_ending_at_or_after(self, dt: float) -> int:
        """Smallest ``k`` in [1, n] with ``end(k) >= dt`` (n if none)."""
        n = self.n
        if dt <= self.end(1):
            return 1
        if dt > self.end(n):
            return n
        p = max(bisect_left(self.cum, dt) - 1, 0)
        a, b, k0, rest = self.a[p], self.b[p], self.k0[p], dt - self.cum[p]
        qa = b * 0.5
        qb = a - qa
        disc = math.sqrt(max(qb * qb + 4.0 * qa * rest, 0.0))
        m = 2.0 * rest / (qb + disc) if qb + disc > 0 else 1.0
        k = min(max(int(math.ceil(m)) + k0 - 1, 1), n)
        while k > 1 and self.end(k - 1) >= dt:
            k -= 1
        while k < n and self.end(k) < dt:
            k += 1
        return k

    def _segments(self, k1: int, k2: int) -> list[tuple[float, float, int]]:
        """(first gap, last gap, count) of each piece's part of steps ``k1..k2``."""
        out = []
        k0s, nxt = self.k0, self.k0[1:] + [self.n + 1]
        for p in range(self._piece(k1), len(k0s)):
            lo, hi = max(k1, k0s[p]), min(k2, nxt[p] - 1)
            if lo > hi:
                break
            a, b, k0 = self.a[p], self.b[p], k0s[p]
            out.append((a + b * (lo - k0), a + b * (hi - k0), hi - lo + 1))
        return out

    def add_gaps(self, hist: Any, k1: int, k2: int, weight: float) -> float:
        """Add the gaps of steps ``k1..k2`` to ``hist`` (``weight`` each); returns their max."""
        if k2 < k1:
            return 0.0
        segs = self._segments(k1, k2)
        for g1, g2, cnt in segs:
            hist.add_linear(g1, g2, cnt, weight)
        return max(max(g1, g2) for g1, g2, _ in segs)

    def max_gap(self, k1: int, k2: int) -> float:
        if k2 < k1:
            return 0.0
        return max(max(g1, g2) for g1, g2, _ in self._segments(k1, k2))

    def truncate(self, n: int) -> None:
        self.n = n


class DecodeCurve:
    """Decode step time of ``seqs`` sequences as a piecewise-linear function of the context
    per sequence ``c`` (keys read per sequence, incl. the new token), tabulated from the
    ``StepTimeModel`` on a grid refined until linear interpolation is within ``rtol`` of the
    model at every segment midpoint."""

    __slots__ = ("x", "t", "slope", "last", "_i")

    def __init__(self, times: Any, seqs: int, max_context: int, rtol: float = 1e-5,
                 max_points: int = 4096):
        x = np.unique(np.concatenate([np.geomspace(1.0, max_context, 64),
                                      np.linspace(1.0, max_context, 65)]))
        t = times(seqs, x)
        for _ in range(24):
            mid = 0.5 * (x[1:] + x[:-1])
            tm = times(seqs, mid)
            bad = np.abs(0.5 * (t[1:] + t[:-1]) - tm) > rtol * np.abs(tm)
            bad &= (x[1:] - x[:-1]) > 1.0
            if not bad.any() or len(x) + int(bad.sum()) > max_points:
                break
            x = np.concatenate([x, mid[bad]])
            t = np.concatenate([t, tm[bad]])
            order = np.argsort(x)
            x, t = x[order], t[order]
        self.x = x.tolist()
        self.t = t.tolist()
        self.slope = (np.diff(t) / np.diff(x)).tolist()
        self.last = len(self.x) - 2  # the last segment
        self._i = 0  # the segment of the previous lookup (runs of one batch size are close)

    def run(self, c1: float, n: int, scale: float = 1.0) -> LinearRun | PiecewiseRun:
        """``n`` steps at per-sequence contexts ``c1, c1 + 1, ...`` (times x ``scale``)."""
        x, t, sl, last = self.x, self.t, self.slope, self.last
        i = self._i
        if not x[i] <= c1 < x[i + 1]:  # else the same segment as last time (what bisect gives)
            i = bisect_right(x, c1) - 1
            i = 0 if i < 0 else (last if i > last else i)
            self._i = i
        if i == last or c1 + n - 1 < x[i + 1]:  # one grid segment: one piece
            b = sl[i]
            return LinearRun((t[i] + b * (c1 - x[i])) * scale, b * scale, n)
        k0s: list[int] = []
        cums: list[float] = []
        aa: list[float] = []
        bb: list[float] = []
        k = 1
        cum = 0.0
        while True:
            c = c1 + k - 1
            b = sl[i] * scale
            a = (t[i] + sl[i] * (c - x[i])) * scale
            # steps in this piece: contexts below the next grid point (the last piece extends)
            k_next = k + max(int(math.ceil(x[i + 1] - c)), 1) if i < last else n + 1
            k0s.append(k)
            cums.append(cum)
            aa.append(a)
            bb.append(b)
            if k_next > n:
                break
            m = k_next - k
            cum += m * a + b * m * (m - 1) * 0.5
            k = k_next
            i += 1
        return PiecewiseRun(k0s, cums, aa, bb, n)
