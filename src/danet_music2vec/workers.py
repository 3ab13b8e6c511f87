"""Per-item work in parallel: the score and sweep stages' mixtures, each scored by one of ``workers`` processes.

BSS Eval (numpy FFTs and small solves) and the separator's BLSTM on one 12 s mixture use a second
core poorly, so ``workers`` single-threaded processes go faster than one process with every
thread. Every item is computed with one thread (torch and BLAS) whatever ``workers`` is, in a
worker or in this process, so the numbers do not depend on how many processes computed them.

Workers are spawned, not forked (a forked copy of a process that already ran torch's thread pools
can deadlock), so ``fn`` must be a module-level function and ``context`` and the items must pickle.
``context`` (the models, the settings) goes to each worker once, not with every item.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")


def worker_count(workers: int | Literal["auto"]) -> int:
    """``workers`` as a number: ``auto`` is one process per core this process may run on."""
    return len(os.sched_getaffinity(0)) if workers == "auto" else int(workers)


@contextmanager
def single_threaded() -> Iterator[None]:
    """torch and the BLAS libraries on one thread inside the block (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


_worker: tuple[Callable[[Any, Any], Any], Any] | None = None  # a worker process's (fn, context)


def _start_worker(fn: Callable[[Any, Any], Any], context: Any) -> None:
    global _worker
    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    _worker = (fn, context)


def _run_item(item: Any) -> Any:
    assert _worker is not None, "a worker runs items only after _start_worker"
    fn, context = _worker
    return fn(context, item)


def map_items(
    fn: Callable[[C, T], R], context: C, items: Sequence[T], workers: int, desc: str, progress: bool = True
) -> list[R]:
    """``[fn(context, item) for item in items]``, in order, computed by ``workers`` processes (1: in this process)."""
    if workers < 1:
        raise ValueError(f"workers={workers}: need at least 1 process")
    bar = tqdm(total=len(items), desc=desc, unit="item", disable=not progress)
    try:
        if workers == 1 or len(items) <= 1:
            with single_threaded():
                return [_tick(bar, fn(context, item)) for item in items]
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=spawn, initializer=_start_worker,
                                 initargs=(fn, context)) as pool:  # fmt: skip
            try:
                return [_tick(bar, result) for result in pool.map(_run_item, items)]
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)  # an error or a signal: drop what has not started
                raise
    finally:
        bar.close()


def _tick(bar: tqdm, result: R) -> R:
    bar.update()
    return result
