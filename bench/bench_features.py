"""Features stage throughput (seconds of audio per second) and peak memory, on the training clips of data/splits.parquet.

    python bench/bench_features.py [--threads 1 2]     (after `dvc repro split`; writes bench/results/features.json)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakRss, write_result  # noqa: E402

from danet_music2vec.dsp import StftConfig  # noqa: E402
from danet_music2vec.features import write_features  # noqa: E402
from danet_music2vec.params import load_params  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    params = load_params()
    splits = pd.read_parquet("data/splits.parquet")
    train = splits[splits["split"] == "train"]
    cfg = StftConfig.from_params(params["stft"])
    runs = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp, PeakRss() as mem:
            start = time.perf_counter()
            stats = write_features(train, cfg, Path(tmp) / "features", params["data"]["sample_rate"], progress=False)
            elapsed = time.perf_counter() - start
        runs.append(
            {
                "threads": threads,
                "clips": len(train),
                "audio_seconds": stats["audio_seconds"],
                "wall_seconds": elapsed,
                "audio_seconds_per_second": stats["audio_seconds"] / elapsed,
                "peak_rss_mib": mem.peak_mib,
                "rss_before_mib": mem.start_mib,
                "bytes_written": stats["bytes"],
            }
        )
    write_result("features", {"benchmark": "features", "runs": runs})


if __name__ == "__main__":
    main()
