"""Replica schedulers, one file each, registered by name in ``SCHEDULERS``."""

from llmsim.serving.schedulers import chunked, continuous, dynamic, static  # noqa: F401
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

__all__ = ["IDLE", "SCHEDULERS", "FCFSQueue", "Order", "PriorityQueue", "Scheduler",
           "SchedulerBase", "SchedulerLimits", "StepPlan", "make_queue"]
