"""Engine models: how a real serving engine schedules, and what it costs beyond the kernels.

An engine (``--engine vllm|sglang|trtllm``, optionally ``NAME@VERSION``) is

* a registered :class:`~.spec.EngineSpec` (one file each: ``vllm.py``, ``sglang.py``,
  ``trtllm.py``): the serving scheduler that reproduces its batching policy and the limits
  the engine uses when they are not given (each with the documentation page and version it
  comes from);
* an :class:`~.profile.EngineProfile` (package data ``data/engines/profiles.yaml``, fitted by
  ``scripts/fit_engine_profile.py`` to measured serving runs; apart from the datasheets and
  the kernel profile): the per-step CPU / launch overhead, the per-request frontend /
  first-token cost, the price factor of mixed prefill + decode steps and the client timing
  jitter.

:class:`~.stepmodel.EngineStepModel` lays a profile over any ``StepTimeModel``; the serving
simulator and ``estimate --engine`` use it. No engine: llmsim's engine-neutral behaviour.
"""

from llmsim.engines import sglang, trtllm, vllm  # noqa: F401  (registration)
from llmsim.engines.profile import EngineProfile, load_profile
from llmsim.engines.spec import ENGINES, EngineSpec, ResolvedEngine, resolve_engine
from llmsim.engines.stepmodel import EngineStepModel

__all__ = ["ENGINES", "EngineProfile", "EngineSpec", "EngineStepModel", "ResolvedEngine",
           "load_profile", "resolve_engine"]
