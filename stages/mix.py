"""mix: describe every test mixture (data/mixtures.parquet); audio is rendered on demand."""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_json, write_parquet
from danet_music2vec.data.mixing import plan_mixtures
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run


def main() -> None:
    params = load_params()
    mix = params.mix
    start = time.perf_counter()
    with stage_run("mix", params.used(), groups=("mix",)) as run:
        mixtures = plan_mixtures(
            pd.read_parquet("data/splits.parquet"),
            noises=params.noises,
            snr_db=mix.snr_db,
            seed=mix.seed,
            # Training mixtures are drawn afresh in train_separator (dynamic mixing): only the test set is fixed.
            mixtures_per_clip={"test": mix.test_mixtures_per_clip},
            sample_rate=params.data.sample_rate,
            segment_seconds=mix.test_segment_seconds,
        )
        write_parquet("data/mixtures.parquet", mixtures)
        metrics = {
            "mixtures.test": int((mixtures["split"] == "test").sum()),
            "snr_db.mean": float(mixtures["snr_db"].mean()),
            "snr_db.min": float(mixtures["snr_db"].min()),
            "snr_db.max": float(mixtures["snr_db"].max()),
            "seconds": float((mixtures["num_samples"] / mixtures["sample_rate"]).sum()),
            "stage_seconds": time.perf_counter() - start,
        }
        run.log_metrics(metrics)
        write_json("metrics/mix.json", metrics)


if __name__ == "__main__":
    stage.run(main, "mix")
