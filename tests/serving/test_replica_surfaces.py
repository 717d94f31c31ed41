"""The replica's explicit surfaces: the ``ReplicaView`` its scheduler and the router see, the
frozen ``ReplicaConfig`` it is built from, the ``ReplicaStats`` records the report is made of,
and the KV watermark as a scheduler property."""

from __future__ import annotations

import ast
import dataclasses
from importlib import resources

import numpy as np
import pytest
from serving_helpers import base_config
from stepmodels import FixedStepModel

from llmsim.serving.config import load_config
from llmsim.serving.metrics import ReplicaStats, replica_summary, work_sums
from llmsim.serving.replica import ReplicaConfig
from llmsim.serving.results import SimulationReport
from llmsim.serving.schedulers import SCHEDULERS, ReplicaView
from llmsim.serving.schedulers.chunked import ChunkedPrefill
from llmsim.serving.setup import ServingSetup
from llmsim.serving.simulator import Simulation


def _run(save_itls: bool = False, **sections) -> Simulation:
    cfg = base_config(**{"parallelism": {"replicas": 2, "router": "least-kv"},
                         "scheduler": {"name": "chunked", "kv_capacity_tokens": 3000,
                                       "max_num_batched_tokens": 700, "prefix_caching": True},
                         "workload": {"rate": 30.0, "num_requests": 150,
                                      "prompt": "uniform:50,600", "output": "uniform:1,200",
                                      "shared_prefix_tokens": 256, "prefix_groups": 3,
                                      "seed": 3},
                         "metrics": {"save_itls": save_itls}, **sections})
    sim = Simulation(ServingSetup(load_config(cfg), FixedStepModel(0.02, 0.01, 1e-5, 1e-7)))
    sim.run()
    return sim


@pytest.mark.parametrize("save_itls", [False, True])
def test_replicas_are_replica_views_built_from_frozen_configs(save_itls):
    sim = _run(save_itls)
    for i, rep in enumerate(sim.replicas):
        assert isinstance(rep, ReplicaView)  # every member the protocol names is there
        assert isinstance(rep.config, ReplicaConfig) and rep.config.index == rep.index == i
        with pytest.raises(dataclasses.FrozenInstanceError):
            rep.config.closed_form = False  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            rep.config.limits.max_num_seqs = 1  # type: ignore[misc]


def test_replica_stats_are_what_the_summary_is_made_of():
    sim = _run()
    stats = sim.replica_stats()
    assert [s.index for s in stats] == [0, 1]
    assert all(isinstance(s, ReplicaStats) for s in stats)
    t = sim.table
    done = t.column("status") == 4
    # the records agree with the request table
    assert sum(s.output_tokens for s in stats) == int(t.column("output_tokens")[done].sum())
    assert sum(s.preemptions for s in stats) == int(t.column("preemptions").sum())
    assert sum(s.prefix_hit_tokens for s in stats) == int(t.column("cached_tokens").sum()) > 0
    assert all(0 < s.kv_peak_used_frac <= 1 for s in stats)
    assert all(s.work_steps == s.num_steps for s in stats)
    summary = SimulationReport.from_simulation(sim).summary()
    duration = summary["duration_s"]
    per_replica = replica_summary(stats, duration)
    for key, value in per_replica.items():
        assert summary[key] == value, key
    feats = work_sums(stats)
    assert summary["mean_tokens_per_step"] == feats[1] / feats[0]
    assert summary["busy_frac"] == min(sum(s.busy_s for s in stats) / (2 * duration), 1.0)
    np.testing.assert_array_equal(feats, np.sum([s.work for s in stats], axis=0))


def test_replica_summary_of_no_replicas():
    out = replica_summary([], 1.0)
    assert out == {"num_preemptions": 0, "busy_frac": 0.0, "prefix_cache_hit_rate": 0.0,
                   "kv_usage_peak_frac": 0.0, "mean_tokens_per_step": 0.0, "num_steps": 0}


def test_the_report_reads_no_replica_internals():
    """``results.py`` reads the replicas' records (``Simulation.replica_stats``), never the
    replicas themselves."""
    source = resources.files("llmsim.serving").joinpath("results.py").read_text()
    nodes = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)]
    of_sim = {n.attr for n in nodes if isinstance(n.value, ast.Name) and n.value.id == "sim"}
    assert "replica_stats" in of_sim and "replicas" not in of_sim
    names = {n.attr for n in nodes}
    assert not names & {"busy_s", "hit_tokens", "query_tokens", "peak_used", "kv", "work",
                        "preemptions", "num_steps"}


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_the_watermark_is_a_scheduler_property(name):
    cls = SCHEDULERS.get(name)
    assert cls.uses_watermark is (name == "continuous")
    setup = ServingSetup(load_config(base_config(scheduler={
        "name": name, "kv_capacity_tokens": 16_000, "watermark_frac": 0.05})),
        FixedStepModel())
    assert setup.num_blocks == 1000
    assert setup.watermark_blocks == (50 if cls.uses_watermark else 0)


def test_a_scheduler_that_declares_the_watermark_gets_it(monkeypatch):
    monkeypatch.setattr(ChunkedPrefill, "uses_watermark", True)
    setup = ServingSetup(load_config(base_config(scheduler={
        "name": "chunked", "kv_capacity_tokens": 16_000, "watermark_frac": 0.05})),
        FixedStepModel())
    assert setup.watermark_blocks == 50
