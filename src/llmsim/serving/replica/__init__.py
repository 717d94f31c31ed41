"""One model replica: waiting queue, running batch, paged KV cache, and the step loop.

The replica executes its scheduler's plans: it prices each step with the ``StepPricer`` (the
``StepTimeModel``), schedules the step's end on the event loop, and commits the step's effects
when it ends. Decoding requests are tracked *lazily* so that a step costs O(1) however many
requests decode in it, and runs of decode steps between two events that change the batch are
advanced in closed form (``closed_form=False`` prices every step one by one: the reference the
tests compare with). Speed (DESIGN "Speed is a feature"): the step loop runs a few times per
request, so the hot paths avoid per-step object churn and helper calls where that is cheap to do
readably; the results are those of the plain formulation.

Surfaces: a replica is built from a frozen :class:`ReplicaConfig` (its settings) and the run's
shared objects; its scheduler and the router see it as a
:class:`~llmsim.serving.schedulers.view.ReplicaView` (queues, aggregates, decision helpers);
the sampler reads ``sample(now)``; at the end it hands over a ``ReplicaStats`` record
(``stats()``), which ``metrics.replica_summary`` turns into the summary fields. Outside its
own package only the consistency tests read its internals.

Modules, each importing only those above it (one class per concern; ``Replica`` combines
them, so the hot path reads plain attributes of one object)::

    settings    ReplicaConfig: the replica's fixed settings (frozen)
    segment     Segment, PhasedRun: what is in flight; cutting a run at an arrival
    kvblocks    KV blocks a decode run needs, from the block-boundary phase histogram
    state       ReplicaState: queues, decode aggregates, counters; views for schedulers;
                the counters as a ``ReplicaStats`` record (``stats()``)
    decodeset   DecodeSet: lazy join / leave of the decoding set, decode-step reservation
    admission   Admission: admit, extend, swap in, preempt; per-request KV blocks
    planner     RunPlanner: price the head step, plan the closed-form decode run
    commit      Commit: apply a finished segment (tokens, gaps, finishes, blocks, counters)
    engine      Replica: the step loop on the event loop; views for router and sampler
    itls        ItlReplica: a Replica that also logs every token's time (opt-in, save_itls)
"""

from llmsim.serving.replica.engine import PRIO_ARRIVAL, PRIO_KICK, PRIO_SAMPLE, PRIO_STEP, Replica
from llmsim.serving.replica.settings import ReplicaConfig

__all__ = ["PRIO_ARRIVAL", "PRIO_KICK", "PRIO_SAMPLE", "PRIO_STEP", "Replica", "ReplicaConfig"]
