"""Helpers for the benchmark scripts: peak memory, JSON output, thread settings."""

from __future__ import annotations

import json
import math
import platform
import resource
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import torch

from danet_music2vec.devices import resolve_precision

RESULTS = Path(__file__).resolve().parent / "results"


class PeakRss:
    """Peak resident memory (MiB) of this process while the block runs, sampled every 10 ms."""

    def __enter__(self) -> "PeakRss":
        self._proc = psutil.Process()
        self.start_mib = self._proc.memory_info().rss / 2**20
        self.peak_mib = self.start_mib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._proc.memory_info().rss / 2**20)
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` says: timings from two machines differ."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        # What separate.precision: auto resolves to on this CPU (bf16 where it computes bf16 natively).
        "cpu_precision_auto": resolve_precision(torch.device("cpu"), "auto"),
        "cpu_count": psutil.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "platform": platform.platform(),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result | {"machine": machine()}, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path


class TreeRss:
    """Peak memory (MiB) of process ``pid`` and all its descendants, sampled every ``interval`` s.

    ``peak_tree_mib`` is the largest total at one instant: the process's resident set plus each
    descendant's unique set (its private pages). A worker's libraries are shared with the process it
    came from, and a child between ``fork`` and ``exec`` (``git`` started by mlflow) shares all of its
    parent's pages: adding their resident sets would count that memory twice. ``peak_main_mib`` is the
    process's own resident set, ``peak_child_mib`` the largest unique set of one descendant (a worker).

    A unique set costs about 11 ms of CPU to read (the kernel walks the process's page tables), so the
    descendants' are read every ``unique_interval`` s, the process's own resident set (microseconds)
    every ``interval``. Read every 0.1 s, two workers' unique sets took about a fifth of one of the
    machine's two cores from the stage being measured: score at 10x ran 474 s with two workers,
    where the cores were a sixth idle by its CPU time (docs/BENCHMARKS.md, cost curve).
    """

    def __init__(self, pid: int, interval: float = 0.1, unique_interval: float = 1.0) -> None:
        self._proc = psutil.Process(pid)
        self._interval, self._unique_interval = interval, unique_interval
        self.peak_tree_mib = self.peak_main_mib = self.peak_child_mib = 0.0

    def __enter__(self) -> "TreeRss":
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _mib(proc: psutil.Process, unique: bool) -> float:
        try:
            return (proc.memory_full_info().uss if unique else proc.memory_info().rss) / 2**20
        except psutil.Error:  # it ended between listing and reading
            return 0.0

    def _sample(self) -> None:
        child: list[float] = []
        read_at = -math.inf
        while not self._stop.is_set():
            main = self._mib(self._proc, unique=False)
            if time.monotonic() - read_at >= self._unique_interval:
                try:
                    children = self._proc.children(recursive=True)
                except psutil.Error:
                    return
                child, read_at = [self._mib(c, unique=True) for c in children], time.monotonic()
            self.peak_main_mib = max(self.peak_main_mib, main)
            self.peak_child_mib = max([self.peak_child_mib, *child])
            self.peak_tree_mib = max(self.peak_tree_mib, main + sum(child))
            self._stop.wait(self._interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
