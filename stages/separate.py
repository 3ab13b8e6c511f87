"""separate: run the trained separator on every TEST mixture (data/separated/<mixture_id>/{music,noise}.flac + index).

Before anything is separated, the test clips are checked against the separator's training
manifest (a shipped separator, or a `local` profile's folders, may hold clips it trained on):
one of them in it stops the stage with a line naming the clip.

Mixtures are separated in `workers` processes and each is kept in checkpoints/separate until the
outputs are written: a killed stage resumes, and `--shard K/N` separates one block of the test set
for Kubeflow's fan-out (src/danet_music2vec/shards.py).

Also writes models/separator.pt: the trained network with the inference settings (`separate`
params) it was scored with here, which the `sweep` stage and `dm2v denoise` load, so all three
separate alike.
"""

import shutil
import time

import pandas as pd

from danet_music2vec import checkpoints, stage
from danet_music2vec.atomic import atomic_dir, write_json, write_parquet
from danet_music2vec.checksums import sha256_file
from danet_music2vec.data.manifest import check_unseen
from danet_music2vec.data.sources import SourceError
from danet_music2vec.params import load_params
from danet_music2vec.separation import Separator
from danet_music2vec.separation.mixtures import FILES, separate_mixtures, separated_results
from danet_music2vec.shards import resume_folder, rows_of, run_name, shard_option
from danet_music2vec.tracking import stage_run
from danet_music2vec.workers import worker_count

OUT = "data/separated"
NETWORK = "models/separator_network.pt"
MODEL = "models/separator.pt"
FINISHED = resume_folder("separate")  # each finished mixture, kept until the outputs are written: a killed stage resumes


def main() -> None:
    shard = shard_option("separate")
    params = load_params()
    start = time.perf_counter()
    with stage_run(run_name("separate", shard), params.used(), groups=("separate",)) as run:
        network = checkpoints.load(NETWORK, "separator")
        splits = pd.read_parquet("data/splits.parquet")
        check_unseen(splits[splits["split"] == "test"], network["training_clips"], NETWORK)
        separator = Separator.from_network(network, params.separate)
        inference = params.separate.used(network["model_config"]["architecture"])
        mixtures = pd.read_parquet("data/mixtures.parquet")
        test = mixtures[mixtures["split"] == "test"]
        if test.empty:
            raise SourceError("data/mixtures.parquet has no test mixtures; check split.test_fraction and run `dvc repro mix`")
        finished, workers = separated_results(FINISHED), worker_count(params.workers)
        index = separate_mixtures(
            rows_of(shard, test), separator, repr((sha256_file(NETWORK), inference)), finished,
            workers=workers, on_progress=run.log_progress,
        )  # fmt: skip
        if shard is not None:  # the merge (the unsharded run) writes the outputs
            return
        with atomic_dir(OUT) as tmp:
            for row in index.itertuples():
                (tmp / row.mixture_id).mkdir()
                for name in FILES:
                    shutil.copyfile(f"{row.folder}/{name}", tmp / row.mixture_id / name)
            index["music_path"] = OUT + "/" + index["mixture_id"] + "/music.flac"
            index["noise_path"] = OUT + "/" + index["mixture_id"] + "/noise.flac"
            write_parquet(tmp / "index.parquet", index.drop(columns=["folder", "clipped"]))
        metrics = {
            "tracks": len(index),
            "audio_seconds": float(index["seconds"].sum()),
            "processing_seconds": float(index["processing_s"].sum()),
            # real_time_factor = processing time / audio time, on one thread (below 1: faster than real time)
            "real_time_factor": float(index["processing_s"].sum() / index["seconds"].sum()),
            "x_real_time": float(index["seconds"].sum() / index["processing_s"].sum()),
            "swaps": int(index["swapped"].sum()),
            "swap_decisions": int(index["decisions"].sum()),
            "swap_rate": float(index["swapped"].sum() / index["decisions"].sum()) if index["decisions"].sum() else 0.0,
            "clipped_samples": int(index["clipped"].sum()),
            "sample_rate": int(index["sample_rate"].iloc[0]),
            "workers": workers,
            "resumed_mixtures": finished.reused,
            "stage_seconds": time.perf_counter() - start,
        }
        run.log_metrics(metrics)
        checkpoints.save(MODEL, "separator", network | {"inference": inference})
        write_json("metrics/separate.json", metrics)
        finished.done("separate")


if __name__ == "__main__":
    stage.run(main, "separate")
