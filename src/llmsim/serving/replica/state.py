"""A replica's state: its queues, the running aggregates of its decoding set, the in-flight
segment and its counters -- and the cheap per-request views the schedulers read.

Everything the step loop needs per step is a plain attribute of the replica (one object, no
indirection on the hot path); the per-request state lives in the shared ``RequestTable``
columns. The decoding set is kept *lazily* (see :mod:`.decodeset`): per step only the
aggregates below change -- ``n_dec`` / ``n_live`` sequences, ``dec_ctx`` (the step's keys
read), the decode ``tick`` -- never one entry per request.

The behaviour is added by the classes built on :class:`ReplicaState`, one concern each:
:class:`~.decodeset.DecodeSet`, :class:`~.admission.Admission`,
:class:`~.planner.RunPlanner`, :class:`~.commit.Commit` and the step loop,
:class:`~.engine.Replica`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from llmsim.serving.kvcache import KVCache
from llmsim.serving.metrics import LogHistogram
from llmsim.serving.pricing import StepPricer
from llmsim.serving.replica.segment import Segment
from llmsim.serving.request import RequestStatus, RequestTable
from llmsim.serving.schedulers.base import Order, SchedulerLimits, make_queue

# request statuses as plain ints (cheaper to store in the status column than the enum members)
WAITING = int(RequestStatus.WAITING)
RUNNING = int(RequestStatus.RUNNING)
SWAPPED = int(RequestStatus.SWAPPED)
FINISHED = int(RequestStatus.FINISHED)


class ReplicaState:
    """The state of one replica (see the module docstring); no behaviour beyond views.

    ``index``: the replica's number; ``loop``: the ``EventLoop``; ``table``: the shared
    ``RequestTable``; ``workload``: for prefix-cache keys; ``scheduler`` and its ``limits``;
    ``order``: of the waiting queue; ``kv``: this replica's ``KVCache``; ``pricer``: its
    ``StepPricer``; ``itl_hist``: the shared ITL histogram; ``on_finish(rid, now)``: called
    at every finish; ``swap``: preempt by swap while host space allows; ``trace_steps`` /
    ``trace_limit``: chrome-trace rows; ``closed_form``: decode runs in closed form (else
    every step priced one by one); ``multi_phase``: a run may cross finishes (off with
    closed-loop clients); ``next_arrival()``: the time of the next arrival (a run's horizon).
    """

    def __init__(self, index: int, loop: Any, table: RequestTable, workload: Any,
                 scheduler: Any, limits: SchedulerLimits, order: Order, kv: KVCache,
                 pricer: StepPricer, itl_hist: LogHistogram, on_finish: Any,
                 swap: bool = False, trace_steps: list | None = None,
                 trace_limit: int = 200_000, closed_form: bool = True,
                 multi_phase: bool = True, next_arrival: Any = None):
        self.index = index
        self.loop = loop
        self.table = table
        self.workload = workload
        self.scheduler = scheduler
        self.limits = limits
        self.kv = kv
        self.bs = kv.block_size
        self.pricer = pricer
        self.hist = itl_hist
        self.on_finish = on_finish
        self.swap_enabled = swap
        self.trace_steps = trace_steps
        self.trace_limit = trace_limit
        self.closed_form = closed_form
        self.multi_phase = multi_phase and closed_form
        self.next_arrival = next_arrival or (lambda: math.inf)
        self.prefix = kv.prefix_caching and workload.has_prefix_keys
        self.admits_mid_batch = scheduler.admits_mid_batch
        self.hold_finished = scheduler.hold_finished
        self.waiting = make_queue(order, table)
        self.order = order
        self.running: dict[int, None] = {}
        self.prefilling: dict[int, None] = {}
        self.swapped: deque[int] = deque()
        self.pkeys: dict[int, list[int]] = {}  # prompt block keys considered (prefix caching)
        self.kheld: dict[int, int] = {}  # how many of pkeys are referenced
        # decode aggregates (see DecodeSet); decode ticks count the decode steps
        self.n_dec = 0  # decoding sequences priced (incl. static-batch padding)
        self.n_live = 0  # decoding sequences still producing tokens
        self.dec_ctx = 0  # sum over decoding sequences of (cached tokens + 1)
        self.res = [0] * self.bs  # block-boundary phase histogram of live decoders
        self.fin: list[tuple[int, int, int]] = []  # (finish tick, stint, rid)
        self.live: dict[int, int] = {}  # live decoder -> its stint (validates ``fin``)
        self.joiners: list[int] = []
        self.zombies: list[tuple[int, int, int]] = []  # (rid, tick at finish, cached at finish)
        self.tick = 0
        self.reserved_through = 0
        self.last_decode_end = 0.0
        self._stk_t: list[int] = []
        self._stk_v: list[float] = []
        # in-flight step
        self.seg: Segment | None = None
        self.kick_pending = False
        self.wake_event = 0
        # counters
        self.busy_s = 0.0
        self.num_steps = 0
        self.num_segments = 0
        self.output_tokens = 0
        self.prefill_tokens = 0
        self.preemptions = 0
        self.swapped_out_tokens = 0
        self.hit_tokens = 0
        self.query_tokens = 0
        self.w_steps = self.w_tokens = self.w_logits = 0.0  # work features (see WorkFit)
        self.w_pairs = self.w_pctx = self.w_dctx = 0.0

    # ------------------------------------------------------------------ views for schedulers
    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def work(self) -> list[float]:
        """Summed step features ``[steps, tokens, logits, prefill pairs, prefill keys, decode
        keys]`` (see ``pricing.WorkFit``)."""
        return [self.w_steps, self.w_tokens, self.w_logits, self.w_pairs, self.w_pctx,
                self.w_dctx]

    def arrival_s(self, rid: int) -> float:
        return self.table.arrival_s[rid]

    def known_tokens(self, rid: int) -> int:
        t = self.table
        return t.input_tokens[rid] + t.generated[rid]

    def remaining_prompt(self, rid: int) -> int:
        return self.known_tokens(rid) - self.table.computed[rid]

    def decode_blocks_after_prompt(self, rid: int) -> int:
        """Blocks a request will still need after its prompt (static-batch reservation)."""
        t = self.table
        p, o = t.input_tokens[rid], t.output_tokens[rid]
        return -(-(p + o - 1) // self.bs) - (-(-p // self.bs))
