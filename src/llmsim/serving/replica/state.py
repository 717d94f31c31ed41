"""A replica's state: its queues, the running aggregates of its decoding set, the in-flight
segment and its counters; the cheap per-request views the schedulers read (part of the
``ReplicaView`` of :mod:`llmsim.serving.schedulers.view`); ``stats()``: the counters as a
frozen ``metrics.ReplicaStats`` record.

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
from collections.abc import Callable

from llmsim.serving.events import EventLoop
from llmsim.serving.kvcache import KVCache
from llmsim.serving.metrics import LogHistogram, ReplicaStats
from llmsim.serving.pricing import StepPricer
from llmsim.serving.replica.segment import Segment
from llmsim.serving.replica.settings import ReplicaConfig
from llmsim.serving.request import RequestStatus, RequestTable
from llmsim.serving.schedulers.base import Scheduler, make_queue
from llmsim.workload.stream import Workload

# request statuses as plain ints (cheaper to store in the status column than the enum members)
WAITING = int(RequestStatus.WAITING)
RUNNING = int(RequestStatus.RUNNING)
SWAPPED = int(RequestStatus.SWAPPED)
FINISHED = int(RequestStatus.FINISHED)


class ReplicaState:
    """The state of one replica (see the module docstring); no behaviour beyond views.

    ``config``: its fixed settings (:class:`~.settings.ReplicaConfig`, copied into plain
    attributes); ``scheduler``: its policy; ``kv``: its ``KVCache``. Shared with the other
    replicas of the run (keywords): ``loop``: the ``EventLoop``; ``table``: the
    ``RequestTable``; ``workload``: for prefix-cache keys; ``pricer``: the ``StepPricer``;
    ``itl_hist``: the ITL histogram; ``on_finish(rid, now)``: called at every finish;
    ``next_arrival()``: the time of the next arrival (a run's horizon); ``trace_steps``: the
    chrome-trace rows (None: no trace).
    """

    def __init__(self, config: ReplicaConfig, scheduler: Scheduler, kv: KVCache, *,
                 loop: EventLoop, table: RequestTable, workload: Workload,
                 pricer: StepPricer, itl_hist: LogHistogram,
                 on_finish: Callable[[int, float], None],
                 next_arrival: Callable[[], float] | None = None,
                 trace_steps: list[tuple] | None = None):
        self.config = config
        self.index = config.index
        self.loop = loop
        self.table = table
        self.workload = workload
        self.scheduler = scheduler
        self.kv = kv
        self.bs = kv.block_size
        self.pricer = pricer
        self.hist = itl_hist
        self.on_finish = on_finish
        self.swap_enabled = config.swap_enabled
        self.reserve_full = config.reserve_full_kv
        self.reserved: dict[int, int] = {}  # running request -> its whole-KV blocks
        self.reserved_blocks = 0  # their sum (reserve_full only)
        self.trace_steps = trace_steps
        self.trace_limit = config.trace_limit
        self.closed_form = config.closed_form
        self.beam = config.beam  # beams per request: each block crossing takes beam blocks
        self.multi_phase = config.multi_phase and config.closed_form
        self.next_arrival = next_arrival or (lambda: math.inf)
        self.prefix = kv.prefix_caching and workload.has_prefix_keys
        self.admits_mid_batch = scheduler.admits_mid_batch
        self.hold_finished = scheduler.hold_finished
        self.order = config.order
        self.waiting = make_queue(config.order, table)
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

    # ------------------------------------------------------------------ the run's record
    def stats(self) -> ReplicaStats:
        """What this replica counted so far, as a frozen record (the report reads these, never
        the counters themselves; they stay plain attributes for the hot path)."""
        kv = self.kv
        return ReplicaStats(
            index=self.index, busy_s=self.busy_s, num_steps=self.num_steps,
            num_segments=self.num_segments, output_tokens=self.output_tokens,
            prefill_tokens=self.prefill_tokens, preemptions=self.preemptions,
            swapped_out_tokens=self.swapped_out_tokens, prefix_hit_tokens=self.hit_tokens,
            prefix_query_tokens=self.query_tokens, work_steps=self.w_steps,
            work_tokens=self.w_tokens, work_logits=self.w_logits,
            work_prefill_pairs=self.w_pairs, work_prefill_ctx_tokens=self.w_pctx,
            work_decode_ctx_tokens=self.w_dctx, kv_total_blocks=kv.total,
            kv_peak_used_blocks=kv.peak_used, kv_evictions=kv.evictions)
