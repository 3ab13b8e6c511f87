"""Run-time estimate of the paper-scale recipe (full GTZAN + ESC-50, DANet 4 x BLSTM 300) from short runs.

    python bench/bench_paper_scale.py [--nproc 1 8]   (after bench/bench_stages.py; writes bench/results/paper_scale.json)

Measured here, on this machine (CUDA when present, else the CPU threads torch uses):
the paper-size DANet's training throughput (chunks/s over a few hundred chunks of the
sample's features) in one process and, for every ``--nproc N``, in N data-parallel
processes under ``torchrun`` (on a machine with N GPUs, one GPU each; default: 1 and the
GPU count when there are several), and its separation speed on a 30 s track. Taken from
bench/results/stages.json (the sample pipeline, shortened training): the features
stage's audio throughput, music2vec's seconds per epoch per training clip, and the
sweep/score cost per mixture-second. Each is scaled by the full data's size; the sizes
are the recipe's (README: paper-scale recipe) and GTZAN/ESC-50's (1000 x 30 s music clips,
the seed split's 950 train / 50 test; 2000 x 5 s noise clips).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import RESULTS, write_result  # noqa: E402
from bench_separation import SECONDS, track  # noqa: E402
from bench_training import measure, under_torchrun  # noqa: E402

from bench_training import separator_config  # noqa: E402

from danet_music2vec.distributed import World  # noqa: E402
from danet_music2vec.devices import resolve_device  # noqa: E402
from danet_music2vec.features import FeatureStore  # noqa: E402
from danet_music2vec.params import Params, load_params  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402
from danet_music2vec.separator_training import build_network  # noqa: E402

PAPER_DANET = {"architecture": "danet", "hidden": 300, "layers": 4, "epochs": 20, "batch_size": 32, "danet": {"kmeans_epochs": 5}}
TRAIN_CLIPS, TEST_CLIPS, CLIP_SECONDS = 950, 50, 30.0
STEPS = 8  # training batches measured (of 32 chunks)


def danet_training(params: Params, nproc: int) -> float:
    """Chunks per second of the paper-size DANet in ``nproc`` processes, first epochs (ideal attractors) and k-means epochs alike."""
    overrides = PAPER_DANET | {"epochs": 2, "steps_per_epoch": STEPS, "danet": {"kmeans_epochs": 1}}
    if nproc == 1:
        return measure("separator", World(device=resolve_device(params.separator.device)), overrides)["chunks_per_s"]
    return under_torchrun("separator", nproc, overrides)["chunks_per_s"]


def danet_separation(store: FeatureStore, params: Params) -> float:
    """Seconds to separate a 30 s track with an (untrained) paper-size DANet: speed does not depend on weights."""
    cfg = separator_config(params, PAPER_DANET)
    model = build_network(cfg, store.config.n_freq)
    separator = Separator(model, store.config, torch.randn(2, cfg.danet.embedding_dim), params.separate)
    rate = params.data.sample_rate
    wave = track(rate)
    separator.separate(wave, rate)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        separator.separate(wave, rate)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    gpus = torch.cuda.device_count()
    parser.add_argument("--nproc", type=int, nargs="+", default=[1] + ([gpus] if gpus > 1 else []),
                        help="data-parallel process counts to measure (default: 1, and the GPU count when there are several)")
    args = parser.parse_args()
    params = load_params()
    stages_path = RESULTS / "stages.json"
    if not stages_path.is_file():
        raise SystemExit(f"{stages_path} not found: run `python bench/bench_stages.py` first")
    sample = {r["stage"]: r for r in json.loads(stages_path.read_text())["stages"]}
    store = FeatureStore("data/features")
    device = str(resolve_device(params.separator.device))
    chunks_per_s_by_nproc = {n: danet_training(params, n) for n in args.nproc}
    chunks_per_s = chunks_per_s_by_nproc[args.nproc[0]]
    separate_s = danet_separation(store, params)

    features_meta = json.loads(Path("metrics/features.json").read_text())
    cfg = store.config
    chunks_per_mixture = int(CLIP_SECONDS * cfg.sample_rate / cfg.hop) // cfg.chunk_frames
    # Dynamic mixing: an "epoch" of the paper recipe is taken as the chunks of every training clip once.
    train_mixtures = TRAIN_CLIPS
    test_seconds = TEST_CLIPS * params.mix.test_mixtures_per_clip * CLIP_SECONDS
    sample_test_seconds = json.loads(Path("metrics/separate.json").read_text())["audio_seconds"]
    sample_clips = json.loads(Path("metrics/train_music2vec.json").read_text())["clips"]
    scale_test = test_seconds / sample_test_seconds
    estimate = {
        "features": sample["features"]["seconds"] * (train_mixtures * CLIP_SECONDS) / features_meta["audio_seconds"],
        "train_separator": train_mixtures * chunks_per_mixture * PAPER_DANET["epochs"] / chunks_per_s,
        "train_music2vec": sample["train_music2vec"]["seconds_per_epoch"] * TRAIN_CLIPS / sample_clips
        * params.music2vec.epochs,
        "separate": test_seconds / SECONDS * separate_s,
        # scoring (mir_eval) and the SNR sweep grow with the test audio; the sweep also runs the paper-size model
        "classify": sample["classify"]["seconds"] * scale_test,
        "score": sample["score"]["seconds"] * scale_test,
        "sweep": sample["sweep"]["seconds"] * scale_test + len(params.sweep.snr_db) * test_seconds / SECONDS * separate_s,
        "download_split_mix": sum(sample[s]["seconds"] for s in ("download", "split", "mix")) * 1000 / 34,
    }  # fmt: skip
    write_result(
        "paper_scale",
        {
            "benchmark": "paper_scale",
            "device": device,
            "threads": torch.get_num_threads(),
            "danet": PAPER_DANET,
            "measured": {"danet_train_chunks_per_s": chunks_per_s, "danet_separate_30s_track_seconds": separate_s},
            "sizes": {"train_mixtures": train_mixtures, "chunks_per_epoch": train_mixtures * chunks_per_mixture,
                      "test_audio_seconds": test_seconds},  # fmt: skip
            "estimate_processes": args.nproc[0],
            "estimate_seconds": estimate,
            "estimate_hours_total": sum(estimate.values()) / 3600,
            # Only train_separator is data-parallel; every other stage keeps its one-process estimate.
            "data_parallel": [
                {"processes": n, "danet_train_chunks_per_s": rate,
                 "scaling_efficiency": rate / (n * chunks_per_s_by_nproc[1]) if 1 in chunks_per_s_by_nproc else None,
                 "train_separator_hours": estimate["train_separator"] * chunks_per_s / rate / 3600,
                 "total_hours": (sum(estimate.values()) - estimate["train_separator"] * (1 - chunks_per_s / rate)) / 3600}
                for n, rate in chunks_per_s_by_nproc.items()
            ],  # fmt: skip
        },
    )


if __name__ == "__main__":
    main()
