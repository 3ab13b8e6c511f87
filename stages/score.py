"""score: separation (the separator vs the references: oracle IRM and spectral gate) and classification along every
path (clean / mixture / separated / separated_adapted / combined / gated / product: src/danet_music2vec/evidence.py).

Mixtures are scored in `workers` processes and each is kept in checkpoints/score until the outputs are written: a
killed stage resumes, and `--shard K/N` scores one block of the test set for Kubeflow's fan-out
(src/danet_music2vec/shards.py).
"""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_csv, write_json, write_parquet
from danet_music2vec.dsp import StftConfig
from danet_music2vec.evaluation import (
    HEADLINE_METRICS,
    confusion_long,
    json_safe,
    score_classification,
    score_results,
    score_separation,
    separation_summary,
)
from danet_music2vec.plots import plot_confusion
from danet_music2vec.params import load_params
from danet_music2vec.shards import resume_folder, rows_of, run_name, shard_option
from danet_music2vec.tracking import stage_run
from danet_music2vec.workers import worker_count

FINISHED = resume_folder("score")  # each finished mixture, kept until the outputs are written: a killed stage resumes
# The confusion tables drawn (dvc.yaml's plots): the ceiling, doing nothing, the separator alone and the product.
CONFUSIONS = ("clean", "mixture", "separated", "product")

def main() -> None:
    shard = shard_option("score")
    params = load_params()
    score = params.score
    start = time.perf_counter()
    with stage_run(run_name("score", shard), params.used(), groups=("score",)) as run:
        mixtures = pd.read_parquet("data/mixtures.parquet")
        test = mixtures[mixtures["split"] == "test"]
        finished = score_results(FINISHED)
        per_mixture, by_system = score_separation(
            rows_of(shard, test),
            pd.read_parquet("data/separated/index.parquet"),
            StftConfig.from_params(params.stft),
            score.spectral_gate.model_dump(),
            score.silence_db,
            full_band=score.full_band and params.separate.output_rate == "full",
            workers=worker_count(params.workers),
            finished=finished,
            on_progress=run.log_progress,
            backend=score.bss_eval,
        )
        if shard is not None:  # the merge (the unsharded run) writes the outputs
            return
        write_parquet("data/separation_scores.parquet", per_mixture)
        write_csv("plots/separation.csv", per_mixture)
        summary = separation_summary(by_system)

        classes, tables = score_classification(
            pd.read_parquet("data/predictions.parquet"), mixtures.set_index("mixture_id")["music_clip"],
            score.bootstrap_n, score.bootstrap_seed, score.bootstrap_alpha,
        )  # fmt: skip
        summary |= classes
        for name in CONFUSIONS:
            table = tables[name]
            write_csv(f"plots/confusion_{name}.csv", confusion_long(table))
            plot_confusion(table.to_numpy(), list(table.index), f"genre confusion: {name} input", f"plots/confusion_{name}.png")
            run.log_artifact(f"plots/confusion_{name}.png", "confusion")
            run.log_parent_artifact(f"plots/confusion_{name}.png")  # the compare page's side-by-side figures
        run.log_artifact("plots/separation.csv")
        summary["stage_seconds"] = time.perf_counter() - start
        summary = json_safe(summary)
        run.log_metrics({k: v for k, v in summary.items() if v is not None})
        run.log_parent_metrics({k: summary[k] for k in HEADLINE_METRICS if summary.get(k) is not None})
        run.log_metrics({"resumed_mixtures": finished.reused})
        write_json("metrics/score.json", summary)
        finished.done("score")


if __name__ == "__main__":
    stage.run(main, "score")
