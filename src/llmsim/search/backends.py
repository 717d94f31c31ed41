"""Where the simulation stage's tasks run: ``local`` (a process pool, default all cores;
one worker runs in this process) or ``ray`` (the optional extra: ``pip install 'llmsim[ray]'``;
``ray.init(address=...)`` joins a cluster, none starts a local instance). Both run the same
task function (:func:`llmsim.search.evaluate.evaluate_plan`) and keep at most ``workers``
tasks in flight, so the caller's ``skip(task)`` (the branch-and-bound prune) sees every result
finished before it decides on the next task."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from llmsim.errors import ConfigError

Task = dict[str, Any]
BACKENDS = ("local", "ray")


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def run_tasks(tasks: Iterable[Task], fn: Callable[[Task], dict[str, Any]], *,
              skip: Callable[[Task], bool], on_result: Callable[[dict[str, Any]], None],
              backend: str = "local", workers: int | None = None,
              address: str | None = None) -> None:
    """Run ``fn`` on every task not ``skip``-ped (checked just before submitting it), calling
    ``on_result`` with each result in this process as it finishes."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
    n = workers or default_workers()
    if n < 1:
        raise ConfigError(f"--workers must be >= 1, got {n}")
    if backend == "ray":
        _run_ray(tasks, fn, skip, on_result, n, address)
    elif n == 1:
        for task in tasks:
            if not skip(task):
                on_result(fn(task))
    else:
        _run_pool(tasks, fn, skip, on_result, n)


def _run_pool(tasks: Iterable[Task], fn: Callable, skip: Callable, on_result: Callable,
              n: int) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    it = iter(tasks)
    with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as pool:
        running: set = set()
        while True:
            while len(running) < n:
                task = _next(it, skip)
                if task is None:
                    break
                running.add(pool.submit(fn, task))
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                on_result(fut.result())


def _run_ray(tasks: Iterable[Task], fn: Callable, skip: Callable, on_result: Callable,
             n: int, address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'llmsim[ray]'") from None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=n, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False)
    remote = ray.remote(fn)
    it = iter(tasks)
    running: list = []
    while True:
        while len(running) < n:
            task = _next(it, skip)
            if task is None:
                break
            running.append(remote.remote(task))
        if not running:
            return
        done, running = ray.wait(running, num_returns=1)
        for ref in done:
            on_result(ray.get(ref))


def _next(it: Any, skip: Callable[[Task], bool]) -> Task | None:
    for task in it:
        if not skip(task):
            return task
    return None
