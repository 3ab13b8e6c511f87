"""train_danet: train the separator on mixtures drawn afresh from the source STFTs in data/features (models/danet.pt).

The exported model holds the weights of the epoch with the best validation SI-SDR
(held-out training tracks); plots/danet_loss.csv has the loss and validation curves.

Resume: the per-epoch checkpoint lives in checkpoints/danet.pt, outside DVC's outs
(DVC deletes outs before rerunning a stage); a killed run, rerun with the same params
and features, continues at the next epoch. models/danet.pt is the finished model
without optimizer state.

Data-parallel: `danet.nproc: N` (N > 1) reruns this script under
`torchrun --standalone --nproc_per_node=N`; `torchrun ... stages/train_danet.py` may also be
typed directly (its process count wins). Rank 0 alone logs to MLflow and writes outputs.
"""

import time

import numpy as np
import pandas as pd

from danet_music2vec import distributed, stage
from danet_music2vec.atomic import write_csv, write_json
from danet_music2vec.danet_training import DanetTrainConfig, EpochStats, export_model, train_danet
from danet_music2vec.dsp import StftConfig
from danet_music2vec.errors import StaleDataError
from danet_music2vec.evaluation import json_safe
from danet_music2vec.features import FeatureStore
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run

CHECKPOINT = "checkpoints/danet.pt"
MODEL = "models/danet.pt"
LOSS_PLOT = "plots/danet_loss.csv"


def epoch_metrics(stats: EpochStats) -> dict[str, float]:
    """One epoch's numbers for MLflow (validation ones only when there is validation data)."""
    values = {"loss": stats.loss, "chunks_per_s": stats.chunks_per_s, "val_loss": stats.val_loss, "val_si_sdr": stats.val_si_sdr}
    return {k: v for k, v in values.items() if v == v}  # NaN: no validation data


def load_store(params: dict) -> FeatureStore:
    store = FeatureStore("data/features")
    if store.config != StftConfig.from_params(params["stft"]):
        raise StaleDataError("data/features was computed with other stft params than params.yaml; run `dvc repro features`")
    return store


def main() -> None:
    params = load_params()
    cfg = DanetTrainConfig.from_params(params["danet"], noises=params["noises"])
    distributed.relaunch(__file__, cfg.nproc)
    start = time.perf_counter()
    with distributed.join(cfg.device, "danet.device") as world:
        if not world.is_main:  # trains its share of every batch; rank 0 records and writes
            train_danet(load_store(params), cfg, CHECKPOINT, world=world)
            return
        with stage_run("train_danet", params, groups=("danet", "stft")) as run:
            store = load_store(params)

            def on_epoch(stats: EpochStats) -> None:
                run.log_metrics(epoch_metrics(stats), step=stats.epoch)

            result = train_danet(store, cfg, CHECKPOINT, on_epoch=on_epoch, world=world)
            for stats in result.history[: result.start_epoch - 1]:
                run.log_metrics(epoch_metrics(stats), step=stats.epoch)  # epochs of an earlier, interrupted run
            export_model(CHECKPOINT, MODEL)
            write_csv(LOSS_PLOT, pd.DataFrame([{"epoch": h.epoch, "loss": h.loss, "val_loss": h.val_loss,
                                                "val_si_sdr": h.val_si_sdr} for h in result.history]))  # fmt: skip
            best = result.history[result.best_epoch - 1]
            metrics = {
                "final_loss": result.losses[-1],
                "best_epoch": result.best_epoch,
                "best_val_si_sdr": best.val_si_sdr,
                "best_val_loss": best.val_loss,
                "epochs": len(result.losses),
                "epochs_from_checkpoint": result.start_epoch - 1,  # trained by an earlier (interrupted) run
                "chunks_per_s": result.chunks_per_s,
                "seconds": sum(h.seconds for h in result.history),
                "n_chunks": result.n_chunks,
                "processes": world.size,
                "stage_seconds": time.perf_counter() - start,
            }
            run.log_metrics(metrics)
            run.log_artifact(LOSS_PLOT)
            example = np.abs(np.random.default_rng(0).standard_normal((1, store.config.chunk_frames, store.config.n_freq)))
            run.log_model(result.model, name="danet", input_example=example.astype(np.float32))
            write_json("metrics/train_danet.json", json_safe(metrics) | {"device": result.device})


if __name__ == "__main__":
    stage.run(main, "train_danet")
