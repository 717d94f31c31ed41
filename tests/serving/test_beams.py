"""Beam search in the serving simulator (issue 15, part 2): steps carry beam x sequences,
beams share the prompt's KV blocks and hold their own output blocks; beam 1 is no beam."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import base_config
from stepmodels import FixedStepModel

from llmsim.costmodel import BatchShape
from llmsim.costmodel.beams import BeamStepModel
from llmsim.errors import LLMSimError
from llmsim.serving.config import load_config
from llmsim.serving.replica import Replica
from llmsim.serving.run import simulate
from llmsim.serving.setup import ServingSetup
from llmsim.serving.simulator import Simulation


class RecordingModel(FixedStepModel):
    """A fixed step model that keeps every decode shape it prices."""

    def __init__(self, *a):
        super().__init__(*a)
        self.decode_shapes: list[BatchShape] = []
        self.curve_seqs: list[int] = []

    def step_time(self, shape):
        if shape.decode_seqs:
            self.decode_shapes.append(shape)
        return super().step_time(shape)

    def decode_step_times(self, num_seqs, context_per_seq):
        self.curve_seqs.append(num_seqs)
        return super().decode_step_times(num_seqs, context_per_seq)


def test_beam_shape_widens_decode_only():
    m = BeamStepModel(FixedStepModel(0.02, 0.01, 1e-5, 1e-7), 4)
    s = BatchShape.prefill(1, 100) + BatchShape.decode(3, 500.0)
    w = m.beam_shape(s)
    assert (w.prefill_seqs, w.prefill_tokens) == (1, 100)
    assert w.decode_seqs == 12 and w.decode_ctx_tokens == 4 * 1500.0
    assert w.num_logits == s.num_logits + 3 * 3
    assert BeamStepModel(m.target, 1).beam_shape(s) == s
    ctx = np.array([10.0, 700.0])
    assert np.allclose(m.decode_step_times(3, ctx), m.target.decode_step_times(12, ctx))
    assert m.step_time(BatchShape.decode(3, 500.0)) == pytest.approx(
        m.target.step_time(BatchShape.decode(12, 500.0)))


def _cfg(beam=1, **kw):
    dec = {} if beam is None else {"decoding": {"beam": beam}}
    return base_config(**dec, **kw)


def _summary(cfg, model):
    s = simulate(cfg, step_model=model).summary()
    return {k: v for k, v in s.items() if "wall" not in k}


def test_beam_one_is_no_beam():
    for sched in ("chunked", "continuous", "static"):
        kw = {"scheduler": {"name": sched, "kv_capacity_tokens": 20000}}
        a = _summary(_cfg(None, **kw), FixedStepModel(0.02, 0.01, 1e-5, 1e-7))
        b = _summary(_cfg(1, **kw), FixedStepModel(0.02, 0.01, 1e-5, 1e-7))
        assert a == b


def test_steps_carry_beam_times_sequences():
    rec = RecordingModel(0.02, 0.01, 1e-5, 1e-7)
    simulate(_cfg(3), step_model=rec)
    assert rec.decode_shapes or rec.curve_seqs
    assert all(s.decode_seqs % 3 == 0 for s in rec.decode_shapes)
    assert rec.curve_seqs and all(n % 3 == 0 for n in rec.curve_seqs)


def test_kv_of_one_request_shares_the_prompt():
    """One request, prompt 100, output 41, block 16: the prompt's 7 blocks are shared and each
    of the 4 beams holds the blocks of its 40 generated tokens after them."""
    cfg = _cfg(4, scheduler={"kv_capacity_tokens": 10_000, "block_size": 16},
               workload={"arrival": "batch", "num_requests": 1, "prompt": "fixed:100",
                         "output": "fixed:41"})
    setup = ServingSetup(load_config(cfg), FixedStepModel(0.02, 0.01))
    sim = Simulation(setup)
    sim.run()
    peak = sim.replica_stats()[0].kv_peak_used_blocks
    shared = -(-100 // 16)
    assert peak == shared + 4 * (-(-140 // 16) - shared)
    one = Simulation(ServingSetup(load_config(_cfg(1, **{k: cfg[k] for k in (
        "scheduler", "workload")})), FixedStepModel(0.02, 0.01)))
    one.run()
    assert one.replica_stats()[0].kv_peak_used_blocks == -(-140 // 16)


@pytest.mark.parametrize("scheduler", ["chunked", "continuous", "static"])
def test_kv_accounting_consistent_with_beams(monkeypatch, scheduler):
    """Tight KV forces preemptions: after every committed step the blocks in use equal what
    the running requests hold (beams included) and never exceed the capacity; closed-form runs
    equal step-by-step ones."""
    orig = Replica._commit
    checks = {"n": 0}

    def checked(self, seg, now):
        orig(self, seg, now)
        self.check()
        checks["n"] += 1

    monkeypatch.setattr(Replica, "_commit", checked)
    cfg = load_config(_cfg(3, scheduler={"name": scheduler, "kv_capacity_tokens": 4000,
                                         "max_num_batched_tokens": 700},
                           workload={"rate": 30.0, "num_requests": 120,
                                     "prompt": "uniform:50,600", "output": "uniform:1,200",
                                     "seed": 9}))
    out = []
    for closed in (True, False):
        setup = ServingSetup(cfg, FixedStepModel(0.02, 0.01, 1e-5, 1e-7))
        sim = Simulation(setup, closed_form=closed)
        sim.run()
        assert sim.completed + sim.rejected == 120
        assert sim.replicas[0].kv.used == 0
        stats = sim.replica_stats()[0]
        assert stats.kv_peak_used_blocks <= setup.num_blocks
        out.append(sim.table.column("finish_s").copy())
    assert checks["n"] > 50
    np.testing.assert_allclose(out[0], out[1], rtol=1e-9)


def test_beams_use_more_kv_and_time():
    kw = {"scheduler": {"kv_capacity_tokens": 20000},
          "workload": {"prompt": "fixed:100", "output": "fixed:60"}}
    one = _summary(_cfg(1, **kw), FixedStepModel(0.02, 0.01, 1e-5, 1e-7))
    four = _summary(_cfg(4, **kw), FixedStepModel(0.02, 0.01, 1e-5, 1e-7))
    assert four["kv_usage_peak_frac"] > one["kv_usage_peak_frac"]
    assert four["tpot_s"]["p50"] > one["tpot_s"]["p50"]  # 4x decode tokens per step


def test_beam_errors():
    with pytest.raises(LLMSimError, match="swap"):
        load_config(_cfg(2, scheduler={"preemption": "swap"}))
    with pytest.raises(LLMSimError, match="spec-method"):
        load_config(_cfg(None, decoding={"beam": 2, "spec_method": "ngram",
                                         "spec_acceptance": 0.5}))
