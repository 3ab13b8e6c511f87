"""features: STFTs of the training split's music and noise clips, plus data.separation_music_dirs (data/features/).

train_separator mixes them afresh at every step (dynamic mixing).
"""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_json
from danet_music2vec.data.sources import scan_separation_music
from danet_music2vec.dsp import StftConfig
from danet_music2vec.features import write_features
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run


def main() -> None:
    params = load_params()
    start = time.perf_counter()
    with stage_run("features", params.used(), groups=("stft",)) as run:
        splits = pd.read_parquet("data/splits.parquet")
        # Music without genre labels (data.separation_music_dirs) trains the separator only; never the classifier.
        extra = [scan_separation_music(d) for d in params.data.separation_music_dirs]
        stats = write_features(
            pd.concat([splits[splits["split"] == "train"], *extra], ignore_index=True),
            StftConfig.from_params(params.stft),
            "data/features",
            sample_rate=params.data.sample_rate,
        )
        elapsed = time.perf_counter() - start
        metrics = stats | {"stage_seconds": elapsed, "audio_seconds_per_second": stats["audio_seconds"] / elapsed}
        run.log_metrics(metrics)
        write_json("metrics/features.json", metrics)


if __name__ == "__main__":
    stage.run(main, "features")
