"""TensorRT-LLM: in-flight batching of whole prompts beside the running decodes.

TensorRT-LLM's batch manager (docs: "Tuning Max Batch Size and Max Num Tokens", 1.0) schedules
every running generation request (one token each) and admits new requests' *whole* context
phase into the same iteration while the step's tokens fit ``max_num_tokens`` and the requests
``max_batch_size``; without ``enable_chunked_prefill`` (off by default) a prompt is never
split and one longer than ``max_num_tokens`` is refused. llmsim's ``inflight`` scheduler
(with chunking enabled: ``chunked``). Defaults (TensorRT-LLM 1.0 LLM API ``BuildConfig`` /
``trtllm-serve``): ``max_batch_size`` 2048, ``max_num_tokens`` 8192, KV ``tokens_per_block``
32, and the capacity scheduler's default policy ``GUARANTEED_NO_EVICT`` (docs: "Useful Runtime
Options"): a request starts only when the KV cache can hold it to its last token, and a started
request is never paused -- llmsim's ``preemption: none`` (admission reserves prompt + output
blocks; ``--preemption recompute`` models ``MAX_UTILIZATION``).
"""

from llmsim.engines.spec import ENGINES, EngineSpec

TRTLLM = ENGINES.register("trtllm", "tensorrt-llm", "trt-llm")(EngineSpec(
    name="trtllm",
    scheduler="inflight",
    defaults={"max_num_batched_tokens": 8192, "max_num_seqs": 2048, "block_size": 32,
              "preemption": "none"},
    sources={
        "max_num_batched_tokens": "TensorRT-LLM 1.0 BuildConfig.max_num_tokens = 8192 "
                                  "(docs: Tuning Max Batch Size and Max Num Tokens)",
        "max_num_seqs": "TensorRT-LLM 1.0 BuildConfig.max_batch_size = 2048",
        "block_size": "TensorRT-LLM KvCacheConfig tokens_per_block = 32",
        "chunking": "TensorRT-LLM LLM API enable_chunked_prefill = False",
        "preemption": "TensorRT-LLM SchedulerConfig.capacity_scheduler_policy = "
                      "GUARANTEED_NO_EVICT (docs: Useful Runtime Options)",
    },
    description="TensorRT-LLM: in-flight batching of whole prompts beside decodes",
))
