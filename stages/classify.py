"""classify: genre probabilities of every TEST mixture along every path (src/danet_music2vec/evidence.py).

The clean-trained classifier (models/music2vec.pt) on the clean music, the mixture and the
separated music; the adapted classifier (models/music2vec_adapted.pt) on the separated and the
clean music; the mixture and separated evidence combined, per clip or by weight; and the product:
the path adapt_music2vec chose on validation. Writes data/predictions.parquet (one row per mixture
and input: mixture_id, music_clip, input, true_label, predicted_label, p_<genre>...) for the score stage.

Mixtures are classified in `workers` processes and each is kept in checkpoints/classify until the
outputs are written: a killed stage resumes, and `--shard K/N` classifies one block of the test set
for Kubeflow's fan-out (src/danet_music2vec/shards.py).
"""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_json, write_parquet
from danet_music2vec.checksums import sha256_file
from danet_music2vec.devices import resolve_device
from danet_music2vec.evidence import GenreReader, classified_results, classify_mixtures
from danet_music2vec.params import load_params
from danet_music2vec.shards import resume_folder, rows_of, run_name, shard_option
from danet_music2vec.tracking import stage_run
from danet_music2vec.workers import worker_count

CLEAN, ADAPTED = "models/music2vec.pt", "models/music2vec_adapted.pt"
FINISHED = resume_folder("classify")  # each finished mixture, kept until the outputs are written: a killed stage resumes


def main() -> None:
    shard = shard_option("classify")
    params = load_params()
    cfg = params.music2vec
    start = time.perf_counter()
    with stage_run(run_name("classify", shard), params.used(), groups=("music2vec",)) as run:
        device = resolve_device(cfg.device)
        reader = GenreReader.load(CLEAN, ADAPTED, hop_seconds=cfg.test_hop_seconds, device=device)
        mixtures = pd.read_parquet("data/mixtures.parquet")
        test = mixtures[mixtures["split"] == "test"]
        finished, workers = classified_results(FINISHED), worker_count(params.workers)
        predictions, seconds = classify_mixtures(
            reader, rows_of(shard, test), pd.read_parquet("data/separated/index.parquet"),
            workers=workers, finished=finished, on_progress=run.log_progress,
            settings=repr((str(device), cfg.test_hop_seconds, sha256_file(CLEAN), sha256_file(ADAPTED))),
        )  # fmt: skip
        if shard is not None:  # the merge (the unsharded run) writes the outputs
            return
        write_parquet("data/predictions.parquet", predictions)
        metrics = {
            "mixtures": int(predictions["mixture_id"].nunique()),
            "predictions": len(predictions),
            "audio_seconds": seconds["audio"],
            "classify_seconds": seconds["classify"],
            # real_time_factor = processing time on one thread / mixture time, every path of a mixture together
            # (below 1: faster than real time)
            "real_time_factor": seconds["classify"] / seconds["audio"],
            "x_real_time": seconds["audio"] / seconds["classify"],
            "workers": workers,
            "resumed_mixtures": finished.reused,
            "stage_seconds": time.perf_counter() - start,
        }
        for name, rows in predictions.groupby("input"):
            metrics[f"accuracy.{name}"] = float((rows["true_label"] == rows["predicted_label"]).mean())
        run.log_metrics(metrics)
        run.log_params({"product.path": reader.rule.path})
        write_json("metrics/classify.json", metrics | {"product.path": reader.rule.path})
        finished.done("classify")


if __name__ == "__main__":
    stage.run(main, "classify")
