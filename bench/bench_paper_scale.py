"""Run-time estimate of the paper-scale recipe (full GTZAN + ESC-50, DANet 4 x BLSTM 300) from short runs.

    python bench/bench_paper_scale.py      (after bench/bench_stages.py; writes bench/results/paper_scale.json)

Measured here, on this machine (CUDA when present, else the CPU threads torch uses):
the paper-size DANet's training throughput (chunks/s over a few hundred chunks of the
sample's features) and its separation speed on a 30 s track. Taken from
bench/results/stages.json (the sample pipeline, shortened training): the features
stage's audio throughput, music2vec's seconds per epoch per training clip, and the
sweep/score cost per mixture-second. Each is scaled by the full data's size; the sizes
are the recipe's (README: paper-scale recipe) and GTZAN/ESC-50's (1000 x 30 s music clips,
the seed split's 950 train / 50 test; 2000 x 5 s noise clips).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import RESULTS, write_result  # noqa: E402
from bench_separation import SECONDS, track  # noqa: E402

from danet_music2vec.danet_training import DanetTrainConfig, build_model, train_danet  # noqa: E402
from danet_music2vec.devices import resolve_device  # noqa: E402
from danet_music2vec.features import FeatureStore  # noqa: E402
from danet_music2vec.params import load_params  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402

PAPER_DANET = {"hidden": 300, "layers": 4, "epochs": 20, "kmeans_epochs": 5, "batch_size": 32}
TRAIN_CLIPS, TEST_CLIPS, CLIP_SECONDS = 950, 50, 30.0
STEPS = 8  # training batches measured (of 32 chunks)


def danet_training(store: FeatureStore, params: dict) -> float:
    """Chunks per second of the paper-size DANet, first epochs (ideal attractors) and k-means epochs alike."""
    cfg = DanetTrainConfig.from_params(params["danet"] | PAPER_DANET, noises=params["noises"])
    cfg = dataclasses.replace(cfg, epochs=2, kmeans_epochs=1, steps_per_epoch=STEPS, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        result = train_danet(store, cfg, Path(tmp) / "ckpt.pt")
    return result.chunks_per_s


def danet_separation(store: FeatureStore, params: dict) -> float:
    """Seconds to separate a 30 s track with an (untrained) paper-size DANet: speed does not depend on weights."""
    cfg = DanetTrainConfig.from_params(params["danet"] | PAPER_DANET, noises=params["noises"])
    model = build_model(cfg, store.config.n_freq)
    opts = params["separate"]
    separator = Separator(model, store.config, torch.randn(2, cfg.embedding_dim),
                          overlap=float(opts["overlap"]), output_rate=opts["output_rate"], batch_size=opts["batch_size"],
                          device=params["separate"]["device"])  # fmt: skip
    rate = params["data"]["sample_rate"]
    wave = track(rate)
    separator.separate(wave, rate)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        separator.separate(wave, rate)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    params = load_params()
    stages_path = RESULTS / "stages.json"
    if not stages_path.is_file():
        raise SystemExit(f"{stages_path} not found: run `python bench/bench_stages.py` first")
    sample = {r["stage"]: r for r in json.loads(stages_path.read_text())["stages"]}
    store = FeatureStore("data/features")
    device = str(resolve_device(params["danet"]["device"], "danet.device"))
    chunks_per_s = danet_training(store, params)
    separate_s = danet_separation(store, params)

    features_meta = json.loads(Path("metrics/features.json").read_text())
    cfg = store.config
    chunks_per_mixture = int(CLIP_SECONDS * cfg.sample_rate / cfg.hop) // cfg.chunk_frames
    # Dynamic mixing: an "epoch" of the paper recipe is taken as the chunks of every training clip once.
    train_mixtures = TRAIN_CLIPS
    test_seconds = TEST_CLIPS * params["mix"]["test_mixtures_per_clip"] * CLIP_SECONDS
    sample_test_seconds = json.loads(Path("metrics/separate.json").read_text())["audio_seconds"]
    sample_clips = json.loads(Path("metrics/train_music2vec.json").read_text())["clips"]
    scale_test = test_seconds / sample_test_seconds
    estimate = {
        "features": sample["features"]["seconds"] * (train_mixtures * CLIP_SECONDS) / features_meta["audio_seconds"],
        "train_danet": train_mixtures * chunks_per_mixture * PAPER_DANET["epochs"] / chunks_per_s,
        "train_music2vec": sample["train_music2vec"]["seconds_per_epoch"] * TRAIN_CLIPS / sample_clips
        * params["music2vec"]["epochs"],
        "separate": test_seconds / SECONDS * separate_s,
        # scoring (mir_eval) and the SNR sweep grow with the test audio; the sweep also runs the paper-size model
        "classify": sample["classify"]["seconds"] * scale_test,
        "score": sample["score"]["seconds"] * scale_test,
        "sweep": sample["sweep"]["seconds"] * scale_test + len(params["sweep"]["snr_db"]) * test_seconds / SECONDS * separate_s,
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
            "estimate_seconds": estimate,
            "estimate_hours_total": sum(estimate.values()) / 3600,
        },
    )


if __name__ == "__main__":
    main()
