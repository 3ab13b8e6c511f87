"""features: STFTs of the training split's music and noise clips (data/features/), for dynamic mixing in train_danet."""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_json
from danet_music2vec.dsp import StftConfig
from danet_music2vec.features import write_features
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run


def main() -> None:
    params = load_params()
    start = time.perf_counter()
    with stage_run("features", params, groups=("stft",)) as run:
        splits = pd.read_parquet("data/splits.parquet")
        stats = write_features(
            splits[splits["split"] == "train"],
            StftConfig.from_params(params["stft"]),
            "data/features",
            sample_rate=params["data"]["sample_rate"],
        )
        elapsed = time.perf_counter() - start
        metrics = stats | {"stage_seconds": elapsed, "audio_seconds_per_second": stats["audio_seconds"] / elapsed}
        run.log_metrics(metrics)
        write_json("metrics/features.json", metrics)


if __name__ == "__main__":
    stage.run(main, "features")
