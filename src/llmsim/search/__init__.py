"""``llmsim search``: the layout (GPU, count, parallel plan, engine limits, formats) with the
best goodput per GPU (or per dollar) that meets a percentile SLO at a requested load.

Two stages: the analytic stage (``analytic.py``) drops layouts that provably do not fit or
miss the SLO; the simulation stage (``evaluate.py``) bisects each surviving plan's goodput and
confirms the layout at the requested load, as branch and bound (``run.py``), locally or on Ray
(``backends.py``). See ``docs/search.md``."""

from llmsim.search.config import SearchConfig, load_search_config
from llmsim.search.run import SearchResult, run_search
from llmsim.search.space import Layout, Plan, SearchSpace

__all__ = ["Layout", "Plan", "SearchConfig", "SearchResult", "SearchSpace",
           "load_search_config", "run_search"]
