"""Pretrained SoundNet conv layers for music2vec (``music2vec.init_weights`` + ``init_sha256``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from danet_music2vec.checksums import sha256_file
from danet_music2vec.models.music2vec import Music2Vec
from danet_music2vec.params import ParamError


def load_init_weights(model: Music2Vec, path: str | os.PathLike[str], sha256: str) -> list[int]:
    """Load pretrained SoundNet conv layers from ``path`` after checking its sha256.

    Returns the SoundNet layers loaded. Raises ParamError when the file is missing,
    its hash differs, it is not a PyTorch state dict, or no layer matches.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamError(
            f"music2vec.init_weights: {path} not found; put the pretrained SoundNet weights (.pth) there "
            "or set music2vec.init_weights and music2vec.init_sha256 to null to train from scratch"
        )
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise ParamError(
            f"music2vec.init_weights: {path} has sha256 {actual}, but music2vec.init_sha256 is {sha256}; "
            "the file is corrupt or a different one: replace it, or set init_sha256 to the hash of the file you trust"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ParamError(f"music2vec.init_weights: {path} is not a PyTorch state dict ({err}); use SoundNet8 .pth weights") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ParamError(f"music2vec.init_weights: {path} does not hold a state dict; use SoundNet8 .pth weights")
    loaded = model.load_soundnet_state(state)
    if not loaded:
        raise ParamError(
            f"music2vec.init_weights: no conv layer of {path} matches music2vec.channels={list(model.channels)}; "
            "use SoundNet's widths (16, 32, 64, 128, 256, ...) to load pretrained layers"
        )
    return loaded
