"""The separator shipped inside the package: its training recipe, its file, and how it is rebuilt.

``separator.pt`` (beside this module) is the mask network trained once on all the real sound the
repository holds: the sample profile's training split plus the separator-only pools
``data/extra-music`` and ``data/extra-noise``, by ``python scripts/train_pretrained.py`` with
:data:`RECIPE` (params.yaml with these overrides). It is a separator checkpoint
(:mod:`danet_music2vec.checkpoints`) holding the network, the inference settings, the manifest of
every training clip (sha256) and the card's numbers; docs/MODEL_CARD.md describes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).with_name("separator.pt")

# params.yaml with these overrides trains the shipped separator (keys as `dvc exp run -S` takes them).
RECIPE: dict[str, Any] = {
    "data.separation_music_dirs": ["data/extra-music"],
    "data.separation_noise_dirs": ["data/extra-noise"],
    "separator.architecture": "mask",
    "separator.hidden": 300,
    "separator.steps_per_epoch": 500,
    "separator.epochs": 40,
}
