"""Admission, preemption and the KV blocks of each request: the decision helpers a scheduler
calls (``try_admit``, ``try_extend``, ``try_swap_in``, ``pick_victim``, ``preempt``).

A request holds ``blocks`` KV blocks (``RequestTable.blocks``); with prefix caching the leading
``kheld[rid]`` of them are shared, keyed blocks (``pkeys[rid]``: the prompt's block keys),
referenced and released through the ``KVCache`` by key, the rest private. Admission takes the
blocks of the tokens the first chunk computes (after the prefix-cache hits); a prefilling
request's next chunk extends them. Preemption by swap moves a decoder's blocks to host memory,
by recompute frees them and sends the request back to the front of the queue.

With ``reserve_full`` (``preemption: none``, TensorRT-LLM's ``GUARANTEED_NO_EVICT``: a request
starts only if it can finish without eviction) admission also keeps free the blocks every
running request will still take and the new request's own later blocks: a request is admitted
only if ``R + full(rid) <= blocks`` where ``R`` is the sum of the running requests' whole-KV
blocks, ``full(rid) = ceil(p / bs) + beam x (ceil((p + o - 1) / bs) - ceil(p / bs))`` for ``p``
prompt and ``o`` output tokens (the request's output length stands for its ``max_tokens``,
as with a benchmark's ``ignore_eos``). Blocks are still taken as tokens are computed, so the
cache's use is what it is; only admission waits. Shared prefix blocks are counted once per
request that uses them (conservative).
"""

from __future__ import annotations

from llmsim.serving.replica.decodeset import DecodeSet
from llmsim.serving.replica.state import RUNNING, SWAPPED, WAITING
from llmsim.serving.schedulers.base import Order


class Admission(DecodeSet):
    """Scheduler helpers that admit, extend, swap in and preempt requests; block release."""

    def try_admit(self, rid: int, now: float, budget: int, reserve: int, whole: bool,
                  over_budget_ok: bool = False) -> int:
        """Admit the waiting request ``rid`` (the queue head) with a prompt chunk of at most
        ``budget`` tokens (the whole remaining prompt if ``whole``), keeping ``reserve`` blocks
        free. Returns the tokens scheduled, or 0 (nothing changed) if it does not fit."""
        t, bs, kv = self.table, self.bs, self.kv
        known = t.input_tokens[rid] + t.generated[rid]
        keys: list[int] = []
        start = 0
        if self.prefix:
            nk = min(t.input_tokens[rid] // bs, (known - 1) // bs)
            keys = self.workload.prefix_keys(rid, nk, bs) if nk > 0 else []
            start = kv.match(keys) * bs
        remaining = known - start
        if whole:
            if remaining > budget and not over_budget_ok:
                return 0
            chunk = remaining
        else:
            chunk = remaining if remaining < budget else budget
        nblocks = -(-(start + chunk) // bs)
        if self.reserve_full:
            full = self.full_kv_blocks(rid)
            reserve += max(0, self.reserved_blocks - kv.used) + max(0, full - nblocks)
        if keys:
            use = keys[:nblocks]
            need = kv.blocks_to_acquire(use) + nblocks - len(use)
            if not kv.can_allocate(need, reserve):
                return 0
            kv.acquire(use)
            self.pkeys[rid] = keys
            self.kheld[rid] = len(use)
            kv.allocate(nblocks - len(use))
        else:
            if not kv.can_allocate(nblocks, reserve):
                return 0
            kv.allocate(nblocks)
        t.blocks[rid] = nblocks
        t.computed[rid] = start
        if self.reserve_full:
            self.reserve_whole_kv(rid, full)
        if t.first_scheduled_s[rid] != t.first_scheduled_s[rid]:  # NaN: first admission
            t.first_scheduled_s[rid] = now
            t.cached_tokens[rid] = start
            self.query_tokens += known  # hit rate over first admissions (not recomputes)
            self.hit_tokens += start
        popped = self.waiting.pop()
        assert popped == rid, (popped, rid)
        t.transition(rid, RUNNING)
        self.running[rid] = None
        self.prefilling[rid] = None
        return chunk

    def full_kv_blocks(self, rid: int) -> int:
        """The blocks ``rid`` holds when its last token is computed (module docstring)."""
        t, bs = self.table, self.bs
        p = t.input_tokens[rid]
        prompt = -(-p // bs)
        return prompt + self.beam * (-(-(p + t.output_tokens[rid] - 1) // bs) - prompt)

    def reserve_whole_kv(self, rid: int, full: int | None = None) -> None:
        """Count ``rid``'s whole KV (``full`` blocks) among the running reservations
        (``preemption: none``); :meth:`_free_blocks` takes it back."""
        full = self.full_kv_blocks(rid) if full is None else full
        self.reserved[rid] = full
        self.reserved_blocks += full

    def try_extend(self, rid: int, chunk: int) -> bool:
        """Allocate blocks for the next ``chunk`` prompt tokens of a prefilling request."""
        t, bs, kv = self.table, self.bs, self.kv
        held = t.blocks[rid]
        nblocks = -(-(t.computed[rid] + chunk) // bs)
        if nblocks <= held:
            return True
        keys = self.pkeys.get(rid)
        kh = self.kheld.get(rid, 0)
        use: list[int] = keys[kh:nblocks] if keys and kh == held else []
        need = (kv.blocks_to_acquire(use) if use else 0) + (nblocks - held - len(use))
        if not kv.can_allocate(need):
            return False
        if use:
            kv.acquire(use)
            self.kheld[rid] = kh + len(use)
        kv.allocate(nblocks - held - len(use))
        t.blocks[rid] = nblocks
        return True

    def try_swap_in(self, rid: int, reserve: int) -> int:
        """Bring a swapped request back (FCFS head of ``swapped``); tokens moved, or -1."""
        t = self.table
        blocks = -(-t.computed[rid] // self.bs)
        if not self.kv.can_allocate(blocks, reserve):
            return -1
        self.swapped.popleft()
        self.kv.allocate(blocks)
        self.kv.host_used -= t.blocks[rid]
        t.blocks[rid] = blocks
        t.transition(rid, RUNNING)
        self.running[rid] = None
        self._join(rid)
        return t.computed[rid]

    # ------------------------------------------------------------------ preemption
    def pick_victim(self) -> int | None:
        """The running request to preempt: FCFS -> latest admitted; priority -> the lowest
        priority (largest value), latest arrival among equals."""
        if not self.running:
            return None
        if self.order == Order.FCFS:
            return next(reversed(self.running))
        t = self.table
        return max(self.running, key=lambda r: (int(t.priority[r]), float(t.arrival_s[r]), r))

    def preempt(self, rid: int, now: float) -> int:
        """Preempt ``rid`` by swap (if enabled and host space allows) or recompute. Returns the
        tokens swapped out (0 for recompute)."""
        t = self.table
        del self.running[rid]
        self.preemptions += 1
        t.preemptions[rid] += 1
        if rid in self.prefilling:
            del self.prefilling[rid]
            blocks = t.blocks[rid]
            decoding = False
        else:
            blocks = self._leave(rid)
            decoding = True
            t.last_token_s[rid] = self.last_decode_end if self.tick > int(
                t.join_tick[rid]) else t.last_token_s[rid]
        if (decoding and self.swap_enabled
                and self.kv.host_used + blocks <= self.kv.host_total):
            self._free_blocks(rid, blocks)
            t.blocks[rid] = blocks
            self.kv.host_used += blocks
            t.transition(rid, SWAPPED)
            self.swapped.append(rid)
            tokens = t.computed[rid]
            self.swapped_out_tokens += tokens
            return tokens
        self._free_blocks(rid, blocks)
        t.computed[rid] = 0
        t.transition(rid, WAITING)
        self.waiting.push_front(rid)
        return 0

    # ------------------------------------------------------------------ block release
    def _free_blocks(self, rid: int, blocks: int) -> None:
        """Release the blocks of a request that leaves the GPU (keyed ones by reference)."""
        if self.reserved:
            self.reserved_blocks -= self.reserved.pop(rid, 0)
        held = 0
        if self.kheld:  # prefix caching: keyed blocks are released by reference
            held = self.kheld.pop(rid, 0)
            if held:
                self.kv.release_keys(self.pkeys[rid][:held])
            self.pkeys.pop(rid, None)
        self.kv.release(blocks - held)
        self.table.blocks[rid] = 0
