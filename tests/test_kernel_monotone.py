"""More work never takes less time: every op kind's time is monotone in every shape dimension.

A property test (hypothesis) over shapes, hardware, formats and calibration profiles (the shipped
one, the datasheet roofline, and random curves with every half-saturation constant set): grow
one dimension of a valid shape and the priced time must not fall. The dimensions are those of
``llmsim op``; ``ep`` (more ranks share the work) and a collective's ``num_gpus`` (more links
carry it) are parallelism, not work, and are not tested.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsim.catalog import get_hardware, list_hardware
from llmsim.costmodel import kernels, opcases
from llmsim.costmodel.profile import Profile, ProfileEntry, ProfileFile
from llmsim.estimates.op import price_op

HARDWARE = sorted(h.name for h in list_hardware())
DTYPES = ("bf16", "fp16", "fp8", "int8", "int4")
KV_DTYPES = (None, "fp8", "int4")
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _random_profile(uniform) -> Profile:
    """A profile whose curves set every factor (the shipped one leaves some at 0);
    ``uniform(lo, hi)`` draws one value."""
    def curve():
        return {"compute_eff": uniform(0.2, 1.0), "memory_eff": uniform(0.2, 1.0),
                "launch_s": uniform(0.0, 2e-5),
                **{k: uniform(0.5, 5000.0) for k in ("m_half", "n_half", "k_half")},
                "mn_half": uniform(1.0, 50000.0)}
    entry = ProfileEntry(gemm=curve(), moe=curve(), attention_prefill=curve(),
                         attention_decode=curve(), elementwise=curve())
    return Profile(ProfileFile(entries={"generic": entry}), "random")


@st.composite
def profiles(draw):
    which = draw(st.sampled_from(("default", "none", "random")))
    if which == "default":
        return Profile.load(None)
    if which == "none":
        return Profile.empty()
    return _random_profile(lambda lo, hi: draw(st.floats(lo, hi)))


def _sizes(lo: int = 1, hi: int = 1 << 16):
    """Sizes spread over every octave (small dims are where efficiency curves bend)."""
    return st.builds(lambda e, f: min(hi, max(lo, int(2.0 ** e * f))),
                     st.integers(0, hi.bit_length()), st.floats(1.0, 2.0))


def _grown(draw, value: int) -> int:
    return value + draw(st.sampled_from((1, 2, 3, 7, value, 3 * value, 15 * value)))


def _time(kind: str, hw: str, dtype: str, kv: str | None, prof: Profile, **shape) -> float:
    return price_op(kind, hw, dtype=dtype, kv_dtype=kv, profile=prof, **shape).time_s


def _check(kind, hw, dtype, kv, prof, small: dict, large: dict) -> None:
    t0 = _time(kind, hw, dtype, kv, prof, **small)
    t1 = _time(kind, hw, dtype, kv, prof, **large)
    assert t1 >= t0 * (1 - 1e-12), (kind, hw, dtype, kv, small, large, t0, t1)


common = dict(hw=st.sampled_from(HARDWARE), dtype=st.sampled_from(DTYPES), prof=profiles())


@SETTINGS
@given(data=st.data(), m=_sizes(), n=_sizes(), k=_sizes(), dim=st.sampled_from("mnk"), **common)
def test_gemm_monotone(data, m, n, k, dim, hw, dtype, prof):
    small = {"m": m, "n": n, "k": k}
    large = {**small, dim: _grown(data.draw, small[dim])}
    _check("gemm", hw, dtype, None, prof, small, large)


@st.composite
def attention_shapes(draw):
    """(small, large): num_heads = num_kv_heads x group, grown in one dimension."""
    kvh = draw(st.integers(1, 16))
    group = draw(st.integers(1, 8))
    small = {"batch": draw(_sizes(1, 512)), "len": draw(_sizes(1, 1 << 15)),
             "num_kv_heads": kvh, "head_dim": draw(st.sampled_from((32, 64, 80, 128, 192, 256))),
             "group": group}
    dim = draw(st.sampled_from(("batch", "len", "num_kv_heads", "head_dim", "group")))
    large = dict(small)
    if dim == "num_kv_heads":
        # more KV heads at the same query heads: kvh -> kvh * r, group -> group / r
        small["group"] = group * draw(st.sampled_from((1, 2, 4)))
        r = draw(st.sampled_from([d for d in (1, 2, 4) if small["group"] % d == 0]))
        large = {**small, "num_kv_heads": kvh * r, "group": small["group"] // r}
    else:
        large[dim] = _grown(draw, small[dim])
    return small, large


def _attention(kind: str, s: dict) -> dict:
    key = "seq_len" if kind == "attention-prefill" else "context_len"
    return {"batch": s["batch"], key: s["len"], "num_heads": s["num_kv_heads"] * s["group"],
            "num_kv_heads": s["num_kv_heads"], "head_dim": s["head_dim"]}


@SETTINGS
@given(shapes=attention_shapes(), kind=st.sampled_from(("attention-prefill", "attention-decode")),
       kv=st.sampled_from(KV_DTYPES), **common)
def test_attention_monotone(shapes, kind, kv, hw, dtype, prof):
    small, large = shapes
    if dtype.startswith("int"):
        dtype = "bf16"  # attention has no integer math format; weights do not enter it
    _check(kind, hw, dtype, kv, prof, _attention(kind, small), _attention(kind, large))


@st.composite
def moe_shapes(draw):
    experts = draw(st.integers(1, 256))
    small = {"num_tokens": draw(_sizes(1, 1 << 14)), "hidden_size": draw(_sizes(64, 8192)),
             "intermediate_size": draw(_sizes(64, 8192)), "num_experts": experts,
             "top_k": draw(st.integers(1, experts))}
    dim = draw(st.sampled_from(sorted(small)))
    large = {**small, dim: _grown(draw, small[dim])}
    if large["top_k"] > large["num_experts"]:
        large["top_k"] = large["num_experts"]
        if large == small:
            large["num_experts"] += 1
    return small, large


@SETTINGS
@given(shapes=moe_shapes(), **common)
def test_moe_monotone(shapes, hw, dtype, prof):
    _check("moe", hw, dtype, None, prof, *shapes)


COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "p2p")


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(COLLECTIVES), size=_sizes(1, 1 << 34),
       gpus=st.sampled_from((2, 4, 8)), hw=st.sampled_from(HARDWARE), prof=profiles())
def test_collectives_monotone_in_bytes(data, kind, size, gpus, hw, prof):
    shape = {} if kind == "p2p" else {"num_gpus": gpus}
    _check(kind, hw, "bf16", None, prof, {"message_bytes": size, **shape},
           {"message_bytes": _grown(data.draw, size), **shape})


@pytest.mark.parametrize("hw", ["h100-sxm", "a100-sxm-80gb"])
def test_gemm_time_rises_from_16_to_64_rows(hw):
    """The case of the report: a 4096 x 4096 GEMM fell 1.7-2.5% from m = 16 to 64 on H100."""
    times = [price_op("gemm", hw, m=m, n=4096, k=4096).time_s for m in (1, 8, 16, 32, 48, 64)]
    assert times == sorted(times)


# ----------------------------------------------------------------------------- dense grids
# The same property on a dense grid of every dimension at once (vectorised: the kernel formulas
# take numpy arrays), on every hardware and format, so a narrow bend cannot slip between the
# random examples above.
GRID = np.unique(np.round(np.geomspace(1, 1 << 15, 31)))
SMALL = np.unique(np.round(np.geomspace(1, 256, 12)))


def _grid_times(kind: str, axes: dict[str, np.ndarray], hw: str, dtype: str, kv: str | None,
                prof: Profile) -> np.ndarray:
    spec = get_hardware(hw)
    mesh = dict(zip(axes, np.meshgrid(*axes.values(), indexing="ij"), strict=True))
    if kind == "moe":
        mesh["ep"] = np.ones_like(next(iter(mesh.values())))
    elif kind.startswith("attention"):
        mesh["num_heads"] = mesh["num_kv_heads"] * mesh.pop("group")
    work = opcases.kernel_work(kind, mesh.__getitem__, spec,
                               opcases.case_precision(spec, dtype, None, kv))
    t, *_ = kernels.work_time(work, spec, prof.for_hardware(spec).kernel(opcases.FAMILY[kind]))
    return np.broadcast_to(t, next(iter(mesh.values())).shape)


def _assert_monotone(t: np.ndarray, axes, label) -> None:
    for axis, name in enumerate(axes):
        step = np.diff(t, axis=axis)
        worst = float((step / np.take(t, range(t.shape[axis] - 1), axis=axis)).min())
        assert worst >= -1e-12, f"{label}: time falls by {-worst:.2%} as {name} grows"


GRID_PROFILES = {"default": Profile.load(None), "none": Profile.empty(),
                 **{f"random{i}": _random_profile(np.random.default_rng(i).uniform)
                    for i in range(3)}}


@pytest.mark.parametrize("prof", sorted(GRID_PROFILES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_grid_monotone(dtype, prof):
    axes = {"m": GRID, "n": GRID, "k": SMALL * 64}
    for hw in HARDWARE:
        t = _grid_times("gemm", axes, hw, dtype, None, GRID_PROFILES[prof])
        _assert_monotone(t, axes, f"gemm {hw} {dtype} {prof}")


@pytest.mark.parametrize("prof", sorted(GRID_PROFILES))
@pytest.mark.parametrize("kind", ["attention-prefill", "attention-decode"])
@pytest.mark.parametrize("kv", KV_DTYPES)
def test_attention_grid_monotone(kind, kv, prof):
    length = "seq_len" if kind == "attention-prefill" else "context_len"
    axes = {"batch": SMALL, length: GRID[::2], "num_kv_heads": np.array([1, 2, 4, 8, 16]),
            "group": np.array([1, 2, 4, 8]), "head_dim": np.array([64, 128, 256])}
    for hw in HARDWARE:
        t = _grid_times(kind, axes, hw, "bf16", kv, GRID_PROFILES[prof])
        _assert_monotone(t, axes, f"{kind} {hw} kv {kv} {prof}")


@pytest.mark.parametrize("prof", sorted(GRID_PROFILES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_moe_grid_monotone(dtype, prof):
    axes = {"num_tokens": GRID[::2], "hidden_size": SMALL * 32,
            "intermediate_size": SMALL * 32, "num_experts": np.array([8, 16, 64, 128, 256]),
            "top_k": np.array([1, 2, 4, 8])}
    for hw in HARDWARE[::3]:
        t = _grid_times("moe", axes, hw, dtype, None, GRID_PROFILES[prof])
        _assert_monotone(t, axes, f"moe {hw} {dtype} {prof}")
