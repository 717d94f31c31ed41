"""Request streams: arrival processes, length distributions, traces, and the one ``Workload``
(arrays of arrival times and lengths) every consumer reads. Nothing here knows the simulator."""

from llmsim.workload.stream import Workload, build_workload

__all__ = ["Workload", "build_workload"]
