"""Where expert weights live: every expert in host memory, a cache of ``C`` slots per MoE layer
and a few staging buffers on the device. Copies follow the shared engine's plans.

Host tensors per layer: ``w13 [E, 2I, h]`` and ``w2 [E, h, I]`` (pinned on CUDA hosts so
copies are asynchronous). Device: ``[C, 2I, h]`` / ``[C, h, I]`` per layer and a pool of
``2P + 2`` staging buffers (P prefetched experts for the layer about to run, P for the next
one, 2 for streaming misses).

On CUDA, copies run on a side stream: a copy into a slot or staging buffer waits for the event
recorded after the last kernel that read it, and the compute stream waits for the copy's event
before the expert runs (so prefetch overlaps the previous layer, as the simulation assumes).
On the CPU the "device" pool is a separate set of CPU tensors and every copy is a synchronous
``copy_`` (no copy engine) -- exactly the simulation's ``async_copy=False`` platform.
"""

from __future__ import annotations

from typing import Any

from llmsim.expert_cache.cache import STAGING, Load
from llmsim.expert_cache_executor._torch import require_torch

torch = require_torch()


class ExpertStore:
    """Host experts, device cache slots and staging buffers (see module docstring)."""

    def __init__(self, host_w13: list[Any], host_w2: list[Any], moe_layers: list[int],
                 capacity: int, prefetch: int, device: str):
        self.device = device
        self.cuda = device.startswith("cuda")
        self.layers = {layer: j for j, layer in enumerate(moe_layers)}
        self.host_w13, self.host_w2 = host_w13, host_w2
        e, i2, h = host_w13[0].shape
        dtype = host_w13[0].dtype
        self.expert_bytes = (host_w13[0][0].numel() + host_w2[0][0].numel()) * \
            host_w13[0].element_size()
        self.dev_w13 = [torch.empty((capacity, i2, h), dtype=dtype, device=device)
                        for _ in moe_layers]
        self.dev_w2 = [torch.empty((capacity, h, i2 // 2), dtype=dtype, device=device)
                       for _ in moe_layers]
        n_stage = 2 * prefetch + 2
        self.stage_w13 = torch.empty((n_stage, i2, h), dtype=dtype, device=device)
        self.stage_w2 = torch.empty((n_stage, h, i2 // 2), dtype=dtype, device=device)
        self._free_stage = list(range(n_stage))
        self._staged: dict[tuple[int, int], int] = {}  # (layer, expert) -> staging buffer
        self.h2d_bytes = 0.0
        self.copies = 0
        if self.cuda:
            self.copy_stream = torch.cuda.Stream(device=device)
            self._slot_ready = [[None] * capacity for _ in moe_layers]
            self._slot_free = [[None] * capacity for _ in moe_layers]
            self._stage_ready: list[Any] = [None] * n_stage
            self._stage_free: list[Any] = [None] * n_stage

    # ------------------------------------------------------------------ filling
    def fill(self, layer: int, slots: tuple[int, ...]) -> None:
        """Synchronously load the initial experts of ``layer`` (untimed setup)."""
        j = self.layers[layer]
        for slot, expert in enumerate(slots):
            if expert >= 0:
                self.dev_w13[j][slot].copy_(self.host_w13[j][expert])
                self.dev_w2[j][slot].copy_(self.host_w2[j][expert])
        self._staged = {k: b for k, b in self._staged.items() if k[0] != layer}
        self._free_stage = sorted(set(range(self.stage_w13.shape[0])) -
                                  set(self._staged.values()))
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self._slot_ready[j] = [None] * len(self._slot_ready[j])
            self._slot_free[j] = [None] * len(self._slot_free[j])

    def reset_counters(self) -> None:
        self.h2d_bytes = 0.0
        self.copies = 0

    # ------------------------------------------------------------------ copies
    def load(self, layer: int, load: Load) -> None:
        """Issue the host->device copy of ``load`` (into its slot, or a staging buffer)."""
        j = self.layers[layer]
        src13, src2 = self.host_w13[j][load.expert], self.host_w2[j][load.expert]
        if load.slot == STAGING:
            if not self._free_stage:
                raise RuntimeError("staging buffers exhausted")  # engine bounds make this rare
            b = self._free_stage.pop(0)
            self._staged[(layer, load.expert)] = b
            dst13, dst2 = self.stage_w13[b], self.stage_w2[b]
            free, ready_list, idx = self._stage_free if self.cuda else None, \
                self._stage_ready if self.cuda else None, b
        else:
            dst13, dst2 = self.dev_w13[j][load.slot], self.dev_w2[j][load.slot]
            free = self._slot_free[j] if self.cuda else None
            ready_list, idx = (self._slot_ready[j] if self.cuda else None), load.slot
        self.h2d_bytes += self.expert_bytes
        self.copies += 1
        if not self.cuda:
            dst13.copy_(src13)
            dst2.copy_(src2)
            return
        with torch.cuda.stream(self.copy_stream):
            if free is not None and free[idx] is not None:
                self.copy_stream.wait_event(free[idx])
            dst13.copy_(src13, non_blocking=True)
            dst2.copy_(src2, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(self.copy_stream)
            ready_list[idx] = ev  # type: ignore[index]

    def weights(self, layer: int, expert: int, slot: int) -> tuple[Any, Any, Any]:
        """``(w13, w2, token)`` of an expert on the device; the compute stream waits for its
        copy. Pass ``token`` to :meth:`release` after launching the expert's kernels."""
        j = self.layers[layer]
        if slot == STAGING:
            b = self._staged[(layer, expert)]
            w13, w2 = self.stage_w13[b], self.stage_w2[b]
            token = ("stage", b, layer, expert)
            ready = self._stage_ready[b] if self.cuda else None
        else:
            w13, w2 = self.dev_w13[j][slot], self.dev_w2[j][slot]
            token = ("slot", j, slot)
            ready = self._slot_ready[j][slot] if self.cuda else None
        if ready is not None:
            torch.cuda.current_stream(self.device).wait_event(ready)
        return w13, w2, token

    def release(self, token: tuple) -> None:
        """The expert's kernels are launched: its buffer may be overwritten after them; a
        staging buffer goes back to the pool."""
        ev = None
        if self.cuda:
            ev = torch.cuda.Event()
            ev.record(torch.cuda.current_stream(self.device))
        if token[0] == "stage":
            _, b, layer, expert = token
            self._staged.pop((layer, expert), None)
            self._free_stage.append(b)
            if ev is not None:
                self._stage_free[b] = ev
        elif ev is not None:
            _, j, slot = token
            self._slot_free[j][slot] = ev

    def drop_staged(self, layer: int) -> None:
        """Free staging buffers of ``layer`` that were prefetched but not used."""
        for key in [k for k in self._staged if k[0] == layer]:
            self._free_stage.append(self._staged.pop(key))

    def host_weights(self, layer: int, expert: int) -> tuple[Any, Any]:
        j = self.layers[layer]
        return self.host_w13[j][expert], self.host_w2[j][expert]
