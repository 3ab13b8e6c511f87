"""``params.yaml``: the one source of defaults, checked by one schema.

Stages read the same ``params.yaml`` that DVC tracks (``dvc exp run -S`` edits it in
place), with PyYAML rather than ``dvc.api.params_show()``: that call costs a second or
more of DVC start-up per stage and returns the same values. :func:`load_params` checks
the WHOLE file once against the pydantic models below and returns them, typed and
frozen: a missing, unknown, renamed or out-of-range key stops the stage with one line per
problem, each naming the key, so a bad value never fails deep inside a library. The
models declare no defaults: a key deleted from params.yaml is an error, not a silent
fallback. Library code takes these typed, already-validated values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError,
    model_validator,
)

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
    "score.workers": "workers",  # separate and classify use the same processes
}
# Values of danet.objective -> separator.architecture.
RENAMED_ARCHITECTURES = {"attractor": "danet", "chimera": "chimera", "mask": "mask"}


class ParamError(ValueError):
    """A value in params.yaml is missing, unknown, renamed or out of range."""


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError("must be [lo, hi] with lo <= hi")
    return value


def _one_or_two(value: int) -> int:
    if value not in (1, 2):
        raise ValueError("is not supported; use 1 or 2 (e.g. `dvc exp run -S noises=2`)")
    return value


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError("must be odd: a non-causal convolution is centred on its frame")
    return value


def _distinct(values: list[float]) -> list[float]:
    if len(set(values)) != len(values):
        raise ValueError("must hold distinct values")
    return values


PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
PositiveNumber = Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]
Share = Annotated[StrictFloat, Field(ge=0, lt=1)]  # a share in [0, 1)
OpenShare = Annotated[StrictFloat, Field(gt=0, lt=1)]  # a share in (0, 1)
Probability = Annotated[StrictFloat, Field(ge=0, le=1)]
Range = Annotated[tuple[Number, Number], AfterValidator(_ordered)]  # [lo, hi] in dB
Path_ = Annotated[StrictStr, Field(min_length=1)]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16"]
InferencePrecision = Literal["auto", "fp32", "bf16", "int8"]  # auto: bf16 where the device computes it natively; int8: CPU only
# The ways a noisy recording can be classified (danet_music2vec.evidence says what each is)
ProductPath = Literal["mixture", "separated", "separated_adapted", "combined", "gated"]


class Group(BaseModel):
    """A group of params.yaml: every key required, no unknown key, frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Group):
    profile: Literal["sample", "local", "full"]
    sample_dir: Path_
    music_dir: Path_
    noise_dir: Path_
    noise_csv: Path_ | None
    separation_music_dirs: list[Path_]
    separation_noise_dirs: list[Path_]
    download_dir: Path_
    sample_rate: PositiveInt
    min_music_seconds: PositiveNumber
    min_noise_seconds: PositiveNumber
    on_bad_file: Literal["error", "skip"]


class SplitParams(Group):
    music_method: Literal["auto", "stratified", "gtzan_seed", "gtzan_filtered"]
    noise_method: Literal["auto", "stratified", "esc50_original", "folds"]
    noise_test_folds: list[PositiveInt]
    test_fraction: OpenShare
    seed: NonNegativeInt
    min_clips_per_genre: PositiveInt


class MixParams(Group):
    snr_db: Number | Range | None  # a number, a [lo, hi] range drawn per mixture, or null (native levels)
    seed: NonNegativeInt
    test_mixtures_per_clip: PositiveInt
    test_segment_seconds: PositiveNumber | None


class StftParams(Group):
    sample_rate: PositiveInt
    n_fft: PositiveInt
    hop: PositiveInt
    window: Literal["sqrt_hann", "hann"]
    chunk_frames: PositiveInt
    shard_chunks: PositiveInt

    @model_validator(mode="after")
    def _hop_fits(self) -> "StftParams":
        if self.hop > self.n_fft:
            raise ValueError("stft.hop must not exceed stft.n_fft")
        return self


class MaskParams(Group):
    """The plain mask network has no keys beyond the common ones (the group exists for dvc.yaml)."""


class DanetParams(Group):
    """The Deep Attractor Network's own keys (architecture ``danet``)."""

    embedding_dim: PositiveInt
    threshold_db: PositiveNumber | None  # null: every bin shapes attractors and k-means (the original work)
    attractor: Literal["ideal", "anchored"]
    kmeans_epochs: NonNegativeInt

    @model_validator(mode="after")
    def _anchors_replace_kmeans(self) -> "DanetParams":
        if self.attractor == "anchored" and self.kmeans_epochs:
            raise ValueError("kmeans_epochs must be 0 with attractor: anchored (anchors replace k-means)")
        return self


class ChimeraParams(DanetParams):
    """DANet plus a mask-inference head (Chimera++, architecture ``chimera``)."""

    head_weight: OpenShare


class TcnParams(Group):
    """The convolutional mask network's own keys (architecture ``tcn``: Conv-TasNet's TCN over STFT frames)."""

    channels: PositiveInt  # bottleneck: the residual and skip paths (Conv-TasNet's B)
    hidden: PositiveInt  # inside each block (Conv-TasNet's H)
    kernel: Annotated[PositiveInt, AfterValidator(_odd)]  # of the depthwise convolutions (Conv-TasNet's P)
    blocks: Annotated[StrictInt, Field(ge=1, le=12)]  # per repeat, dilations 1, 2, .., 2**(blocks-1) (Conv-TasNet's X)
    repeats: PositiveInt  # (Conv-TasNet's R)


Architecture = Literal["mask", "chimera", "danet", "tcn"]


def _dump_for(group: "Group", architecture: str) -> dict[str, Any]:
    """``group`` as plain data without the sub-groups of the architectures other than ``architecture``."""
    return group.model_dump(mode="json", exclude={a for a in get_args(Architecture) if a != architecture})


class SeparatorParams(Group):
    """The separator that ``train_separator`` trains; ``architecture`` picks which of its groups applies.

    ``start``: ``scratch`` trains the network these keys describe; ``shipped`` uses the separator shipped
    with the package as it is (no training); ``finetune`` trains the shipped network further on the
    profile's data (its shape, not ``architecture``/``hidden``/``layers``/``dropout``, then applies).
    """

    start: Literal["scratch", "shipped", "finetune"]
    architecture: Architecture
    hidden: PositiveInt
    layers: PositiveInt
    dropout: Share
    epochs: PositiveInt
    steps_per_epoch: PositiveInt
    batch_size: PositiveInt
    lr: PositiveNumber
    budget_minutes: PositiveNumber | None
    lr_schedule: Literal["constant", "cosine"]
    input_norm: Literal["chunk_db", "bin_log1p"]
    loss: Literal["linear_mse", "log_mse", "psa", "magnitude_mse", "si_sdr"]
    ideal_mask: Literal["ratio", "wiener", "binary"]
    train_snr_db: Range | None
    max_gain_db: PositiveNumber
    train_eq_db: PositiveNumber | None
    extra_music_share: OpenShare | None
    noise_balance: Literal["length", "category"]
    val_fraction: Share
    val_examples: PositiveInt
    grad_clip: PositiveNumber | None
    seed: NonNegativeInt
    val_seed: NonNegativeInt | None = None
    device: Device
    precision: Precision
    nproc: PositiveInt
    loader_workers: NonNegativeInt
    mask: MaskParams
    chimera: ChimeraParams
    danet: DanetParams
    tcn: TcnParams

    @property
    def embedding(self) -> DanetParams | None:
        """The DANet keys of the chosen architecture (``chimera`` or ``danet``); None for the mask networks."""
        return {"mask": None, "chimera": self.chimera, "danet": self.danet, "tcn": None}[self.architecture]

    def used(self) -> dict[str, Any]:
        """The keys this architecture uses, as plain data: the common ones and its own group."""
        return _dump_for(self, self.architecture)

    @property
    def validation_seed(self) -> int:
        """The seed of the held-out validation tracks, recordings and mixtures: ``val_seed``, else ``seed``."""
        return self.seed if self.val_seed is None else self.val_seed

    @model_validator(mode="after")
    def _kmeans_within_epochs(self) -> "SeparatorParams":
        if self.embedding is not None and self.embedding.kmeans_epochs > self.epochs:
            raise ValueError(f"separator.{self.architecture}.kmeans_epochs must not exceed separator.epochs")
        return self


class DanetInferenceParams(Group):
    """How DANet's attractors are formed at inference (architecture ``danet``)."""

    attractor: Literal["kmeans", "fixed", "anchored"]
    kmeans_scope: Literal["track", "chunk"]
    kmeans_init: Literal["train", "farthest"]
    resolve_order: StrictBool


class SeparateParams(Group):
    overlap: Share
    chunk_frames: PositiveInt | None
    output_rate: Literal["full", "stft"]
    mask_floor: Share
    batch_size: PositiveInt
    device: Device
    precision: InferencePrecision
    mask: MaskParams
    chimera: MaskParams
    danet: DanetInferenceParams
    tcn: MaskParams

    def used(self, architecture: str) -> dict[str, Any]:
        """The inference settings a separator of ``architecture`` uses, as plain data."""
        return _dump_for(self, architecture)


class SeparatorInference(SeparateParams):
    """The ``inference`` settings a separator file stores: :meth:`SeparateParams.used`, so only the
    group of the file's own architecture is there (the others are None)."""

    mask: MaskParams | None = None
    chimera: MaskParams | None = None
    danet: DanetInferenceParams | None = None
    tcn: MaskParams | None = None
    # Keys added since a file may have been written: the behaviour it was scored with (training-length chunks, fp32).
    chunk_frames: PositiveInt | None = None
    precision: InferencePrecision = "fp32"


class Music2VecParams(Group):
    sample_rate: PositiveInt
    crop_seconds: PositiveNumber
    test_hop_seconds: PositiveNumber
    channels: Annotated[tuple[PositiveInt, ...], Field(min_length=1, max_length=7)]
    lstm_hidden: PositiveInt
    dropout: Share
    epochs: PositiveInt
    batch_size: PositiveInt
    crops_per_clip: PositiveInt
    lr: PositiveNumber
    seed: NonNegativeInt
    device: Device
    precision: Precision
    nproc: PositiveInt
    init_weights: Path_ | None
    init_sha256: Annotated[StrictStr, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None
    augment_gain_db: Range | None
    augment_lowpass_hz: tuple[PositiveInt, ...]
    augment_lowpass_prob: Probability
    augment_noise_prob: Probability
    augment_snr_db: Range

    @model_validator(mode="after")
    def _consistent(self) -> "Music2VecParams":
        if (self.init_weights is None) != (self.init_sha256 is None):
            raise ValueError("init_weights and init_sha256 go together: set both (path of pretrained SoundNet "
                             "weights and its sha256) or leave both null")  # fmt: skip
        if any(2 * cut >= self.sample_rate for cut in self.augment_lowpass_hz):
            raise ValueError(f"augment_lowpass_hz cut-offs must be below {self.sample_rate // 2} Hz")
        return self

    @property
    def crop_samples(self) -> int:
        return int(round(self.crop_seconds * self.sample_rate))


class AdaptMusic2VecParams(Group):
    """The ``adapt_music2vec`` stage: music2vec fine-tuned on the separator's output, and the product's rule."""

    mixtures_per_clip: PositiveInt
    noises: Annotated[tuple[Annotated[StrictInt, AfterValidator(_one_or_two)], ...], Field(min_length=1)]
    snr_db: Range | None
    clean_share: Share
    val_tracks_per_genre: PositiveInt
    val_mixtures_per_clip: PositiveInt
    epochs: PositiveInt
    crops_per_clip: PositiveInt
    lr: PositiveNumber
    paths: Annotated[tuple[ProductPath, ...], Field(min_length=1)]
    combine_weights: Annotated[tuple[Probability, ...], Field(min_length=1)]
    gates_db: Annotated[tuple[Number, ...], Field(min_length=1)]
    seed: NonNegativeInt
    device: Device


class SpectralGateParams(Group):
    percentile: Annotated[StrictFloat, Field(gt=0, lt=100)]
    over_subtraction: PositiveNumber
    floor_db: Number
    smooth_frames: PositiveInt
    freq_median_bins: PositiveInt


class ScoreParams(Group):
    silence_db: Number
    full_band: StrictBool
    bootstrap_n: PositiveInt
    bootstrap_seed: NonNegativeInt
    bootstrap_alpha: OpenShare
    spectral_gate: SpectralGateParams
    bss_eval: Literal["mir_eval", "fast_bss_eval"]  # the BSS Eval library: the same figures (docs/BENCHMARKS.md)


class SweepParams(Group):
    snr_db: Annotated[list[Number], Field(min_length=1), AfterValidator(_distinct)]
    mixtures_per_clip: PositiveInt


class ListenParams(Group):
    """The listening page (stage ``listen``): which test mixtures, and how small their audio."""

    mixtures: Annotated[StrictInt, Field(ge=3)]  # best, median and worst NSDR come first
    vorbis_compression: Annotated[StrictFloat, Field(ge=0, le=1)]  # libsndfile's 0 (best quality) .. 1 (smallest)


class ServeParams(Group):
    """The served model's request limits (the ``package`` stage stores them in the model)."""

    max_seconds: PositiveNumber


class Params(Group):
    """The whole of params.yaml."""

    noises: Annotated[StrictInt, AfterValidator(_one_or_two)]
    workers: PositiveInt | Literal["auto"]  # the test-set stages' processes; auto: one per core this process may use
    data: DataParams
    split: SplitParams
    mix: MixParams
    stft: StftParams
    separator: SeparatorParams
    separate: SeparateParams
    music2vec: Music2VecParams
    adapt_music2vec: AdaptMusic2VecParams
    score: ScoreParams
    sweep: SweepParams
    listen: ListenParams
    serve: ServeParams

    def used(self) -> dict[str, Any]:
        """Every key the chosen separator architecture uses, as plain data (what MLflow logs and keys runs by)."""
        architecture = self.separator.architecture
        return self.model_dump(mode="json") | {"separator": self.separator.used(), "separate": self.separate.used(architecture)}

    @model_validator(mode="after")
    def _anchored_inference_needs_anchors(self) -> "Params":
        if (self.separator.architecture == "danet" and self.separate.danet.attractor == "anchored"
                and self.separator.danet.attractor != "anchored"):  # fmt: skip
            raise ValueError("separate.danet.attractor: anchored needs a separator trained with separator.danet.attractor: anchored")
        return self

    @model_validator(mode="after")
    def _tcn_dilations_fit_the_chunk(self) -> "Params":
        dilation = 2 ** (self.separator.tcn.blocks - 1)
        if self.separator.architecture == "tcn" and dilation >= self.stft.chunk_frames:
            raise ValueError(f"separator.tcn.blocks={self.separator.tcn.blocks}: the largest dilation ({dilation} frames) must be "
                             f"below stft.chunk_frames ({self.stft.chunk_frames}), or its outer taps only ever see padding "
                             "in training")  # fmt: skip
        return self


def _key(loc: tuple[Any, ...]) -> str:
    # pydantic appends the member of a union it tried ("float", "tuple[...]") and list indexes: keep the key path.
    parts = []
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and ("[" in part or part in ("float", "int", "function-after"))):
            break
        parts.append(str(part))
    return ".".join(parts)


def _renamed(key: str, value: Any) -> list[str]:
    """The new names of an old key (and of the keys inside an old group such as ``danet``)."""
    if isinstance(value, dict) and any(f"{key}.{k}" in RENAMED for k in value):
        return [line for k, v in value.items() for line in _renamed(f"{key}.{k}", v)]
    new = RENAMED.get(key, "separator" if key == "danet" else None)
    return [f"'{key}' was renamed to '{new}'" if new else f"'{key}' was removed (separator.architecture decides)"]


def _messages(err: ValidationError, path: Path) -> list[str]:
    """One line per problem, each naming its key.

    A union (e.g. ``mix.snr_db``: a number, a range or null) fails once per member: the
    line keeps our own check's message when there is one, else the first member's.
    """
    lines: dict[str, str] = {}
    for e in sorted(err.errors(), key=lambda e: e["type"] != "value_error"):
        key = _key(e["loc"])
        if key in lines:
            continue
        if e["type"] == "missing":
            lines[key] = f"{path}: missing key '{key}'"
        elif e["type"] == "extra_forbidden":
            known = key in RENAMED or key == "danet"
            lines[key] = "\n".join(f"{path}: {line}" for line in _renamed(key, e["input"])) if known \
                else f"{path}: unknown key '{key}'"
        else:
            where = f"{key}={e['input']!r}" if key else "params"
            lines[key] = f"{path}: {where}: {e['msg'].removeprefix('Value error, ')}"
    return list(lines.values())


def parse_params(raw: Any, path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Validate a loaded params mapping; :class:`ParamError` lists every problem, one line each."""
    path = Path(path)
    if not isinstance(raw, dict):
        raise ParamError(f"{path}: expected a mapping of parameter groups")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamError("\n".join(_messages(err, path))) from None


def read_params_yaml(path: str | os.PathLike[str] = "params.yaml") -> Any:
    """The YAML of ``params.yaml``, unvalidated (for tools that map any params file, such as the KFP compiler)."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamError(f"{path}: not found; run the stage from the repository root") from None
    except yaml.YAMLError as err:
        raise ParamError(f"{path}: not valid YAML: {err}") from None


def load_params(path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    return parse_params(read_params_yaml(path), path)


def lookup(params: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` (``"separator.epochs"``) in nested params; ``KeyError(dotted)`` if any part is missing."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def assign(params: dict[str, Any], dotted: str, value: Any) -> None:
    """Set the existing leaf ``dotted`` of nested params to ``value``; ``KeyError(dotted)`` if it does not exist."""
    *groups, leaf = dotted.split(".")
    node = params
    for group in groups:
        if not isinstance(node, dict) or group not in node:
            raise KeyError(dotted)
        node = node[group]
    if not isinstance(node, dict) or leaf not in node:
        raise KeyError(dotted)
    node[leaf] = value


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items (the value in YAML, as ``dvc exp run -S`` takes it) as ``{dotted key: value}``."""
    values = {}
    for item in items:
        key, equals, text = item.partition("=")
        if not equals or not key:
            raise ParamError(f"{item!r}: expected KEY=VALUE, e.g. stft.chunk_frames=400")
        values[key] = yaml.safe_load(text)
    return values


def yaml_text(value: Any) -> str:
    """A param value as one line of YAML, as ``dvc exp run -S key=...`` and a KFP pipeline parameter take it.

    ``[-5, 5]``, ``null``, ``[]``, ``sample``: the YAML types survive (``None`` stays null, not the string).
    """
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf).removesuffix("...\n").strip()

