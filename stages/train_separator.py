"""train_separator: train the separator on mixtures drawn afresh from the source STFTs in data/features.

Writes models/separator_network.pt: the network of `separator.architecture` with the
weights of the epoch with the best validation SI-SDR (held-out training tracks);
plots/separator_loss.csv has the loss and validation curves. The `separate` stage adds
the inference settings and writes models/separator.pt.

Resume: the per-epoch checkpoint lives in checkpoints/separator.pt, outside DVC's outs
(DVC deletes outs before rerunning a stage); a killed run, rerun with the same params
and features, continues at the next epoch.

Data-parallel: `separator.nproc: N` (N > 1) reruns this script under
`torchrun --standalone --nproc_per_node=N`; `torchrun ... stages/train_separator.py` may also be
typed directly (its process count wins). Rank 0 alone logs to MLflow and writes outputs.
"""

import time

import numpy as np
import pandas as pd

from danet_music2vec import checkpoints, distributed, stage
from danet_music2vec.atomic import write_csv, write_json
from danet_music2vec.dsp import StftConfig
from danet_music2vec.errors import StaleDataError
from danet_music2vec.evaluation import json_safe
from danet_music2vec.features import FeatureStore
from danet_music2vec.params import Params, load_params
from danet_music2vec.separator_training import EpochStats, train_separator
from danet_music2vec.tracking import stage_run

CHECKPOINT = "checkpoints/separator.pt"
MODEL = "models/separator_network.pt"
LOSS_PLOT = "plots/separator_loss.csv"


def epoch_metrics(stats: EpochStats) -> dict[str, float]:
    """One epoch's numbers for MLflow (validation ones only when there is validation data)."""
    values = {"loss": stats.loss, "chunks_per_s": stats.chunks_per_s, "val_loss": stats.val_loss, "val_si_sdr": stats.val_si_sdr}
    return {k: v for k, v in values.items() if v == v}  # NaN: no validation data


def load_store(params: Params) -> FeatureStore:
    store = FeatureStore("data/features")
    if store.config != StftConfig.from_params(params.stft):
        raise StaleDataError("data/features was computed with other stft params than params.yaml; run `dvc repro features`")
    return store


def main() -> None:
    params = load_params()
    cfg = params.separator
    distributed.relaunch(__file__, cfg.nproc)
    start = time.perf_counter()
    with distributed.join(cfg.device) as world:
        if not world.is_main:  # trains its share of every batch; rank 0 records and writes
            train_separator(load_store(params), cfg, CHECKPOINT, params.noises, world=world, progress=False)
            return
        with stage_run("train_separator", params.used(), groups=("separator", "stft")) as run:
            store = load_store(params)

            def on_epoch(stats: EpochStats) -> None:
                run.log_metrics(epoch_metrics(stats), step=stats.epoch)

            result = train_separator(store, cfg, CHECKPOINT, params.noises, on_epoch=on_epoch, world=world)
            for stats in result.history[: result.start_epoch - 1]:
                run.log_metrics(epoch_metrics(stats), step=stats.epoch)  # epochs of an earlier, interrupted run
            checkpoints.export(CHECKPOINT, MODEL, "separator")
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
            run.log_model(result.model, name="separator", input_example=example.astype(np.float32))
            write_json("metrics/train_separator.json", json_safe(metrics) | {"architecture": cfg.architecture, "device": result.device})


if __name__ == "__main__":
    stage.run(main, "train_separator")
