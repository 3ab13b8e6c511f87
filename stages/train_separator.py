"""train_separator: train the separator on mixtures drawn afresh from the source STFTs in data/features.

Writes models/separator_network.pt: the network of `separator.architecture` with the
weights of the epoch with the best validation SI-SDR (held-out training tracks);
plots/separator_loss.csv has the loss and validation curves. The `separate` stage adds
the inference settings and writes models/separator.pt.

`separator.start` picks where the separator comes from: `scratch` trains it here; `shipped`
writes the separator shipped with the package (danet_music2vec/pretrained/separator.pt, trained
once on all the repository's sound: docs/MODEL_CARD.md) as it is, and the loss plot shows its
training; `finetune` trains that network further on this profile's data.

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
from danet_music2vec.params import Params, ParamError, load_params
from danet_music2vec.pretrained import SHIPPED
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


def write_loss_plot(history: list[EpochStats]) -> None:
    write_csv(LOSS_PLOT, pd.DataFrame([{"epoch": h.epoch, "loss": h.loss, "val_loss": h.val_loss,
                                        "val_si_sdr": h.val_si_sdr} for h in history]))  # fmt: skip


def use_shipped(params: Params, start: float) -> None:
    """``separator.start: shipped``: the shipped separator's network becomes this stage's model, untrained further."""
    with stage_run("train_separator", params.used(), groups=("separator", "stft")) as run:
        shipped = checkpoints.load(SHIPPED, "separator")
        checkpoints.save(MODEL, "separator", {k: v for k, v in shipped.items() if k != "inference"})
        history = [EpochStats(**h) for h in shipped["history"]]
        write_loss_plot(history)
        best = history[shipped["best_epoch"] - 1]
        metrics = {"best_epoch": shipped["best_epoch"], "best_val_si_sdr": best.val_si_sdr, "epochs": len(history),
                   "stage_seconds": time.perf_counter() - start}  # fmt: skip
        run.log_metrics(metrics)
        write_json("metrics/train_separator.json", json_safe(metrics) | {
            "start": "shipped", "architecture": shipped["model_config"]["architecture"], "device": "none"})  # fmt: skip


def shipped_to_finetune(params: Params) -> dict | None:
    """The shipped separator to fine-tune (``separator.start: finetune``), or None."""
    if params.separator.start != "finetune":
        return None
    shipped = checkpoints.load(SHIPPED, "separator")
    architecture = shipped["model_config"]["architecture"]
    if params.separator.architecture != architecture:
        raise ParamError(f"params.yaml: separator.start=finetune: the shipped separator is a '{architecture}' network; "
                         f"set separator.architecture: {architecture}")  # fmt: skip
    return shipped


def main() -> None:
    params = load_params()
    cfg = params.separator
    if cfg.start == "shipped":
        use_shipped(params, time.perf_counter())
        return
    init = shipped_to_finetune(params)
    distributed.relaunch(__file__, cfg.nproc)
    start = time.perf_counter()
    with distributed.join(cfg.device) as world:
        if not world.is_main:  # trains its share of every batch; rank 0 records and writes
            train_separator(load_store(params), cfg, CHECKPOINT, params.noises, world=world, progress=False, init=init)
            return
        with stage_run("train_separator", params.used(), groups=("separator", "stft")) as run:
            store = load_store(params)

            def on_epoch(stats: EpochStats) -> None:
                run.log_metrics(epoch_metrics(stats), step=stats.epoch)

            result = train_separator(store, cfg, CHECKPOINT, params.noises, on_epoch=on_epoch, world=world, init=init)
            for stats in result.history[: result.start_epoch - 1]:
                run.log_metrics(epoch_metrics(stats), step=stats.epoch)  # epochs of an earlier, interrupted run
            checkpoints.export(CHECKPOINT, MODEL, "separator")
            write_loss_plot(result.history)
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
            write_json("metrics/train_separator.json", json_safe(metrics) | {
                "start": cfg.start, "architecture": cfg.architecture, "device": result.device})  # fmt: skip


if __name__ == "__main__":
    stage.run(main, "train_separator")
