"""split: assign every clip of data/raw to train or test (data/splits.parquet)."""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_json, write_parquet
from danet_music2vec.data.splits import split_clips
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run


def main() -> None:
    params = load_params()
    start = time.perf_counter()
    with stage_run("split", params.used(), groups=("split",)) as run:
        table, facts = split_clips(pd.read_parquet("data/raw/manifest.parquet"), params.split, params.data.profile)
        write_parquet("data/splits.parquet", table)
        counts = table.groupby(["kind", "split"]).size()
        metrics = {f"clips.{kind}.{side}": int(n) for (kind, side), n in counts.items()}
        metrics |= {"genres": int(table.loc[table["kind"] == "music", "label"].nunique())}
        metrics |= {"genres_dropped": len(facts["dropped_genres"]), "stage_seconds": time.perf_counter() - start}
        run.log_metrics(metrics)
        write_json("metrics/split.json", metrics | facts)


if __name__ == "__main__":
    stage.run(main, "split")
