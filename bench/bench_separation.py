"""Separation and classification speed on a 30 s track: real-time factors with 1 and 2 threads, peak memory.

    python bench/bench_separation.py      (after `make repro`; writes bench/results/separation.json
                                           and bench/results/classification.json)

The track is 30 s of a real sample clip looped, mixed with a real noise clip at 0 dB.
real_time_factor = processing time / audio time; x_real_time = its inverse.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakRss, write_result  # noqa: E402

from danet_music2vec.audio import load_audio  # noqa: E402
from danet_music2vec.classification import Classifier  # noqa: E402
from danet_music2vec.data.mixing import noise_gains, tile  # noqa: E402
from danet_music2vec.params import load_params  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402

SECONDS = 30.0
REPEATS = 5


def track(rate: int) -> np.ndarray:
    splits = pd.read_parquet("data/splits.parquet")
    music = load_audio(splits[splits["kind"] == "music"]["path"].iloc[0], rate)
    noise = load_audio(splits[splits["kind"] == "noise"]["path"].iloc[0], rate)
    n = int(SECONDS * rate)
    music, noise = tile(music, 0, n), tile(noise, 0, n)
    return music + np.float32(noise_gains(music, [noise], 0.0)[0]) * noise


def measure(fn, wave: np.ndarray, rate: int) -> dict[str, float]:
    fn(wave, rate)  # warm-up (kernels, allocator)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(wave, rate)
        times.append(time.perf_counter() - start)
    # Memory in a separate run: the sampling thread would take CPU from the timed runs.
    with PeakRss() as mem:
        fn(wave, rate)
    median = statistics.median(times)
    return {"seconds": median, "real_time_factor": median / SECONDS, "x_real_time": SECONDS / median, "peak_rss_mib": mem.peak_mib}


def main() -> None:
    params = load_params()
    rate = params.data.sample_rate
    wave = track(rate)
    # The separator file's own inference settings (what the separate stage scored), on the CPU.
    separator = Separator.load("models/separator.pt", device="cpu")
    opts = separator.settings.model_dump(mode="json", exclude_none=True)
    classifier = Classifier.from_checkpoint("models/music2vec.pt", hop_seconds=params.music2vec.test_hop_seconds, device="cpu")
    separation, classification = [], []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        separation.append({"threads": threads} | measure(separator.separate, wave, rate))
        classification.append({"threads": threads} | measure(classifier.predict_proba, wave, rate))
    write_result("separation", {"benchmark": "separation", "track_seconds": SECONDS, "separate_params": opts, "runs": separation})
    write_result("classification", {"benchmark": "classification", "track_seconds": SECONDS, "runs": classification})


if __name__ == "__main__":
    main()
