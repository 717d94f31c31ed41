"""``simulate(config)``: build the serving setup, run the event loop, and report.

The one entry point of the serving simulator (``llmsim simulate`` and ``llmsim.simulate``);
it sits above both the loop (``simulator.py``) and the report (``results.py``).
"""

from __future__ import annotations

from typing import Any

from llmsim.costmodel import StepTimeModel
from llmsim.errors import ConfigError
from llmsim.serving.config import SimulationConfig, load_config
from llmsim.serving.pricing import WorkFit
from llmsim.serving.results import SimulationReport
from llmsim.serving.setup import ServingSetup
from llmsim.serving.simulator import ProgressFn, Simulation


def simulate(config: SimulationConfig | dict[str, Any] | str, *,
             step_model: StepTimeModel | None = None,
             progress: ProgressFn | None = None, closed_form: bool = True) -> SimulationReport:
    """Run a serving simulation; returns a :class:`~llmsim.serving.results.SimulationReport`.

    ``config``: a ``SimulationConfig``, a dict of the same shape, or a YAML file path.
    ``step_model``: any ``StepTimeModel`` to use instead of the one the config's deployment
    builds (one without a deployment needs ``scheduler.kv_capacity_tokens``).
    ``progress(done, total)`` is called as requests finish. ``closed_form=False`` prices every
    decode step one by one with ``step_time`` (a reference for the closed-form runs; slow).
    A config with a ``disagg`` section (prefill and decode pools) runs disaggregated
    (``serving/disagg_sim.py``).
    """
    cfg = load_config(config)
    if cfg.disagg is not None:  # prefill/decode pools: serving/disagg_sim.py
        if step_model is not None:
            raise ConfigError("a step model replaces one deployment's; a disaggregated run "
                              "(disagg section) builds one per pool: drop step_model")
        from llmsim.serving.disagg_sim import simulate_disagg

        return simulate_disagg(cfg, progress, closed_form)
    setup = ServingSetup(cfg, step_model)
    cfg = setup.cfg  # with an engine's defaults filled in
    sim = Simulation(setup, progress, closed_form)
    sim.run()
    work = WorkFit(setup.step_model, setup.max_batched, cfg.scheduler.max_num_seqs,
                   setup.max_model_len)
    return SimulationReport.from_simulation(sim, work)
