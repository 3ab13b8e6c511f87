"""Read and validate ``params.yaml``.

Stages read the same ``params.yaml`` that DVC tracks (``dvc exp run -S`` edits it
in place), with PyYAML rather than ``dvc.api.params_show()``: that call costs a
second or more of DVC start-up per stage and returns the same values.
Validation happens here, once, so that a bad value stops a stage with a message
that names the key and the allowed values instead of failing deep inside a library.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# Keys renamed by the separator redesign (old dotted key -> new one; None: removed, the architecture decides).
# A params.yaml that still holds an old key stops with a message naming the new one, and the experiment
# scripts read experiments recorded under the old names through this table.
RENAMED: dict[str, str | None] = {
    "danet.objective": "separator.architecture",
    "danet.hidden": "separator.hidden",
    "danet.layers": "separator.layers",
    "danet.dropout": "separator.dropout",
    "danet.epochs": "separator.epochs",
    "danet.steps_per_epoch": "separator.steps_per_epoch",
    "danet.batch_size": "separator.batch_size",
    "danet.lr": "separator.lr",
    "danet.lr_schedule": "separator.lr_schedule",
    "danet.loss": "separator.loss",
    "danet.train_snr_db": "separator.train_snr_db",
    "danet.max_gain_db": "separator.max_gain_db",
    "danet.train_eq_db": "separator.train_eq_db",
    "danet.extra_music_share": "separator.extra_music_share",
    "danet.val_fraction": "separator.val_fraction",
    "danet.val_examples": "separator.val_examples",
    "danet.grad_clip": "separator.grad_clip",
    "danet.seed": "separator.seed",
    "danet.device": "separator.device",
    "danet.precision": "separator.precision",
    "danet.nproc": "separator.nproc",
    "danet.loader_workers": "separator.loader_workers",
    "danet.mask": "separator.ideal_mask",
    "danet.embedding_dim": "separator.danet.embedding_dim",
    "danet.threshold_db": "separator.danet.threshold_db",
    "danet.attractor": "separator.danet.attractor",
    "danet.kmeans_epochs": "separator.danet.kmeans_epochs",
    "danet.head_weight": "separator.chimera.head_weight",
    "separate.masks": None,
    "separate.attractor": "separate.danet.attractor",
    "separate.kmeans_scope": "separate.danet.kmeans_scope",
    "separate.kmeans_init": "separate.danet.kmeans_init",
    "separate.resolve_order": "separate.danet.resolve_order",
}
# Values of danet.objective -> separator.architecture.
RENAMED_ARCHITECTURES = {"attractor": "danet", "chimera": "chimera", "mask": "mask"}


class ParamError(ValueError):
    """A value in params.yaml is missing or out of range."""


def load_params(path: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    """Load ``params.yaml`` and validate the keys every stage relies on."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamError(f"{path}: not found; run the stage from the repository root") from None
    except yaml.YAMLError as err:
        raise ParamError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ParamError(f"{path}: expected a mapping of parameter groups")
    validate(params)
    return params


def lookup(params: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` (``"danet.epochs"``) in nested params; ``KeyError(dotted)`` if any part is missing."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def yaml_text(value: Any) -> str:
    """A param value as one line of YAML, as ``dvc exp run -S key=...`` and a KFP pipeline parameter take it.

    ``[-5, 5]``, ``null``, ``[]``, ``sample``: the YAML types survive (``None`` stays null, not the string).
    """
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf).removesuffix("...\n").strip()


def _require(params: dict[str, Any], dotted: str) -> Any:
    try:
        return lookup(params, dotted)
    except KeyError:
        raise ParamError(f"params.yaml: missing '{dotted}'") from None


def _choice(params: dict[str, Any], dotted: str, allowed: tuple[Any, ...]) -> None:
    value = _require(params, dotted)
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ParamError(f"params.yaml: {dotted}={value!r} is not allowed; use one of {choices}")


def _positive(params: dict[str, Any], dotted: str, integer: bool = False) -> None:
    value = _require(params, dotted)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise ParamError(f"params.yaml: {dotted}={value!r} must be {what}")


def parse_snr(value: Any) -> None | float | tuple[float, float]:
    """``mix.snr_db``: a number, a ``[lo, hi]`` range, or ``null`` (native levels)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and value[0] <= value[1]
    ):
        return float(value[0]), float(value[1])
    raise ParamError(f"params.yaml: mix.snr_db={value!r} must be a number, a [lo, hi] range with lo <= hi, or null")


def _seed(params: dict[str, Any], dotted: str) -> None:
    value = _require(params, dotted)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParamError(f"params.yaml: {dotted}={value!r} must be a non-negative integer")


def validate(params: dict[str, Any]) -> None:
    """Raise :class:`ParamError` for the first invalid value found."""
    noises = _require(params, "noises")
    if isinstance(noises, bool) or noises not in (1, 2):
        raise ParamError(
            f"params.yaml: noises={noises!r} is not supported; use 1 or 2 (e.g. `dvc exp run -S noises=2`)"
        )
    for group in ("data", "split", "mix", "stft", "danet", "separate", "music2vec", "score", "sweep"):
        if not isinstance(_require(params, group), dict):
            raise ParamError(f"params.yaml: '{group}' must be a group of parameters (see the repository's params.yaml)")
    _choice(params, "data.profile", ("sample", "local", "full"))
    _choice(params, "data.on_bad_file", ("error", "skip"))
    _positive(params, "data.sample_rate", integer=True)
    _positive(params, "data.min_music_seconds")
    _positive(params, "data.min_noise_seconds")
    _choice(params, "split.music_method", ("auto", "stratified", "gtzan_seed", "gtzan_filtered"))
    _choice(params, "split.noise_method", ("auto", "stratified", "esc50_original", "folds"))
    fraction = _require(params, "split.test_fraction")
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ParamError(f"params.yaml: split.test_fraction={fraction!r} must be between 0 and 1")
    _positive(params, "split.min_clips_per_genre", integer=True)
    _seed(params, "split.seed")
    _seed(params, "mix.seed")
    parse_snr(_require(params, "mix.snr_db"))
    _positive(params, "mix.test_mixtures_per_clip", integer=True)
    if _require(params, "mix.test_segment_seconds") is not None:
        _positive(params, "mix.test_segment_seconds")
    _positive(params, "sweep.mixtures_per_clip", integer=True)
    dirs = _require(params, "data.separation_music_dirs")
    if not isinstance(dirs, list) or not all(isinstance(d, str) and d for d in dirs):
        raise ParamError(f"params.yaml: data.separation_music_dirs={dirs!r} must be a list of folders, e.g. [data/extra-music] or []")
    for key in ("sample_rate", "n_fft", "hop", "chunk_frames", "shard_chunks"):
        _positive(params, f"stft.{key}", integer=True)
    _choice(params, "stft.window", ("sqrt_hann", "hann"))
    if params["stft"]["hop"] > params["stft"]["n_fft"]:
        raise ParamError("params.yaml: stft.hop must not exceed stft.n_fft")
    snrs = _require(params, "sweep.snr_db")
    if (
        not isinstance(snrs, list)
        or not snrs
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in snrs)
        or len(set(snrs)) != len(snrs)
    ):
        raise ParamError(f"params.yaml: sweep.snr_db={snrs!r} must be a non-empty list of distinct numbers (dB), e.g. [-5, 0, 5, 10]")
    if not isinstance(_require(params, "score.full_band"), bool):
        raise ParamError("params.yaml: score.full_band must be true or false")
    if not isinstance(_require(params, "separate.resolve_order"), bool):
        raise ParamError("params.yaml: separate.resolve_order must be true or false")
