"""Turn the separator trained by :mod:`.training` into the file shipped with the package.

The shipped file is a separator checkpoint (:mod:`danet_music2vec.checkpoints`) with the
weights in half precision (half the megabytes; the separation it gives is measured against
full precision in docs/MODEL_CARD.md), the inference settings of the recipe's params.yaml,
the manifest of its training clips (``training_clips``, also written as a CSV for people),
and ``card``: what trained it, for how long, from which commit.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from danet_music2vec import checkpoints
from danet_music2vec.atomic import write_csv
from danet_music2vec.params import SeparateParams, lookup, read_params_yaml
from danet_music2vec.pretrained import RECIPE, SHIPPED

NETWORK = "models/separator_network.pt"


def package(work: Path, out: Path = SHIPPED, manifest_csv: Path | None = None, half: bool = True) -> dict[str, Any]:
    """Write the shipped separator from the training work folder ``work``; returns its card."""
    network = checkpoints.load(work / NETWORK, "separator")
    # The work folder's params.yaml is of the commit that trained it: only the groups used here are read, so a
    # later schema (keys added since) still packages it.
    params = read_params_yaml(work / "params.yaml")
    separate = SeparateParams.model_validate(params["separate"])
    trained = json.loads((work / "metrics" / "train_separator.json").read_text())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True).stdout.strip()
    steps_per_epoch, batch_size = params["separator"]["steps_per_epoch"], params["separator"]["batch_size"]
    clips = network["training_clips"]
    card = {
        # What the work folder trained with at the recipe's keys (it may have overridden RECIPE, e.g. a seed).
        "recipe": {key: _trained_with(params, key) for key in RECIPE},
        "commit": commit,
        "architecture": network["model_config"]["architecture"],
        "epochs": trained["epochs"],
        "steps": trained["epochs"] * steps_per_epoch,
        "batch_size": batch_size,
        "train_seconds": trained["seconds"],
        "device": trained["device"],
        "best_epoch": trained["best_epoch"],
        "best_val_si_sdr": trained["best_val_si_sdr"],
        "clips": {f"{role}.{kind}": n for (role, kind), n in sorted(Counter((c["role"], c["kind"]) for c in clips).items())},
        "precision": "fp16" if half else "fp32",
    }
    state = network | {"inference": separate.used(card["architecture"]), "card": card}
    if half:
        state["model_state"] = {k: v.half() if v.is_floating_point() else v for k, v in network["model_state"].items()}
    checkpoints.save(out, "separator", state)
    if manifest_csv is not None:
        write_csv(manifest_csv, pd.DataFrame(clips))
    return card


def _trained_with(params: dict[str, Any], key: str) -> Any:
    """The work folder's value at the recipe's dotted ``key``; None for a key added to RECIPE after its commit."""
    try:
        return lookup(params, key)
    except KeyError:
        return None
