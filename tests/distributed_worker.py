"""Run by tests/test_distributed.py under `torchrun`: one trainer call per process, rank 0 reports as JSON.

Usage: distributed_worker.py MODE CONFIG_JSON OUT [STORE CHECKPOINT]
  separator-grad  the first step's gradients of the DDP-wrapped separator network (torch.save to OUT)
  separator-train train_separator on STORE, checkpointing to CHECKPOINT
  music2vec-train music2vec's train on the tests' toy clips, checkpointing to CHECKPOINT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: `tests.` helpers

from danet_music2vec import distributed  # noqa: E402
from danet_music2vec.features import FeatureStore  # noqa: E402
from danet_music2vec.music2vec_training import train  # noqa: E402
from danet_music2vec.params import SeparatorParams  # noqa: E402
from danet_music2vec.separator_training import build_network, make_mixers, step_seeds, train_separator, training_step  # noqa: E402

torch.set_num_threads(1)


def first_step_gradients(store: FeatureStore, cfg: SeparatorParams, world: distributed.World) -> dict[str, torch.Tensor]:
    """Gradients after one backward pass on this rank's share of the first global batch (averaged by DDP)."""
    torch.manual_seed(cfg.seed)
    model = build_network(cfg, store.config.n_freq)
    wrapped = world.wrap(model, find_unused_parameters=True)
    mixer, _ = make_mixers(store, cfg, noises=1)
    music, noise = mixer.batch(world.share(step_seeds(cfg, 1)[0]))
    training_step(wrapped, music, noise, cfg, store.config, use_kmeans=False).loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def main(mode: str, config: str, out: str, store: str = "", checkpoint: str = "") -> None:
    values = json.loads(config)
    with distributed.join("cpu") as world:
        if mode == "separator-grad":
            grads = first_step_gradients(FeatureStore(store), SeparatorParams.model_validate(values), world)
            if world.is_main:
                torch.save(grads, out)
            return
        if mode == "separator-train":
            result = train_separator(FeatureStore(store), SeparatorParams.model_validate(values), checkpoint, world=world,
                                     progress=False)  # fmt: skip
            report = {"losses": result.losses, "start_epoch": result.start_epoch, "val": [h.val_si_sdr for h in result.history]}
        else:
            from tests.test_music2vec_training import toy_clips, toy_config

            result = train(toy_config(**values), toy_clips(4, seed=0), checkpoint, progress=False, world=world)
            report = {"losses": [h["loss"] for h in result.history], "start_epoch": result.resumed_from_epoch + 1}
        if world.is_main:
            Path(out).write_text(json.dumps(report | {"world_size": world.size}))


if __name__ == "__main__":
    main(*sys.argv[1:])
