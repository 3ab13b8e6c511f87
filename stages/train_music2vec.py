"""train_music2vec: train the genre classifier on CLEAN training music only (models/music2vec.pt).

Reads data/splits.parquet and the clean audio in data/raw, never the mixtures: its
DVC deps and params (`music2vec` only) stay the same under `dvc exp run -S noises=2`,
so DVC restores the cached model instead of retraining it. The optional noise
augmentation draws TRAIN-split noise clips from data/splits.parquet, which does not
depend on `noises` or `mix`.

Resume: the per-epoch checkpoint lives in checkpoints/music2vec.pt, outside DVC's
outs (DVC deletes outs before rerunning a stage); an interrupted run picks up there.

Data-parallel: `music2vec.nproc: N` (N > 1) reruns this script under
`torchrun --standalone --nproc_per_node=N`; rank 0 alone logs to MLflow and writes outputs.
"""

import time

import numpy as np
import pandas as pd

from danet_music2vec import checkpoints, distributed, stage
from danet_music2vec.atomic import write_csv, write_json
from danet_music2vec.music2vec_training import ClipSet, load_clip_set, train
from danet_music2vec.params import Music2VecParams, load_params
from danet_music2vec.tracking import stage_run

CHECKPOINT = "checkpoints/music2vec.pt"
MODEL = "models/music2vec.pt"
LOSS_PLOT = "plots/music2vec_loss.csv"


def load_training_audio(cfg: Music2VecParams) -> tuple[ClipSet, list[np.ndarray]]:
    """The clean training music, and the training noise clips when the noise augmentation is on."""
    splits = pd.read_parquet("data/splits.parquet")
    clips = load_clip_set(splits, ".", cfg.sample_rate, kind="music", split="train")
    noises = []
    if cfg.augment_noise_prob > 0:
        noises = load_clip_set(splits, ".", cfg.sample_rate, kind="noise", split="train").waves
    return clips, noises


def main() -> None:
    params = load_params()
    cfg = params.music2vec
    distributed.relaunch(__file__, cfg.nproc)
    start = time.perf_counter()
    with distributed.join(cfg.device) as world:
        if not world.is_main:  # trains its share of every batch; rank 0 records and writes
            clips, noises = load_training_audio(cfg)
            train(cfg, clips, CHECKPOINT, noises=noises, progress=False, world=world)
            return
        with stage_run("train_music2vec", params.used(), groups=("music2vec",)) as run:
            clips, noises = load_training_audio(cfg)
            result = train(
                cfg, clips, CHECKPOINT, noises=noises, on_epoch=lambda epoch, rec: run.log_metrics(rec, step=epoch), world=world
            )
            checkpoints.export(CHECKPOINT, MODEL, "music2vec")
            write_csv(LOSS_PLOT, pd.DataFrame(result.history)[["epoch", "loss", "accuracy"]])
            last = result.history[-1]
            metrics = {
                "train.loss": last["loss"],
                "train.accuracy": last["accuracy"],
                "epochs": len(result.history),
                "resumed_from_epoch": result.resumed_from_epoch,
                "clips": len(clips.waves),
                "classes": len(clips.classes),
                "clip_seconds": float(sum(len(w) for w in clips.waves) / cfg.sample_rate),
                "train_seconds": result.seconds,
                "processes": world.size,
                "stage_seconds": time.perf_counter() - start,
            }
            run.log_metrics(metrics)
            run.log_artifact(LOSS_PLOT)
            # Two rows, not one: MLflow exports the model with torch.export, which fixes a size-1
            # batch dimension to 1, and the logged model would then reject batches of crops.
            example = np.zeros((2, cfg.crop_samples), dtype=np.float32)
            run.log_model(result.model, name="music2vec", input_example=example)
            write_json("metrics/train_music2vec.json", metrics | {"class_names": result.classes, "device": result.device})


if __name__ == "__main__":
    stage.run(main, "train_music2vec")
