"""Checkpoints of both models: one format, written atomically, read safely.

A checkpoint is a dict of plain data only (tensors, numbers, strings, lists, dicts), read
with ``torch.load(weights_only=True)``: a file from anywhere cannot run code here, it can
only fail to be a checkpoint (:class:`~danet_music2vec.errors.CheckpointError`, one line
naming the file and the fix). Every checkpoint holds:

- ``kind``: one of :data:`KINDS`, and ``format`` (:data:`FORMAT`);
- ``epoch``: the number of epochs completed (1 after the first), ``complete``;
- ``model_config`` (plain data that rebuilds the network) and ``model_state``;
- ``params``: the validated params group it was trained with, as plain data;
- ``history``: one dict per completed epoch;
- while training only: ``optimizer_state``, ``match`` (what a resumed run must agree on)
  and, for a model chosen on validation, ``best`` (the best epoch's weights).

:func:`export` turns a finished training checkpoint into the model file a stage ships
(no optimizer state; the best epoch's weights), and :func:`resumable` decides whether a
training checkpoint continues the run at hand.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from danet_music2vec.atomic import atomic_path
from danet_music2vec.errors import CheckpointError
from danet_music2vec.models import separator_network
from danet_music2vec.models.music2vec import Music2Vec

FORMAT = 3
# kind -> the stage that writes it; music2vec_adapted is a music2vec network fine-tuned on separated music
KINDS = {"separator": "train_separator", "music2vec": "train_music2vec", "music2vec_adapted": "adapt_music2vec"}
TRAINING_ONLY = ("optimizer_state", "match", "best")


def _plain(obj: Any) -> Any:
    """``obj`` with tensors detached onto the CPU (optimizer state included), so any device loads it."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def save(path: str | os.PathLike[str], kind: str, state: dict[str, Any]) -> None:
    """``torch.save`` of ``state`` (plain data) tagged with ``kind`` and the format, via a temp file and rename."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; use one of {', '.join(KINDS)}")
    with atomic_path(path) as tmp:
        torch.save(_plain(state) | {"kind": kind, "format": FORMAT}, tmp)


def load(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read a ``kind`` checkpoint onto the CPU; :class:`CheckpointError` when the file is not one."""
    path = Path(path)
    fix = f"delete it and rerun `dvc repro {KINDS[kind]}`"
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; run `dvc repro {KINDS[kind]}` (or give the path of a {kind} model)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Not torch's message: it advises turning weights-only loading off, which would run the file's code.
        raise CheckpointError(f"{path}: not a {kind} checkpoint (not a file of plain data: tensors, numbers, strings; it is not "
                              f"loaded); {fix}") from None  # fmt: skip
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable {kind} checkpoint ({reason[:200]}); {fix}") from None
    if not isinstance(state, dict) or state.get("kind") != kind or state.get("format") != FORMAT:
        found = state.get("kind", "unknown") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a {kind} checkpoint of format {FORMAT} (found {found}); {fix}")
    return state


def export(
    checkpoint_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    kind: str,
    as_kind: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the model of a finished training checkpoint, atomically: the best epoch's weights, no training state.

    ``as_kind`` (default ``kind``) is the model file's kind and ``extra`` joins its keys: a music2vec
    checkpoint fine-tuned by ``adapt_music2vec`` ships as ``music2vec_adapted`` with the product's rule.
    """
    state = load(checkpoint_path, kind)
    if not state.get("complete", False):
        raise CheckpointError(f"{checkpoint_path}: training is not finished (epoch {state['epoch']}); "
                              f"rerun `dvc repro {KINDS[kind]}`")  # fmt: skip
    model = {k: v for k, v in state.items() if k not in TRAINING_ONLY}
    if "best" in state:  # chosen on validation: the best epoch, not necessarily the last
        best = state["best"]
        model |= {"model_state": best["state"], "best_epoch": best["epoch"]} | best.get("extra", {})
    model |= extra or {}
    save(model_path, as_kind or kind, model)
    return model


def network(state: dict[str, Any]) -> nn.Module:
    """The trained network of a loaded checkpoint, in eval mode on the CPU."""
    config = state["model_config"]
    if state["kind"] == "separator":
        model = separator_network(config)
    else:
        model = Music2Vec(config["n_classes"], channels=config["channels"], lstm_hidden=config["lstm_hidden"],
                          dropout=config["dropout"])  # fmt: skip
    model.load_state_dict(state["model_state"])
    return model.eval()


def resumable(path: str | os.PathLike[str], kind: str, match: dict[str, Any], epochs: int) -> dict[str, Any] | None:
    """The training checkpoint at ``path`` if it continues this run (same ``match``, at most ``epochs`` done), else None.

    None also for a missing or unreadable file: training then starts afresh and overwrites it.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = load(path, kind)
    except CheckpointError as err:
        print(f"{err}: training from scratch", file=sys.stderr)
        return None
    if state.get("match") != _plain(match) or "optimizer_state" not in state or state["epoch"] > epochs:
        print(f"{path}: written for other parameters or training data; training from scratch", file=sys.stderr)
        return None
    return state
