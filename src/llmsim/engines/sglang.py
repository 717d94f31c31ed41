"""SGLang: prefill first, with the running decodes mixed into the prefill batch.

SGLang's scheduler (``sglang/srt/managers/scheduler.py``, ``get_next_batch_to_run``) builds a
new prefill batch whenever requests wait (``PrefillAdder``: whole prompts while their new
tokens fit ``max_prefill_tokens``, the first one always; a prompt longer than
``chunked_prefill_size`` is split into chunks of that size) and runs it before the decodes;
with ``--enable-mixed-chunk`` the running decode batch joins that prefill step (the budget
less one token per decode), without it decodes stall while a prefill runs. llmsim's
``prefill-first`` scheduler; ``mix_decodes`` follows ``--enable-mixed-chunk``.

Defaults (SGLang 0.5.x ``server_args.py``): ``max_prefill_tokens`` 16384,
``chunked_prefill_size`` 8192 on an 80 GB-class GPU (H100), ``enable_mixed_chunk`` False,
``page_size`` 1 (llmsim's KV blocks: 1 token would make block accounting slow; 16 is used,
which changes the capacity by less than one block per request), ``max_running_requests``
derived from the KV pool (llmsim: 2048, the KV capacity limits first). The radix prefix cache
is llmsim's prefix caching (``--prefix-caching``); it only matters for shared prefixes.
"""

from llmsim.engines.spec import ENGINES, EngineSpec

SGLANG = ENGINES.register("sglang")(EngineSpec(
    name="sglang",
    scheduler="prefill-first",
    defaults={"max_num_batched_tokens": 16384, "chunk_size_tokens": 8192,
              "mix_decodes": False, "max_num_seqs": 2048, "block_size": 16,
              "preemption": "recompute"},
    sources={
        "max_num_batched_tokens": "SGLang 0.5.x server_args.py max_prefill_tokens = 16384",
        "chunk_size_tokens": "SGLang 0.5.x server_args.py chunked_prefill_size: 8192 for "
                             "GPUs of 80 GB class (H100); docs: Server Arguments",
        "mix_decodes": "SGLang --enable-mixed-chunk, default False (docs: Server Arguments)",
        "max_num_seqs": "SGLang max_running_requests: derived from the KV pool; 2048 here",
        "block_size": "SGLang page_size 1; llmsim uses 16-token blocks (see module doc)",
    },
    description="SGLang: prefill-first batches, decodes mixed in with --enable-mixed-chunk",
))
