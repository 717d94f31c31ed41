"""What a replica has in flight: a :class:`Segment` (an optional prefill / mixed *head* step
and an optional closed-form decode run) and the run itself, a :class:`PhasedRun` -- decode
*phases* between finishes, each a ``LinearRun`` / ``PiecewiseRun`` from the decode curve
(:mod:`llmsim.serving.decoderuns`). An arrival that may join the batch *cuts* the run at the
end of the step in progress (:meth:`PhasedRun.cut`), exactly where a step-by-step simulation
would let it in; the sampler and the router read how far the run has got (``tokens_by``,
``finished_by``) without committing it.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from llmsim.serving.schedulers.base import StepPlan


class Segment:
    """What is in flight: an optional *head* step (a prefill or mixed step, ``head_dur``
    long) followed by an optional closed-form *run* (a :class:`PhasedRun`) of ``n`` pure
    decode steps; ``dur``: the whole segment; ``event``: the id of its end event."""

    __slots__ = ("start", "plan", "feats", "head_dur", "run", "n", "event", "dur")

    def __init__(self, start: float, plan: StepPlan, feats: Any, head_dur: float):
        self.start, self.plan, self.feats, self.head_dur = start, plan, feats, head_dur
        self.run: Any = None
        self.n = 0
        self.event = 0
        self.dur = head_dur

    @property
    def steps(self) -> int:
        return (1 if self.feats is not None else 0) + self.n


class PhasedRun:
    """A closed-form run made of decode *phases*: between two finishes the decoding set is
    fixed and the run is a decode run (``LinearRun`` / ``PiecewiseRun``); at a phase end the
    finishing requests leave and the next phase prices the smaller batch. Times are relative
    to the run's start."""

    __slots__ = ("runs", "ns", "t0", "ends", "live", "nfin", "n", "dur")

    def __init__(self, runs: list[Any], ns: list[int], t0: list[float], ends: list[float],
                 live: list[int], nfin: list[int], n: int, dur: float):
        self.runs = runs  # per phase: its decode run (``LinearRun`` / ``PiecewiseRun``)
        self.ns = ns  # its steps
        self.t0 = t0  # its start (``t0[p + 1] = t0[p] + ends[p]``)
        self.ends = ends  # its length, ``runs[p].end(ns[p])``
        self.live = live  # sequences producing tokens in it
        self.nfin = nfin  # requests finishing at its end
        self.n = n  # steps in all
        self.dur = dur

    def _phase_at(self, dt: float) -> int:
        """The phase whose steps are in progress at ``dt`` (the last if after the end)."""
        t0 = self.t0
        if len(t0) == 1:
            return 0
        return max(bisect_left(t0, dt) - 1, 0)

    def cut(self, dt: float) -> bool:
        """Keep only the steps up to the one in progress at ``dt``; False if nothing to cut."""
        t0, ns = self.t0, self.ns
        last = len(t0) - 1
        p = self._phase_at(dt) if last else 0
        run = self.runs[p]
        k = run.step_ending_at_or_after(dt - t0[p])
        if k >= ns[p]:
            if p == last:
                return False
        else:
            run.truncate(k)
            self.nfin[p] = 0  # its finishers now finish after this segment
            ns[p] = k
            self.ends[p] = run.end(k)
        if p < last:
            del self.runs[p + 1:], ns[p + 1:], t0[p + 1:], self.ends[p + 1:]
            del self.live[p + 1:], self.nfin[p + 1:]
        self.n = sum(ns)
        self.dur = t0[p] + self.ends[p]
        return True

    def finished_by(self, dt: float) -> int:
        """Requests of this run that finish at or before ``dt``."""
        done = 0
        for p, run in enumerate(self.runs):
            if self.t0[p] + run.end(self.ns[p]) > dt:
                break
            done += self.nfin[p]
        return done

    def tokens_by(self, dt: float) -> int:
        tokens = 0
        for p, run in enumerate(self.runs):
            rel = dt - self.t0[p]
            if rel <= 0:
                break
            n = self.ns[p]
            k = run.step_ending_at_or_after(rel)
            if run.end(k) > rel:
                k -= 1
            tokens += min(k, n) * self.live[p]
        return tokens
