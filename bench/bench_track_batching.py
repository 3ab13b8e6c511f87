"""Does batching test tracks pay? The separator's network and music2vec on N tracks in one batch against one by one.

    python bench/bench_track_batching.py [--tracks 8] [--seconds 12]   (writes bench/results/track_batching.json)

The test-set stages work on one mixture at a time, one thread per process (src/danet_music2vec/workers.py). This
measures, on one thread, what stacking N tracks into one batch would save: the shipped separator's whole
`separate()` per track (STFTs, resampling and network), its network alone per track, and its network on the N
tracks' spectrograms as one batch; the same for the clean music2vec's crops (every crop of N tracks in one batch
against each track's crops as a batch). Tracks are white noise: the cost does not depend on what they hold.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec.audio import resample  # noqa: E402
from danet_music2vec.classification import Classifier  # noqa: E402
from danet_music2vec.dsp import stft  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402

REPEATS = 3


def timed(fn) -> float:
    fn()  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--classifier", default="models/music2vec.pt")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rate = 22050
    rng = np.random.default_rng(0)
    tracks = [(0.1 * rng.standard_normal(int(args.seconds * rate))).astype(np.float32) for _ in range(args.tracks)]
    separator = Separator.pretrained(device="cpu")
    network = separator.model.eval()
    mags = [stft(torch.from_numpy(resample(t, rate, separator.cfg.sample_rate)), separator.cfg).abs().unsqueeze(0)
            for t in tracks]  # (1, frames, F) each

    with torch.inference_mode():
        whole = timed(lambda: [separator.separate(t, rate) for t in tracks])
        one_by_one = timed(lambda: [network.head_masks(m) for m in mags])
        batched = timed(lambda: network.head_masks(torch.cat(mags)))
    classifier = Classifier.from_checkpoint(args.classifier, device="cpu")
    crops = [torch.from_numpy(classifier.crops(t, rate)) for t in tracks]
    with torch.inference_mode():
        clf_one = timed(lambda: [classifier.model(c) for c in crops])
        clf_batched = timed(lambda: classifier.model(torch.cat(crops)))
    audio = args.tracks * args.seconds
    result = {
        "tracks": args.tracks, "track_seconds": args.seconds, "threads": 1,
        "separate_per_track_s": whole / args.tracks,
        "separator_network_share": one_by_one / whole,
        "separator_network_one_by_one_s": one_by_one, "separator_network_batched_s": batched,
        "separator_network_batch_speedup": one_by_one / batched,
        "separate_whole_speedup_if_batched": whole / (whole - one_by_one + batched),
        "classifier_one_by_one_s": clf_one, "classifier_batched_s": clf_batched,
        "classifier_batch_speedup": clf_one / clf_batched,
        "x_real_time_separate_one_by_one": audio / whole,
    }  # fmt: skip
    for key, value in result.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    write_result("track_batching", result)


if __name__ == "__main__":
    main()
