"""train_danet: train the DANet separator on the STFT chunks in data/features (models/danet.pt).

Resume: the per-epoch checkpoint lives in checkpoints/danet.pt, outside DVC's outs
(DVC deletes outs before rerunning a stage); a killed run, rerun with the same params
and features, continues at the next epoch. models/danet.pt is the finished model
without optimizer state.
"""

import time

import numpy as np
import pandas as pd

from danet_music2vec import stage
from danet_music2vec.atomic import write_csv, write_json
from danet_music2vec.danet_training import DanetTrainConfig, EpochStats, export_model, train_danet
from danet_music2vec.dsp import StftConfig
from danet_music2vec.features import FeatureStore
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run

CHECKPOINT = "checkpoints/danet.pt"
MODEL = "models/danet.pt"
LOSS_PLOT = "plots/danet_loss.csv"


def main() -> None:
    params = load_params()
    cfg = DanetTrainConfig.from_params(params["danet"])
    start = time.perf_counter()
    with stage_run("train_danet", params, groups=("danet", "stft")) as run:
        store = FeatureStore("data/features")
        if store.config != StftConfig.from_params(params["stft"]):
            raise ValueError("data/features was computed with other stft params than params.yaml; run `dvc repro features`")

        def on_epoch(stats: EpochStats) -> None:
            run.log_metrics({"loss": stats.loss, "chunks_per_s": stats.chunks_per_s}, step=stats.epoch)

        result = train_danet(store, cfg, CHECKPOINT, on_epoch=on_epoch)
        for epoch, loss in enumerate(result.losses[: result.start_epoch - 1], start=1):
            run.log_metrics({"loss": loss}, step=epoch)  # epochs of an earlier, interrupted run
        export_model(CHECKPOINT, MODEL)
        write_csv(LOSS_PLOT, pd.DataFrame({"epoch": range(1, len(result.losses) + 1), "loss": result.losses}))
        metrics = {
            "final_loss": result.losses[-1],
            "epochs": len(result.losses),
            "epochs_from_checkpoint": result.start_epoch - 1,  # trained by an earlier (interrupted) run
            "chunks_per_s": result.chunks_per_s,
            "seconds": sum(h.seconds for h in result.history),
            "n_chunks": result.n_chunks,
            "stage_seconds": time.perf_counter() - start,
        }
        run.log_metrics(metrics)
        run.log_artifact(LOSS_PLOT)
        example = np.abs(np.random.default_rng(0).standard_normal((1, store.config.chunk_frames, store.config.n_freq)))
        run.log_model(result.model, name="danet", input_example=example.astype(np.float32))
        write_json("metrics/train_danet.json", metrics | {"device": result.device})


if __name__ == "__main__":
    stage.run(main, "train_danet")
