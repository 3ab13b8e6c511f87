"""Training throughput of both trainers with 1 and 2 processes (torchrun, gloo on CPUs) and peak memory.

    python bench/bench_training.py        (after `dvc repro features train_music2vec`; writes bench/results/training.json)

Separator: chunks per second over one epoch of STEPS dynamically mixed global batches
(params.yaml's separator and device; validation excluded). music2vec: crops per second over EPOCHS epochs of
the training clips. Each is run in one process with 1 and with 2 threads, and under
`torchrun --standalone --nproc_per_node=2` with 1 thread per process (as torchrun sets
it). Scaling efficiency = throughput with N processes / (N x throughput of 1 process
with 1 thread); both cores of this machine are used in the 2-thread and 2-process runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakRss, write_result  # noqa: E402

from danet_music2vec import distributed  # noqa: E402
from danet_music2vec.devices import resolve_device  # noqa: E402
from danet_music2vec.features import FeatureStore  # noqa: E402
from danet_music2vec.music2vec_training import load_clip_set, train  # noqa: E402
from danet_music2vec.params import Music2VecParams, Params, SeparatorParams, load_params  # noqa: E402
from danet_music2vec.separator_training import train_separator  # noqa: E402

STEPS = 50  # separator global batches
EPOCHS = 2  # music2vec epochs


def separator_config(params: Params, overrides: dict | None = None) -> SeparatorParams:
    """params.yaml's separator, one epoch of STEPS batches without validation, then ``overrides`` (nested dicts merge)."""
    data = params.separator.model_dump()
    for group in ("chimera", "danet"):
        data[group] |= {"kmeans_epochs": 0}
    data |= {"epochs": 1, "steps_per_epoch": STEPS, "val_fraction": 0.0}
    for key, value in (overrides or {}).items():
        data[key] = data[key] | value if isinstance(value, dict) else value
    return SeparatorParams.model_validate(data)


def music2vec_config(params: Params) -> Music2VecParams:
    return params.music2vec.model_copy(update={"epochs": EPOCHS})


def measure(trainer: str, world: distributed.World, overrides: dict | None = None) -> dict[str, float]:
    """Throughput of ``trainer`` on this process's world, and this process's peak RSS."""
    params = load_params()
    with tempfile.TemporaryDirectory() as tmp, PeakRss() as mem:
        if trainer == "separator":
            cfg = separator_config(params, overrides)
            result = train_separator(FeatureStore("data/features"), cfg, Path(tmp) / "ckpt.pt", noises=params.noises,
                                     world=world, progress=False)  # fmt: skip
            rate, unit = result.chunks_per_s, "chunks_per_s"
        else:
            cfg = music2vec_config(params)
            clips = load_clip_set(pd.read_parquet("data/splits.parquet"), ".", cfg.sample_rate)
            start = time.perf_counter()
            train(cfg, clips, Path(tmp) / "ckpt.pt", progress=False, world=world)
            rate, unit = EPOCHS * len(clips.waves) * cfg.crops_per_clip / (time.perf_counter() - start), "crops_per_s"
    return {unit: rate, "peak_rss_mib": mem.peak_mib}


def worker(trainer: str, out: str, overrides: str) -> None:
    """One rank under torchrun; rank 0 writes the measurement, with the peak RSS of every rank."""
    params = load_params()
    device = getattr(params, trainer).device
    with distributed.join(device) as world:
        result = measure(trainer, world, json.loads(overrides))
        peaks = world.sum([result["peak_rss_mib"] if r == world.rank else 0.0 for r in range(world.size)])
        if world.is_main:
            Path(out).write_text(json.dumps(result | {"peak_rss_mib_per_process": peaks}))


def under_torchrun(trainer: str, nproc: int, overrides: dict | None = None) -> dict[str, float]:
    """:func:`measure` in ``nproc`` processes started by ``torchrun --standalone`` (one thread each)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = os.environ | {"OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", __file__,
                   "--worker", trainer, str(out), json.dumps(overrides or {})]  # fmt: skip
        subprocess.run(command, check=True, env=env)
        return json.loads(out.read_text())


def main() -> None:
    runs = []
    for trainer in ("separator", "music2vec"):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            world = distributed.World(device=resolve_device(getattr(load_params(), trainer).device))
            runs.append({"trainer": trainer, "processes": 1, "threads_per_process": threads} | measure(trainer, world))
        runs.append({"trainer": trainer, "processes": 2, "threads_per_process": 1} | under_torchrun(trainer, 2))
        unit = "chunks_per_s" if trainer == "separator" else "crops_per_s"
        single = runs[-3][unit]
        for run in runs[-3:]:
            run["scaling_efficiency"] = run[unit] / (run["processes"] * run["threads_per_process"] * single)
    params = load_params()
    write_result("training", {"benchmark": "training", "separator_params": params.separator.used(),
                              "music2vec_params": params.music2vec.model_dump(mode="json"),
                              "separator_steps": STEPS, "music2vec_epochs": EPOCHS, "runs": runs})  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        torch.set_num_threads(1)
        worker(*sys.argv[2:5])
    else:
        main()
