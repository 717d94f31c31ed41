"""The replica's explicit surfaces: the ``ReplicaView`` its scheduler and the router see, the
frozen ``ReplicaConfig`` it is built from, and the KV watermark as a scheduler property."""

from __future__ import annotations

import dataclasses

import pytest
from serving_helpers import base_config
from stepmodels import FixedStepModel

from llmsim.serving.config import load_config
from llmsim.serving.replica import ReplicaConfig
from llmsim.serving.schedulers import SCHEDULERS, ReplicaView, SchedulerLimits
from llmsim.serving.schedulers.chunked import ChunkedPrefill
from llmsim.serving.simulator import ServingSetup, Simulation


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


def test_scheduler_limits_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SchedulerLimits(4, 100).max_num_seqs = 1  # type: ignore[misc]


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
