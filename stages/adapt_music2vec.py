"""adapt_music2vec: fine-tune the clean-trained music2vec on the separator's output (models/music2vec_adapted.pt).

Two classifiers, two stages. `train_music2vec` learns genres from CLEAN training music
(models/music2vec.pt); nothing of it depends on `noises`, so `dvc exp run -S noises=2` restores
it from the cache. This stage adapts a copy of it to what the run's separator leaves behind; it
depends on models/separator.pt and reruns whenever the separator changes.

Training tracks are mixed with training noise (1 and 2 noises, over the separator's own training
SNR range unless adapt_music2vec.snr_db says otherwise), separated, and music2vec is fine-tuned
from its clean weights on crops of the separated music with clean crops mixed in. The product's
path (src/danet_music2vec/evidence.py) is chosen on the mixtures of one held-out track per genre,
by a clean and an adapted classifier trained again without those tracks (the run's clean
classifier knows them by heart); the rule is stored in the model file, and `classify`, `sweep`,
the served model and `dm2v classify --denoise` answer with it.

Resume: the per-epoch checkpoint lives in checkpoints/music2vec_adapted.pt, as train_music2vec's.
Memory: the training mixtures' separated music is kept on disk while the stage runs
(checkpoints/music2vec_adapted_music.f32), not in memory.
"""

import time

import numpy as np
import pandas as pd
import torch

from danet_music2vec import checkpoints, stage
from danet_music2vec.adaptation import MusicOf, held_out, separated_mixtures, subset, training_set
from danet_music2vec.atomic import write_csv, write_json
from danet_music2vec.checksums import sha256_file
from danet_music2vec.classification import Classifier
from danet_music2vec.devices import resolve_device
from danet_music2vec.evidence import GenreReader, ProductRule, choose_rule, path_scores
from danet_music2vec.music2vec_training import load_clip_set, train
from danet_music2vec.params import Music2VecParams, ParamError, load_params
from danet_music2vec.separation import Separator
from danet_music2vec.spool import WaveSpool
from danet_music2vec.tracking import stage_run
from danet_music2vec.workers import worker_count

CLEAN = "models/music2vec.pt"
SEPARATOR = "models/separator.pt"
CHECKPOINT = "checkpoints/music2vec_adapted.pt"
# The clean and the adapted classifier trained without the validation tracks, which choose the rule.
FOLD_CHECKPOINTS = ("checkpoints/music2vec_adapted_rule_clean.pt", "checkpoints/music2vec_adapted_rule_adapted.pt")
MODEL = "models/music2vec_adapted.pt"
# The training mixtures' separated music, read crop by crop during fine-tuning (spool.py says why); removed at the end.
SPOOL = "checkpoints/music2vec_adapted_music.f32"
LOSS_PLOT = "plots/music2vec_adapted_loss.csv"


def main() -> None:
    params = load_params()
    cfg = params.adapt_music2vec
    start = time.perf_counter()
    with stage_run("adapt_music2vec", params.used(), groups=("adapt_music2vec",)) as run, WaveSpool(SPOOL) as spool:
        clean_state = checkpoints.load(CLEAN, "music2vec")
        clean_cfg = Music2VecParams.model_validate(clean_state["params"])
        # The clean classifier's own recipe, with the fine-tuning's length, rate and seed; no noise augmentation:
        # the separated music is what it is to learn.
        tuning = clean_cfg.model_copy(update={
            "epochs": cfg.epochs, "lr": cfg.lr, "crops_per_clip": cfg.crops_per_clip, "seed": cfg.seed,
            "augment_noise_prob": 0.0, "nproc": 1, "device": cfg.device, "init_weights": None, "init_sha256": None,
        })  # fmt: skip
        separator = Separator.load(SEPARATOR)
        snr_db = cfg.snr_db or checkpoints.load(SEPARATOR, "separator")["params"].get("train_snr_db")
        if snr_db is None:
            raise ParamError("adapt_music2vec.snr_db is null and the separator was trained at native levels: "
                             "give adapt_music2vec.snr_db a [lo, hi] range in dB")  # fmt: skip
        snr_db = (float(snr_db[0]), float(snr_db[1]))

        rate = clean_cfg.sample_rate
        splits = pd.read_parquet("data/splits.parquet")
        clips = load_clip_set(splits, ".", rate, kind="music", split="train", classes=clean_state["classes"])
        groups = splits.set_index("clip_id").loc[clips.clip_ids, "group"].astype(str).tolist()
        noises = load_clip_set(splits, ".", rate, kind="noise", split="train").waves
        val = held_out(groups, clips.labels, cfg.val_tracks_per_genre, cfg.seed)
        if not val:
            raise ParamError(f"adapt_music2vec.val_tracks_per_genre={cfg.val_tracks_per_genre}: no genre has more training "
                             "tracks than that, so none is left to choose the product's path on; lower it or add music")  # fmt: skip
        fold = sorted(set(range(len(clips.waves))) - set(val))  # the tracks the rule's classifiers train on

        mixing = dict(separate=MusicOf(separator), sample_rate=rate, noise_counts=cfg.noises, snr_db=snr_db, seed=cfg.seed,
                      workers=worker_count(params.workers))
        mixtures = separated_mixtures(clips, range(len(clips.waves)), noises, per_clip=cfg.mixtures_per_clip, stream=0,
                                      spool=spool, **mixing)  # fmt: skip
        val_mixtures = separated_mixtures(clips, val, noises, per_clip=cfg.val_mixtures_per_clip, stream=1, **mixing)
        adapted_from = {"separator_sha256": sha256_file(SEPARATOR), "clean_sha256": sha256_file(CLEAN)}
        device = resolve_device(cfg.device)

        def classifier(model: torch.nn.Module) -> Classifier:
            return Classifier(model, clips.classes, rate, clean_cfg.crop_seconds, clean_cfg.test_hop_seconds, device=device)

        # The rule is chosen by a clean and an adapted classifier that never heard the validation tracks
        # (adaptation.py says why): the clean recipe and the fine-tuning again, without them.
        fold_clean = train(clean_cfg.model_copy(update={"nproc": 1, "device": cfg.device}), subset(clips, fold),
                           FOLD_CHECKPOINTS[0], progress=True).model  # fmt: skip
        fold_mixtures = [m for m in mixtures if m.clip in fold]
        fold_adapted = train(tuning, training_set(clips, fold_mixtures, cfg.clean_share), FOLD_CHECKPOINTS[1],
                             init_state=fold_clean.state_dict(), match_extra=adapted_from).model  # fmt: skip
        reader = GenreReader(classifier(fold_clean), classifier(fold_adapted), ProductRule())
        evidence = [reader.evidence(m.mixture, m.music, rate) for m in val_mixtures]
        val_labels = [int(clips.labels[m.clip]) for m in val_mixtures]
        rule, scores = choose_rule(evidence, val_labels, len(clips.classes), cfg.combine_weights, cfg.gates_db, cfg.paths)
        # What adaptation costs on clean music: both classifiers on the validation tracks as they are.
        for name, model in (("clean", reader.clean), ("clean_adapted", reader.adapted)):
            probas = np.stack([model.predict_proba(clips.waves[i], rate) for i in val])
            scores[name] = dict(zip(("f1", "log_loss"), path_scores(probas, clips.labels[val], len(clips.classes))))

        # The shipped adapted classifier: the run's clean classifier fine-tuned on every training track.
        result = train(
            tuning, training_set(clips, mixtures, cfg.clean_share), CHECKPOINT,
            init_state=clean_state["model_state"], match_extra=adapted_from,
            on_epoch=lambda epoch, rec: run.log_metrics(rec, step=epoch),
        )  # fmt: skip
        checkpoints.export(CHECKPOINT, MODEL, "music2vec", as_kind="music2vec_adapted",
                           extra={"product_rule": rule.as_dict(), "validation": scores, "adapted_from": adapted_from})  # fmt: skip
        write_csv(LOSS_PLOT, pd.DataFrame(result.history)[["epoch", "loss", "accuracy"]])

        metrics: dict[str, float | int | str] = {
            f"validation.{path}.{key}": value for path, values in scores.items() for key, value in values.items()
        }
        metrics |= {
            "product.weight": rule.weight,
            "product.gate_db": rule.gate_db,
            "train.loss": result.history[-1]["loss"],
            "train.accuracy": result.history[-1]["accuracy"],
            "epochs": len(result.history),
            "resumed_from_epoch": result.resumed_from_epoch,
            "train_clips": len(clips.waves),
            "train_mixtures": len(mixtures),
            "validation_clips": len(val),
            "validation_mixtures": len(val_mixtures),
            "snr_db_low": snr_db[0],
            "snr_db_high": snr_db[1],
            "train_seconds": result.seconds,
            "stage_seconds": time.perf_counter() - start,
        }
        run.log_metrics(metrics)
        run.log_params({"product.path": rule.path})
        run.log_artifact(LOSS_PLOT)
        write_json("metrics/adapt_music2vec.json", metrics | {"product.path": rule.path})


if __name__ == "__main__":
    stage.run(main, "adapt_music2vec")
