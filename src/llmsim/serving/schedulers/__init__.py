"""Replica schedulers, one file each, registered by name in ``SCHEDULERS``; the protocol they
implement (``base.Scheduler``) and the replica surface they schedule through
(``view.ReplicaView``)."""

from llmsim.serving.schedulers import (  # noqa: F401  (registration)
    chunked,
    continuous,
    dynamic,
    inflight,
    prefill_first,
    static,
)
from llmsim.serving.schedulers.base import (
    IDLE,
    SCHEDULERS,
    FCFSQueue,
    Order,
    PriorityQueue,
    Scheduler,
    SchedulerBase,
    SchedulerLimits,
    StepPlan,
    make_queue,
)
from llmsim.serving.schedulers.view import ReplicaView, WaitingQueue

__all__ = ["IDLE", "SCHEDULERS", "FCFSQueue", "Order", "PriorityQueue", "ReplicaView",
           "Scheduler", "SchedulerBase", "SchedulerLimits", "StepPlan", "WaitingQueue",
           "make_queue"]
