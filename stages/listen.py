"""listen: the listening page (reports/listening.html) of a few test mixtures, chosen by a stated rule
(danet_music2vec.listening), and the run's figures on its MLflow parent run, for the compare page."""

import time
from pathlib import Path

import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import atomic_path, write_json, write_text
from danet_music2vec.evaluation import noise_labels
from danet_music2vec.listening import listening_page
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run

PAGE = Path("reports/listening.html")
# One spectrogram panel (the median-NSDR mixture's) for MLflow's compare page.
SPECTROGRAMS = Path("plots/listening_spectrograms.jpg")


def main() -> None:
    params = load_params()
    listen = params.listen
    start = time.perf_counter()
    with stage_run("listen", params.used(), groups=("listen",)) as run:
        separator = params.separator
        title = f"Listening page: noises={params.noises}, separator {separator.architecture} ({separator.start})"
        page, shown = listening_page(
            pd.read_parquet("data/mixtures.parquet"), pd.read_parquet("data/separated/index.parquet"),
            pd.read_parquet("data/separation_scores.parquet"), pd.read_parquet("data/predictions.parquet"),
            noise_labels(pd.read_parquet("data/splits.parquet")), listen.mixtures, listen.vorbis_compression, title,
        )  # fmt: skip
        write_text(PAGE, page)
        median = next((m for m in shown if m.why == "median NSDR"), shown[0])
        with atomic_path(SPECTROGRAMS) as tmp:
            tmp.write_bytes(median.spectrograms)
        for path in (PAGE, SPECTROGRAMS):
            run.log_artifact(path, "listening")
            run.log_parent_artifact(path)
        summary = {
            "page_bytes": PAGE.stat().st_size,
            "mixtures": len(shown),
            "shown": {m.mixture_id: m.why for m in shown},
            "stage_seconds": time.perf_counter() - start,
        }
        run.log_metrics({k: v for k, v in summary.items() if k != "shown"})
        write_json("metrics/listen.json", summary)


if __name__ == "__main__":
    stage.run(main, "listen")
