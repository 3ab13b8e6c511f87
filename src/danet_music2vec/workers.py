"""Per-item work in parallel: the score and sweep stages' mixtures, each scored by one of ``workers`` processes.

BSS Eval (numpy FFTs and small solves) and the separator's BLSTM on one 12 s mixture use a second
core poorly, so ``workers`` single-threaded processes go faster than one process with every
thread. Every item is computed with one thread (torch and BLAS) whatever ``workers`` is, in a
worker or in this process, so the numbers do not depend on how many processes computed them.

A killed stage resumes: with a :class:`Finished` folder, every item's result is kept on disk as it
comes, under a key that hashes what the item reads, and the rerun takes those instead of computing them.

Workers are spawned, not forked (a forked copy of a process that already ran torch's thread pools
can deadlock), so ``fn`` must be a module-level function and ``context`` and the items must pickle.
``context`` (the models, the settings) goes to each worker once, not with every item.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from danet_music2vec.atomic import write_json

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


class Finished:
    """Results of items a stage already computed, one JSON file per item key, so that a killed stage's rerun skips
    them. ``encode`` / ``decode`` turn a result into JSON-able data and back; ``reused`` counts the items taken."""

    def __init__(self, folder: str | os.PathLike[str], encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> None:
        self.folder, self.encode, self.decode, self.reused = Path(folder), encode, decode, 0

    def get(self, key: str) -> Any | None:
        path = self.folder / f"{key}.json"
        if not path.is_file():
            return None
        try:
            result = self.decode(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):  # a file of another version of the code: computed again
            return None
        self.reused += 1
        return result

    def put(self, key: str, result: Any) -> None:
        write_json(self.folder / f"{key}.json", self.encode(result))

    def remove(self) -> None:
        """Called once the stage's outputs are written: nothing is left to resume."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def done(self, stage: str) -> None:
        """:meth:`remove`, and say how many items were taken from an earlier run (or from a Kubeflow run's shards)."""
        self.remove()
        if self.reused:
            print(f"{stage}: resumed: {self.reused} test mixtures were taken from {self.folder} (an earlier run or shards)")


def item_key(context: str, item: Any, files: Iterable[str | os.PathLike[str]]) -> str:
    """A hash of what one item reads: ``context`` (settings, model hashes), the item itself (JSON, arrays as lists),
    the bytes of ``files`` and the library's code; any change makes a new key, so a stale result is never taken."""
    digest = hashlib.sha256(_code_hash().encode() + context.encode())
    digest.update(json.dumps(item, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)).encode())
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:32]


@lru_cache(maxsize=1)
def _code_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def map_items(
    fn: Callable[[C, T], R],
    context: C,
    items: Sequence[T],
    workers: int,
    desc: str,
    progress: bool = True,
    finished: Finished | None = None,
    keys: Sequence[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[R]:
    """``[fn(context, item) for item in items]``, in order, computed by ``workers`` processes (1: in this process).

    With ``finished`` (and one key per item), items found there are not computed again, and every computed result
    is put there as it comes. ``on_progress(done, total)`` is called once the kept items are taken and after each
    item (e.g. to log the stage's progress to its MLflow run)."""
    if workers < 1:
        raise ValueError(f"workers={workers}: need at least 1 process")
    if finished is not None and (keys is None or len(keys) != len(items)):
        raise ValueError("finished items need one key per item")
    results: list[Any] = [None] * len(items)
    todo = list(range(len(items)))
    if finished is not None and keys is not None:
        for i, key in enumerate(keys):
            results[i] = finished.get(key)
        todo = [i for i in todo if results[i] is None]
    done = len(items) - len(todo)
    bar = tqdm(total=len(items), initial=done, desc=desc, unit="item", disable=not progress)
    if on_progress is not None:
        on_progress(done, len(items))
    try:
        for i, result in zip(todo, _compute(fn, context, [items[i] for i in todo], workers)):
            results[i] = result
            if finished is not None and keys is not None:
                finished.put(keys[i], result)
            bar.update()
            done += 1
            if on_progress is not None:
                on_progress(done, len(items))
    finally:
        bar.close()
    return results


def _compute(fn: Callable[[C, T], R], context: C, items: list[T], workers: int) -> Iterator[R]:
    if workers == 1 or len(items) <= 1:
        with single_threaded():
            yield from (fn(context, item) for item in items)
        return
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=spawn, initializer=_start_worker,
                             initargs=(fn, context)) as pool:  # fmt: skip
        try:
            yield from pool.map(_run_item, items)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # an error or a signal: drop what has not started
            raise
