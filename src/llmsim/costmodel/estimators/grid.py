"""The interpolation grid of the ``table`` estimator: measured curves along one inner column,
nested over the outer columns, and the blend of a query's bracketing curves.

A node brackets a query's outer value between its two nearest keys (linear weights in the
axis' coordinates, log2 or linear; an exact key collapses the level; beyond the keys the
nearest one is used and the query marked clamped); a :class:`Curve` interpolates log-util
(``log(sol / measured)``) and latency along the inner axis, holding the boundary util (median
of its last ``TAIL`` points) beyond its range. :class:`TableEval` blends the weighted curves:
latency where every bracket holds the query (raw-value kinds), else ``sol / exp(log-util)``.
``table`` (:mod:`.table`) slices the measured rows and builds one grid per slice.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

INSIDE, OUTSIDE = "table", "table-extrapolated"
TAIL = 3


class Curve:
    """Measured points along the inner axis of one grid node."""

    __slots__ = ("x", "lu", "raw", "lo_hold", "hi_hold", "log", "_lists")

    def __init__(self, x: np.ndarray, lu: np.ndarray, raw: np.ndarray, log_coords: bool):
        order = np.argsort(x, kind="mergesort")
        self.log = log_coords
        self.x = _coord(x[order], log_coords)
        self.lu, self.raw = lu[order], raw[order]
        self.lo_hold = _median(self.lu[:TAIL])
        self.hi_hold = _median(self.lu[-TAIL:])
        self._lists: tuple[list[float], list[float], list[float]] | None = None

    def eval_scalar(self, xq: float) -> tuple[float, float, bool]:
        """:meth:`eval` of one value with bisection on lists (no numpy overhead)."""
        if self._lists is None:
            self._lists = (self.x.tolist(), self.lu.tolist(), self.raw.tolist())
        xs, lus, raws = self._lists
        c = math.log2(max(xq, 1e-30)) if self.log else float(xq)
        n = len(xs)
        if c <= xs[0]:  # the same branches as eval(): hold beyond, endpoint at it
            return (self.lo_hold if c < xs[0] else lus[0]), raws[0], c >= xs[0] - 1e-12
        if c >= xs[-1]:
            return (self.hi_hold if c > xs[-1] else lus[-1]), raws[-1], c <= xs[-1] + 1e-12
        i = bisect.bisect_right(xs, c)
        i = min(max(i, 1), n - 1)
        f = (c - xs[i - 1]) / (xs[i] - xs[i - 1])
        return (lus[i - 1] + f * (lus[i] - lus[i - 1]), raws[i - 1] + f * (raws[i] - raws[i - 1]),
                True)

    def eval(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log-util, latency, inside the measured range) at inner values ``xq``."""
        c = _coord(xq, self.log)
        lu = np.interp(c, self.x, self.lu)
        lu = np.where(c < self.x[0], self.lo_hold, np.where(c > self.x[-1], self.hi_hold, lu))
        inside = (c >= self.x[0] - 1e-12) & (c <= self.x[-1] + 1e-12)
        return lu, np.interp(c, self.x, self.raw), inside


def _median(v: np.ndarray) -> float:
    s = sorted(float(x) for x in v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _coord(x, log_coords: bool):
    return np.log2(np.maximum(x, 1e-30)) if log_coords else np.asarray(x, dtype=float)


class TableEval:
    """Blend of the bracketing curves of one case (module docstring), vector and scalar."""

    __slots__ = ("entries", "raw")

    def __init__(self, entries: list[tuple[float, Curve, bool]], raw: bool):
        self.entries = entries
        self.raw = raw

    def __call__(self, inner: np.ndarray, sol: np.ndarray) -> tuple[np.ndarray, list[str]]:
        x = np.asarray(inner, dtype=float)
        lu = np.zeros(x.shape)
        raw = np.zeros(x.shape)
        inside = np.ones(x.shape, dtype=bool)
        for w, curve, clamped in self.entries:
            c_lu, c_raw, c_in = curve.eval(x)
            lu += w * c_lu
            raw += w * c_raw
            inside &= c_in & (not clamped)
        t = np.asarray(sol, dtype=float) / np.exp(lu)
        if self.raw:
            t = np.where(inside, raw, t)
        return t, [INSIDE if i else OUTSIDE for i in np.atleast_1d(inside)]

    def scalar(self, inner: float, sol: float) -> tuple[float, str]:
        """One inner value, without numpy (the serving simulator's per-step path)."""
        lu = raw = 0.0
        inside = True
        for w, curve, clamped in self.entries:
            c_lu, c_raw, c_in = curve.eval_scalar(inner)
            lu += w * c_lu
            raw += w * c_raw
            inside = inside and c_in and not clamped
        if self.raw and inside:
            return raw, INSIDE
        return sol / math.exp(lu), INSIDE if inside else OUTSIDE


class _Node:
    """One outer axis level: sorted keys and a child per key (a node or a curve)."""

    __slots__ = ("keys", "coords", "children")

    def __init__(self, keys: np.ndarray, children: list, log_coords: bool):
        self.keys = keys
        self.coords = _coord(keys, log_coords)
        self.children = children


def build_grid(outer: np.ndarray, x: np.ndarray, lu: np.ndarray, t: np.ndarray,
               log_coords: bool, level: int = 0):
    """The grid below ``level`` of rows sorted lexicographically by (outer columns, x)."""
    if level == outer.shape[1]:
        return Curve(x, lu, t, log_coords)
    col = outer[:, level]
    cuts = np.flatnonzero(np.diff(col)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(col)]])
    children = [build_grid(outer[a:b], x[a:b], lu[a:b], t[a:b], log_coords, level + 1)
                for a, b in zip(starts, ends, strict=True)]
    return _Node(col[starts].astype(float), children, log_coords)


def bracket(node, values: tuple[float, ...], log_coords: bool, weight: float = 1.0,
             clamped: bool = False) -> list[tuple[float, Curve, bool]]:
    if isinstance(node, Curve):
        return [(weight, node, clamped)]
    v, rest = values[0], values[1:]
    keys, coords = node.keys, node.coords
    i = int(np.searchsorted(keys, v))
    if i < len(keys) and math.isclose(keys[i], v, rel_tol=1e-9):
        return bracket(node.children[i], rest, log_coords, weight, clamped)
    if i == 0 or i == len(keys):
        j = 0 if i == 0 else len(keys) - 1
        return bracket(node.children[j], rest, log_coords, weight, True)
    c = float(_coord(np.array([v]), log_coords)[0])
    w = (c - coords[i - 1]) / (coords[i] - coords[i - 1])
    return (bracket(node.children[i - 1], rest, log_coords, weight * (1.0 - w), clamped)
            + bracket(node.children[i], rest, log_coords, weight * w, clamped))
