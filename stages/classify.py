"""classify: genre probabilities of every TEST mixture along every path (src/danet_music2vec/evidence.py).

The clean-trained classifier (models/music2vec.pt) on the clean music, the mixture and the
separated music; the adapted classifier (models/music2vec_adapted.pt) on the separated and the
clean music; the mixture and separated evidence combined, per clip or by weight; and the product:
the path adapt_music2vec chose on validation. Writes data/predictions.parquet (one row per mixture
and input: mixture_id, music_clip, input, true_label, predicted_label, p_<genre>...) for the score stage.
"""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_json, write_parquet
from danet_music2vec.devices import resolve_device
from danet_music2vec.evidence import GenreReader, classify_mixtures
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run

CLEAN, ADAPTED = "models/music2vec.pt", "models/music2vec_adapted.pt"


def main() -> None:
    params = load_params()
    cfg = params.music2vec
    start = time.perf_counter()
    with stage_run("classify", params.used(), groups=("music2vec",)) as run:
        reader = GenreReader.load(CLEAN, ADAPTED, hop_seconds=cfg.test_hop_seconds, device=resolve_device(cfg.device))
        mixtures = pd.read_parquet("data/mixtures.parquet")
        separated = pd.read_parquet("data/separated/index.parquet")
        predictions, seconds = classify_mixtures(reader, mixtures, separated)
        write_parquet("data/predictions.parquet", predictions)
        elapsed = time.perf_counter() - start
        metrics = {
            "mixtures": int(predictions["mixture_id"].nunique()),
            "predictions": len(predictions),
            "audio_seconds": seconds["audio"],
            "classify_seconds": seconds["classify"],
            # real_time_factor = processing time / mixture time, every path of a mixture together (below 1: faster
            # than real time)
            "real_time_factor": seconds["classify"] / seconds["audio"],
            "x_real_time": seconds["audio"] / seconds["classify"],
            "stage_seconds": elapsed,
        }
        for name, rows in predictions.groupby("input"):
            metrics[f"accuracy.{name}"] = float((rows["true_label"] == rows["predicted_label"]).mean())
        run.log_metrics(metrics)
        run.log_params({"product.path": reader.rule.path})
        write_json("metrics/classify.json", metrics | {"product.path": reader.rule.path})


if __name__ == "__main__":
    stage.run(main, "classify")
