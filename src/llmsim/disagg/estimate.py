"""Static estimate of a prefill/decode-disaggregated deployment (xPyD) at a concurrency.

``x`` prefill workers and ``y`` decode workers (each a :class:`~llmsim.disagg.pools.PoolSpec`)
serve ``concurrency`` requests in flight (a closed loop, as benchmark clients run: a request
finishes and the next starts), each ``prompt`` in, ``output`` out. Every time comes from the
static estimate of one worker (``estimates.static_batch.estimate``, the one step-time seam):

- prefill step ``t_p``: one worker prefills ``n_p`` requests per DP rank at once
  (``n_p = max_num_batched_tokens // prompt``, at least 1, at most ``max_num_seqs``);
  pool capacity ``mu_p = x n_p dp / t_p`` requests/s;
- queueing before a prefill worker: M/D/1 per worker at utilisation ``rho = lambda / mu_p``,
  ``W = t_p rho / (2 (1 - rho))`` (Pollaczek-Khinchine for deterministic service);
- KV transfer: ``disagg.kv_transfer`` (per decode GPU, layer-wise overlap optional);
- decode: a worker runs ``b`` requests (Little's law ``b = lambda D / y``, ``D = (output - 1)
  TPOT(b)``, capped at ``max_num_seqs x dp`` and at the requests whose KV fits its memory,
  ``memory.footprint.max_sequences``); TPOT(b) is that worker's static-batch TPOT;
- the loop closes with ``lambda (TTFT + D) = concurrency``, TTFT = ``t_p + W + exposed KV``
  (+ the wait for a decode slot when the decode pool is saturated), solved by bisection on
  ``lambda`` inside a fixed point on ``b``.

The ratio that balances the pools: ``x / y = mu_d / mu_p`` per worker, ``mu_d = b / D`` at the
workload's decode batch ``b = min(cap, concurrency / y)``.
Not modelled: the HTTP frontend and tokeniser in a client's TTFT, prefix caching, routing skew
between workers (all workers are alike and evenly loaded).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from llmsim import checks
from llmsim.costmodel import Deployment
from llmsim.disagg.kv_transfer import KVLink, exposed_transfer_s, kv_bytes_per_gpu, kv_transfer_s
from llmsim.disagg.pools import PoolSpec
from llmsim.errors import ConfigError
from llmsim.estimates.static_batch import estimate
from llmsim.memory.footprint import max_sequences


@dataclass(frozen=True)
class DisaggResult:
    """Per-request times (s), rates (requests or tokens per s) and the pools' balance."""

    model: str
    prefill_hardware: str
    decode_hardware: str
    prefill_workers: int
    decode_workers: int
    prefill_gpus: int
    decode_gpus: int
    prompt: int
    output: int
    concurrency: int
    ttft_s: float
    tpot_s: float
    e2e_s: float
    prefill_s: float
    prefill_queue_s: float
    kv_bytes_per_decode_gpu: float
    kv_transfer_s: float
    kv_exposed_s: float
    decode_wait_s: float
    decode_batch_per_worker: float
    requests_per_s: float
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    input_tokens_per_s_per_prefill_gpu: float
    prefill_utilization: float
    decode_utilization: float
    balanced_prefill_per_decode: float
    suggested_xpyd: str
    bottleneck: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _deployment_kwargs(model, pool: PoolSpec, hardware: str | None, formats: dict) -> dict:
    hw = pool.hardware or hardware
    if hw is None:
        raise ConfigError("give --hardware (or hardware= in both pools)")
    return dict(model=model, hardware=hw, num_gpus=pool.gpus_per_worker, tp=pool.tp, pp=pool.pp,
                ep=pool.ep, dp=pool.dp, **formats)


def estimate_disagg(model: str, hardware: str | None, prefill: PoolSpec, decode: PoolSpec, *,
                    prompt: int = 1024, output: int = 128, concurrency: int | None = None,
                    link: KVLink = KVLink(), **formats) -> DisaggResult:
    """xPyD estimate (module docstring). ``formats``: ``dtype``, ``weight_dtype``,
    ``act_dtype``, ``kv_dtype``, ``profile``, ``efficiency`` as :func:`estimate` takes them.
    ``concurrency`` None: every decode slot busy (``y x max_num_seqs x dp``)."""
    _check_pools(prefill, decode)
    prompt, output = checks.whole(prompt, "prompt"), checks.whole(output, "output")
    if concurrency is not None:
        concurrency = checks.whole(concurrency, "concurrency")
    pk = _deployment_kwargs(model, prefill, hardware, formats)
    dk = _deployment_kwargs(model, decode, hardware, formats)
    pre, t_p, mu_p = _prefill_pool(pk, prefill, prompt)

    ddep = Deployment.resolve(**{k: v for k, v in dk.items() if k != "model"}, model=model)
    kv_bytes = kv_bytes_per_gpu(ddep, prompt)
    transfer = kv_transfer_s(kv_bytes, link, ddep.cluster)
    exposed = exposed_transfer_s(transfer, t_p, ddep.model.num_layers, link.layerwise)
    cap_d = _decode_slots(ddep, decode, prompt, output)
    tpot = _tpot_curve(dk, cap_d, prompt, output)

    c = concurrency if concurrency is not None else decode.workers * cap_d
    b, lam, wait, decode_wait = _operating_point(c, decode.workers, cap_d, tpot, output,
                                                 t_p, mu_p, exposed)
    d_time = (output - 1) * tpot(b)
    ttft = t_p + wait + exposed + decode_wait
    gpus = prefill.num_gpus + decode.num_gpus
    mu_p_worker = mu_p / prefill.workers
    # balance at the workload's decode batch (all requests in flight decoding, as a balanced
    # deployment runs), not at this operating point's (a starved decode pool looks balanced)
    b_bal = min(float(cap_d), max(1.0, c / decode.workers))
    d_bal = (output - 1) * tpot(b_bal)
    mu_d_worker = (b_bal / d_bal) if d_bal > 0 else math.inf
    ratio = mu_d_worker / mu_p_worker
    rho_p, rho_d = lam / mu_p, b / cap_d  # prefill busy fraction, decode slots in use
    return DisaggResult(
        model=pre.model, prefill_hardware=pre.hardware, decode_hardware=ddep.hardware.name,
        prefill_workers=prefill.workers, decode_workers=decode.workers,
        prefill_gpus=prefill.num_gpus, decode_gpus=decode.num_gpus, prompt=prompt,
        output=output, concurrency=c, ttft_s=ttft, tpot_s=tpot(b), e2e_s=ttft + d_time,
        prefill_s=t_p, prefill_queue_s=wait, kv_bytes_per_decode_gpu=kv_bytes,
        kv_transfer_s=transfer, kv_exposed_s=exposed, decode_wait_s=decode_wait,
        decode_batch_per_worker=b, requests_per_s=lam, output_tokens_per_s=lam * output,
        output_tokens_per_s_per_gpu=lam * output / gpus,
        input_tokens_per_s_per_prefill_gpu=lam * prompt / prefill.num_gpus,
        prefill_utilization=rho_p, decode_utilization=rho_d,
        balanced_prefill_per_decode=ratio, suggested_xpyd=_suggest(ratio, prefill, decode),
        bottleneck="prefill" if rho_p >= rho_d else "decode")


def _check_pools(prefill: PoolSpec, decode: PoolSpec) -> None:
    """Both pools are pool specs with at least one worker (one line that says which is not)."""
    for role, pool in (("prefill", prefill), ("decode", decode)):
        if not isinstance(pool, PoolSpec):
            raise ConfigError(f"{role} pool must be a PoolSpec (parse_pool('workers=1,tp=8'))")
        if pool.workers < 1:
            raise ConfigError(f"--{role}-pool has workers=0: a disaggregated deployment needs "
                              f"at least one {role} worker")


def _prefill_pool(pk: dict, prefill: PoolSpec, prompt: int):
    """A prefill worker's static estimate, its step time ``t_p`` and the pool's capacity
    ``mu_p = x n_p dp / t_p`` requests/s, ``n_p = max_num_batched_tokens // prompt`` prompts
    per step and DP rank (at least 1, at most ``max_num_seqs``)."""
    n_p = 1
    if prefill.max_num_batched_tokens:
        n_p = max(1, min(prefill.max_num_seqs, prefill.max_num_batched_tokens // prompt))
    pre = estimate(**pk, batch=n_p * prefill.dp, prompt=prompt, output=1)
    t_p = pre.ttft_s
    return pre, t_p, prefill.workers * n_p * prefill.dp / t_p


def _decode_slots(ddep: Deployment, decode: PoolSpec, prompt: int, output: int) -> int:
    """The requests a decode worker holds: ``max_num_seqs x dp``, at most those whose KV fits
    (activations: one step of its ``max_num_batched_tokens``, default 8192, as engines
    pre-allocate; it runs no prefill)."""
    fit = decode.dp * max_sequences(ddep.model, ddep.cluster, ddep.plan, ddep.precision,
                                    prompt + output,
                                    max_tokens=decode.max_num_batched_tokens or 8192)
    if fit < 1:
        raise ConfigError(f"a decode worker (tp {decode.tp}, pp {decode.pp}, dp {decode.dp}) "
                          f"cannot hold the KV of one {prompt}+{output}-token request; raise "
                          "its tp / pp or use --kv-dtype fp8")
    return min(decode.max_num_seqs * decode.dp, fit)


def _tpot_curve(dk: dict, cap_d: int, prompt: int, output: int) -> Callable[[float], float]:
    """``TPOT(b)``: a decode worker's static-batch TPOT at ``ceil(b)`` requests (1 to
    ``cap_d``), each batch size estimated once."""
    cache: dict[int, float] = {}

    def tpot(b: float) -> float:
        key = max(1, min(cap_d, math.ceil(b)))
        if key not in cache:
            # memory is checked by _decode_slots (KV of the decode batch); the static estimate
            # would also count the whole batch's prefill activations, which a decode worker
            # never runs
            cache[key] = (estimate(**dk, batch=key, prompt=prompt, output=output,
                                   allow_overflow=True).tpot_s if output > 1 else 0.0)
        return cache[key]

    return tpot


def _operating_point(c: int, workers: int, cap_d: int, tpot: Callable[[float], float],
                     output: int, t_p: float, mu_p: float,
                     exposed: float) -> tuple[float, float, float, float]:
    """The decode batch per worker ``b``, the request rate ``lambda``, the prefill queue wait
    and the wait for a decode slot: a damped fixed point on ``b = lambda D(b) / y`` around
    :func:`_solve_rate`; a saturated decode pool caps ``lambda`` at ``y b / D`` and the rest
    of the loop's time is spent waiting for a slot."""
    b = min(cap_d, max(1.0, c / workers))
    lam = wait = 0.0
    for _ in range(60):
        d_time = (output - 1) * tpot(b)
        lam, wait = _solve_rate(c, t_p, mu_p, exposed, d_time)
        new_b = min(float(cap_d), max(1.0, lam * d_time / workers))
        if abs(new_b - b) < 1e-3:
            b = new_b
            break
        b = 0.5 * (b + new_b)
    d_time = (output - 1) * tpot(b)
    decode_wait = 0.0
    mu_d_pool = workers * b / d_time if d_time > 0 else math.inf
    if lam > mu_d_pool * (1 + 1e-9):  # decode saturated: requests wait for a slot
        lam = mu_d_pool
        decode_wait = max(0.0, c / lam - d_time - (t_p + exposed))
    return b, lam, wait, decode_wait


def _solve_rate(c: float, t_p: float, mu_p: float, exposed: float,
                d_time: float) -> tuple[float, float]:
    """The arrival rate ``lambda`` with ``lambda (t_p + W(lambda) + exposed + D) = c`` and the
    prefill queue wait ``W`` at it (bisection; W grows without bound as lambda -> mu_p)."""
    def wait(lam: float) -> float:
        rho = lam / mu_p
        return t_p * rho / (2.0 * (1.0 - rho))

    lo, hi = 0.0, min(mu_p * (1 - 1e-9), c / (t_p + exposed + d_time))
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if mid * (t_p + wait(mid) + exposed + d_time) < c:
            lo = mid
        else:
            hi = mid
    return lo, wait(lo)


def _suggest(ratio: float, prefill: PoolSpec, decode: PoolSpec) -> str:
    """The smallest xPyD (up to 16 workers a side) with ``x / y`` within 10% of ``ratio``
    (else the closest), e.g. ``3P1D``."""
    cands = [(abs(math.log(x / (y * ratio))), x + y, x, y)
             for y in range(1, 17) for x in range(1, 17)]
    close = [c for c in cands if c[0] <= math.log(1.1)]
    _, _, x, y = min(close, key=lambda c: (c[1], c[0])) if close else min(cands)
    return f"{x}P{y}D"
