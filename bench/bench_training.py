"""Training throughput: DANet chunks per second (default params, 1 epoch over a subset) and peak memory.

    python bench/bench_training.py        (after `dvc repro features`; writes bench/results/training.json)
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakRss, write_result  # noqa: E402

from danet_music2vec.danet_training import DanetTrainConfig, train_danet  # noqa: E402
from danet_music2vec.features import FeatureStore  # noqa: E402
from danet_music2vec.params import load_params  # noqa: E402

STEPS = 50


def main() -> None:
    params = load_params()
    store = FeatureStore("data/features")
    base = DanetTrainConfig.from_params(params["danet"], noises=params["noises"])
    # One epoch of STEPS dynamically mixed batches (validation included, as in every epoch).
    cfg = dataclasses.replace(base, epochs=1, kmeans_epochs=0, steps_per_epoch=STEPS, progress=False, device="cpu")
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp, PeakRss() as mem:
            result = train_danet(store, cfg, Path(tmp) / "ckpt.pt")
        chunks = STEPS * cfg.batch_size
        runs.append({"threads": threads, "chunks": chunks, "chunks_per_s": result.chunks_per_s, "peak_rss_mib": mem.peak_mib})
    write_result("training", {"benchmark": "training_danet", "danet_params": params["danet"], "runs": runs})


if __name__ == "__main__":
    main()
