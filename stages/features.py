"""features: STFTs of the training split's music and noise clips, plus the separator-only pools (data/features/).

train_separator mixes them afresh at every step (dynamic mixing). The pools
(``data.separation_music_dirs``, ``data.separation_noise_dirs``) train the separator only, never
the classifier; a pool noise clip from an ESC-50 test fold (``split.noise_test_folds``) or from a
recording of the profile's own noise clips is left out (:func:`held_out_of_pool`).
"""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_json
from danet_music2vec.checksums import sha256_file
from danet_music2vec.data.sources import held_out_of_pool, scan_separation_music, scan_separation_noise
from danet_music2vec.dsp import StftConfig
from danet_music2vec.features import write_features
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run


def main() -> None:
    params = load_params()
    start = time.perf_counter()
    with stage_run("features", params.used(), groups=("stft",)) as run:
        splits = pd.read_parquet("data/splits.parquet")
        train = splits[splits["split"] == "train"].assign(sha256=lambda d: d["source_sha256"])
        pools = [scan_separation_music(d) for d in params.data.separation_music_dirs]
        noise_pools = [scan_separation_noise(d) for d in params.data.separation_noise_dirs]
        held_out = [held_out_of_pool(pool, splits, params.split.noise_test_folds) for pool in noise_pools]
        pools += [pool[~out] for pool, out in zip(noise_pools, held_out)]
        pools = [pool.assign(sha256=pool["path"].map(sha256_file)) for pool in pools]
        stats = write_features(
            pd.concat([train, *pools], ignore_index=True),
            StftConfig.from_params(params.stft),
            "data/features",
            sample_rate=params.data.sample_rate,
        )
        elapsed = time.perf_counter() - start
        metrics = stats | {
            "pool_noise_held_out": int(sum(out.sum() for out in held_out)),
            "stage_seconds": elapsed,
            "audio_seconds_per_second": stats["audio_seconds"] / elapsed,
        }
        run.log_metrics(metrics)
        write_json("metrics/features.json", metrics)


if __name__ == "__main__":
    stage.run(main, "features")
