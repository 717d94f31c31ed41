"""vLLM V1: chunked prefill under a token budget, decodes first, preemption by recompute.

The V1 scheduler (``vllm/v1/core/sched/scheduler.py``) gives every running request its
tokens first (decodes: one each), then chunks of the waiting prompts while
``max_num_batched_tokens`` and ``max_num_seqs`` allow; KV blocks of 16 tokens; a request
whose blocks do not fit preempts the latest admitted one, which recomputes later. That is
llmsim's ``chunked`` scheduler. Defaults of ``vllm serve`` (the OpenAI server) on a GPU with
at least 70 GiB (H100 / H200 / B200): ``max_num_batched_tokens`` 8192 and ``max_num_seqs``
1024 (``EngineArgs._set_default_args``, vLLM 0.10 - 0.12; smaller GPUs: 2048 and 256).
"""

from llmsim.engines.spec import ENGINES, EngineSpec

VLLM = ENGINES.register("vllm", "vllm-v1")(EngineSpec(
    name="vllm",
    scheduler="chunked",
    defaults={"max_num_batched_tokens": 8192, "max_num_seqs": 1024, "block_size": 16,
              "preemption": "recompute"},
    sources={
        "max_num_batched_tokens": "vLLM 0.10-0.12 vllm/engine/arg_utils.py "
                                  "EngineArgs._set_default_args: OPENAI_API_SERVER, GPU >= "
                                  "70 GiB -> 8192 (docs: Optimization and Tuning, chunked "
                                  "prefill)",
        "max_num_seqs": "same function: OPENAI_API_SERVER, GPU >= 70 GiB -> 1024",
        "block_size": "vLLM CacheConfig.block_size default 16 (CUDA)",
        "preemption": "vLLM V1 preempts by recompute only (docs: Optimization and Tuning, "
                      "Preemption)",
    },
    description="vLLM V1: chunked prefill, decodes first, token budget, recompute preemption",
))
