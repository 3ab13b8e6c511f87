"""sweep: the test mixtures re-mixed at each input SNR (sweep.snr_db), separated, scored and classified.

Mixtures are swept in `workers` processes and each is kept in checkpoints/sweep until the outputs are written: a
killed stage resumes, and `--shard K/N` sweeps one block of the test set for Kubeflow's fan-out
(src/danet_music2vec/shards.py).

Writes metrics/sweep.json (metrics/score.json's keys per SNR, e.g. ``snr_m5.separation.gnsdr``),
the curves (plots/snr_gnsdr.csv, plots/snr_f1.csv, plots/snr_curves.png) and GNSDR per noise
category (plots/gnsdr_by_noise.csv and .png). The ablation report reads these numbers.
"""

import time

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_csv, write_json
from danet_music2vec.checksums import sha256_file
from danet_music2vec.devices import resolve_device
from danet_music2vec.dsp import StftConfig
from danet_music2vec.evidence import GenreReader
from danet_music2vec.evaluation import (
    HEADLINE_METRICS,
    gnsdr_by_noise,
    json_safe,
    noise_labels,
    snr_key,
    snr_sweep,
    sweep_results,
    sweep_curves,
    sweep_summary,
)
from danet_music2vec.params import load_params
from danet_music2vec.plots import plot_categories, plot_curves
from danet_music2vec.separation import Separator
from danet_music2vec.shards import resume_folder, rows_of, run_name, shard_option
from danet_music2vec.tracking import stage_run
from danet_music2vec.workers import worker_count


MODELS = ("models/separator.pt", "models/music2vec.pt", "models/music2vec_adapted.pt")
FINISHED = resume_folder("sweep")  # each finished mixture, kept until the outputs are written: a killed stage resumes


def main() -> None:
    shard = shard_option("sweep")
    params = load_params()
    score, snrs = params.score, [float(s) for s in params.sweep.snr_db]
    start = time.perf_counter()
    with stage_run(run_name("sweep", shard), params.used(), groups=("sweep",)) as run:
        separator = Separator.load(MODELS[0])  # with the inference settings `separate` scored
        device = resolve_device(params.music2vec.device)
        reader = GenreReader.load(*MODELS[1:], hop_seconds=params.music2vec.test_hop_seconds, device=device)
        mixtures = pd.read_parquet("data/mixtures.parquet")
        test = mixtures[mixtures["split"] == "test"]
        # The first mixtures of every clip (in mix-stage order): curves at a bounded cost, every clip represented.
        test = test[test.groupby("music_clip").cumcount() < params.sweep.mixtures_per_clip]
        finished = sweep_results(FINISHED)
        per_mixture, predictions, grouped = snr_sweep(
            rows_of(shard, test), separator, reader, snrs,
            StftConfig.from_params(params.stft), score.spectral_gate.model_dump(), score.silence_db,
            workers=worker_count(params.workers), finished=finished, models_key=" ".join([str(device), *(sha256_file(m) for m in MODELS)]),
            on_progress=run.log_progress,
            backend=score.bss_eval,
        )  # fmt: skip
        if shard is not None:  # the merge (the unsharded run) writes the outputs
            return
        summary = sweep_summary(
            predictions, grouped, test.set_index("mixture_id")["music_clip"],
            score.bootstrap_n, score.bootstrap_seed, score.bootstrap_alpha,
        )  # fmt: skip

        gnsdr, f1 = sweep_curves(summary, snrs)
        write_csv("plots/snr_gnsdr.csv", gnsdr)
        write_csv("plots/snr_f1.csv", f1)
        plot_curves(
            [(gnsdr, "GNSDR (dB)", "music separation"), (f1, "weighted F1", "genre classification")],
            "snr_db", "input SNR (dB)", "plots/snr_curves.png",
        )  # fmt: skip
        categories = gnsdr_by_noise(per_mixture, noise_labels(pd.read_parquet("data/splits.parquet")))
        write_csv("plots/gnsdr_by_noise.csv", categories)
        plot_categories(categories, "gnsdr", "input_snr_db", "separator GNSDR per noise category (dB)", "plots/gnsdr_by_noise.png")
        for path in ("plots/snr_curves.png", "plots/gnsdr_by_noise.png", "plots/gnsdr_by_noise.csv"):
            run.log_artifact(path, "sweep")
        for path in ("plots/snr_curves.png", "plots/gnsdr_by_noise.png"):
            run.log_parent_artifact(path)  # the compare page's side-by-side figures

        summary["stage_seconds"] = time.perf_counter() - start
        summary = json_safe(summary)
        run.log_metrics({k: v for k, v in summary.items() if v is not None})
        # On the parent run per SNR, so the MLflow UI compares experiments along the curve.
        headline = {f"{snr_key(s)}.{k}": summary.get(f"{snr_key(s)}.{k}") for s in snrs for k in HEADLINE_METRICS}
        run.log_parent_metrics({k: v for k, v in headline.items() if v is not None})
        run.log_metrics({"resumed_mixtures": finished.reused})
        write_json("metrics/sweep.json", summary)
        finished.done("sweep")


if __name__ == "__main__":
    stage.run(main, "sweep")
