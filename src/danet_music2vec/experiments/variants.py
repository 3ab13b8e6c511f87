"""The recipes the experiments run, in one format (:class:`Recipe`), and the names their experiments are saved under.

A recipe is params.yaml with ``overrides``: dotted keys as ``dvc exp run -S`` takes them, in the
names of today's params.yaml. Three registries, each ``{name: Recipe}`` in report order:

- :data:`ABLATION_FIXES`: the ablation's fixes in the order applied. A fix's overrides are the
  original work's settings that it replaces, so :func:`ablation_rows` builds row k (row 0: the
  original work) by keeping the original settings of fixes k+1 .. n; the last row is params.yaml.
- :data:`ABLATION_VARIANTS`: levers measured beside the ablation's last row and not adopted.
- :data:`SEPARATOR_VARIANTS`: the separator comparison; each recipe is paired with its ``reference``.

Experiments already recorded keep their names: a recipe renamed since states the name it was
recorded as (``recorded_as``), and :func:`separator_names` lists both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """params.yaml with ``overrides``: what an experiment runs.

    ``reference``: the recipe this one differs from in one respect (the separator comparison
    pairs them, so each interval measures one change). ``adopted``: the recipe became the
    default; kept to report the experiments that led there, never run again (it would only
    repeat the default). ``retired``: why a recipe can no longer be run (a setting it needs is
    gone); its recorded experiments are still reported. ``recorded_as``: the name its
    experiments were saved under before the recipe was renamed.
    """

    what: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None
    adopted: bool = False
    retired: str | None = None
    recorded_as: str | None = None

    @property
    def runnable(self) -> bool:
        return not self.adopted and self.retired is None


# The ablation: (the fix, the original work's settings that it replaces), in the order applied.
ABLATION_FIXES: dict[str, Recipe] = {
    "si-sdr-loss": Recipe("SI-SDR loss through the inverse STFT (the original: log-magnitude MSE; the paper: linear)",
                          {"separator.loss": "log_mse"}),
    "threshold": Recipe("40 dB energy threshold for attractors and k-means", {"separator.danet.threshold_db": None}),
    "order-fix": Recipe("k-means seeded and matched to the training attractors",
                        {"separate.danet.resolve_order": False, "separate.danet.kmeans_init": "farthest"}),
    "overlap": Recipe("25% overlapping chunks, masks overlap-added", {"separate.overlap": 0.0}),
    "mask-network": Recipe("a plain mask network instead of DANet's attractors and k-means, trained as long (30 epochs: "
                           "DANet's 15 took the same time)",
                           {"separator.architecture": "danet", "separator.danet.kmeans_epochs": 3,
                            "separator.epochs": 15}),
    "snr-mixing": Recipe("SNR-controlled mixing (0 dB) + dynamic mixing at -10..15 dB in training",
                         {"mix.snr_db": None, "separator.train_snr_db": None}),
    "full-rate": Recipe("masks applied at the full 22.05 kHz rate", {"separate.output_rate": "stft"}),
    "clf-bandlimit": Recipe("classifier trained with gain and 4 kHz band-limit augmentation",
                            {"music2vec.augment_gain_db": None, "music2vec.augment_lowpass_hz": []}),
    "noise-pool": Recipe("the separator also trained on the extra-noise pool (469 ESC-50 clips, the test folds' and "
                         "the sample's recordings left out)", {"data.separation_noise_dirs": []}),
    "shipped-separator": Recipe("the shipped separator (22.05 kHz, per-bin log1p input, trained 60 minutes: "
                                "docs/MODEL_CARD.md) instead of one trained in the pipeline", {"separator.start": "scratch"}),
    "clf-adapted": Recipe("music2vec adapted to the separator's output, and the product answering with the path chosen "
                          "on validation (mixture, separated, adapted, combined or gated: docs/CLASSIFIER.md)",
                          {"adapt_music2vec.paths": ["separated"]}),
}  # fmt: skip
# The separator comparison and the ablation's levers train their separator on the profile, whatever
# params.yaml's start says: each recipe states it.
SCRATCH = {"separator.start": "scratch"}
# DANet + mask-inference head, the default before the mask network. The recipes measured while it was
# the default carry it explicitly, so their records keep meaning what was run.
DANET_HEAD = SCRATCH | {"separator.architecture": "chimera", "separator.epochs": 15}
ABLATION_VARIANTS: dict[str, Recipe] = {
    "danet-head": Recipe("DANet with a mask-inference head (Chimera++) instead of the mask network, 15 epochs (the same "
                         "training time; the default before)", DANET_HEAD),
    "clf-noise": Recipe("DANet + head, classifier trained with residual-noise augmentation (p 0.5, -5..20 dB)",
                        DANET_HEAD | {"music2vec.augment_noise_prob": 0.5}),
    "mask-floor": Recipe("DANet + head, music mask floored at 0.1 (fewer artifacts, more residual noise)",
                         DANET_HEAD | {"separate.mask_floor": 0.1}),
}  # fmt: skip
ABLATION_SNRS = [-5.0, 0.0]  # input SNRs of the ablation (the targets' two)

# The separator variants run while the linear magnitude loss was the default carry that loss.
LINEAR = DANET_HEAD | {"separator.loss": "linear_mse"}
# Why the recipes of a chimera network with k-means masks can no longer run (params.RENAMED: separate.masks -> None).
NO_ATTRACTOR_MASKS = "separate.masks is gone: the architecture decides, and a chimera network's masks come from its head"
# The default's own pools, and each pool alone, from scratch (the learning curves).
NO_POOLS = SCRATCH | {"data.separation_music_dirs": [], "data.separation_noise_dirs": []}
BOTH_POOLS = SCRATCH | {"data.separation_music_dirs": ["data/extra-music"], "data.separation_noise_dirs": ["data/extra-noise"]}
SEPARATOR_VARIANTS: dict[str, Recipe] = {
    "default": Recipe("params.yaml's recipe trained from scratch on the profile (the section's recipe)", SCRATCH),
    "shipped": Recipe("the separator shipped with the package, as it is (docs/MODEL_CARD.md: measured in four "
                      "conditions there); now the default", {"separator.start": "shipped"}, reference="default",
                      adopted=True),
    "danet-head": Recipe("DANet + mask-inference head (Chimera++), 15 epochs: as long as the mask network's 30 (the "
                         "default before)", DANET_HEAD, reference="default"),
    "mask-network": Recipe("the mask network: same BLSTM, loss and steps as DANet + head (15 epochs), no embeddings",
                           SCRATCH | {"separator.architecture": "mask", "separator.epochs": 15}, reference="default",
                           recorded_as="mask-baseline"),
    "mask-network-same-time": Recipe("the mask network trained as long as DANet + head: 2x the epochs (its steps take "
                                     "half the time: no embedding layer); now the default",
                                     {"separator.architecture": "mask", "separator.epochs": 30}, reference="default",
                                     adopted=True, recorded_as="mask-baseline-same-time"),
    "random-eq": Recipe("+ random equalisation of every training excerpt, +-6 dB (chosen over 12 dB on the validation "
                        "tracks)", SCRATCH | {"separator.train_eq_db": 6}, reference="default"),
    "extra-music-half": Recipe("+ the 95.5 min extra-music pool in training, half of the examples (the other half: the "
                               "labelled training tracks)",
                               NO_POOLS | {"data.separation_music_dirs": ["data/extra-music"],
                                           "separator.extra_music_share": 0.5}, reference="default"),
    "kmeans-inference": Recipe("DANet + head models, masks from track-level k-means attractors (the paper's inference)",
                               DANET_HEAD, reference="default", retired=NO_ATTRACTOR_MASKS),
    "attractor-only": Recipe("the paper's DANet objective alone (15 epochs, the last 3 k-means), k-means at inference",
                             SCRATCH | {"separator.architecture": "danet", "separator.epochs": 15,
                                        "separator.danet.kmeans_epochs": 3}, reference="default"),
    "linear-mse": Recipe("DANet + head with the paper's linear magnitude loss instead of SI-SDR", LINEAR,
                         reference="default"),
    "linear-mse-mask-network": Recipe("the mask network, linear magnitude loss",
                                      LINEAR | {"separator.architecture": "mask"}, reference="linear-mse",
                                      recorded_as="linear-mse-mask-baseline"),
    "linear-mse-kmeans-inference": Recipe("linear-mse models, k-means attractors at inference", LINEAR,
                                          reference="linear-mse", retired=NO_ATTRACTOR_MASKS),
    "linear-mse-extra-music": Recipe("linear-mse + the 95.5 min extra-music pool in training (drawn by length)",
                                     LINEAR | {"data.separation_music_dirs": ["data/extra-music"]},
                                     reference="linear-mse"),
    "loss-psa": Recipe("DANet + head with the truncated phase-sensitive loss", DANET_HEAD | {"separator.loss": "psa"},
                       reference="linear-mse"),
    # The learning curves (issue 19): one factor at a time from the default before the pools, at its 5400 steps.
    "no-pools": Recipe("the sample's training split alone (the default before the noise pool)", NO_POOLS,
                       reference="default"),
    "noise-pool": Recipe("+ the extra-noise pool (469 ESC-50 clips; those of ESC-50 fold 5 or of the sample's own "
                         "recordings left out) in training, drawn by length; now the default",
                         NO_POOLS | {"data.separation_noise_dirs": ["data/extra-noise"]}, reference="no-pools",
                         adopted=True),
    "music-pool": Recipe("+ the 95.5 min extra-music pool in training, drawn by length",
                         NO_POOLS | {"data.separation_music_dirs": ["data/extra-music"]}, reference="no-pools"),
    "both-pools": Recipe("+ both pools in training, drawn by length", BOTH_POOLS, reference="no-pools"),
    "both-pools-by-category": Recipe("both pools, every noise category equally likely",
                                     BOTH_POOLS | {"separator.noise_balance": "category"}, reference="both-pools"),
    "width-300": Recipe("2 x 300 BLSTM units instead of 2 x 128, in the same training time (8 epochs: a step "
                        "takes 3.7x as long)", NO_POOLS | {"separator.hidden": 300, "separator.epochs": 8},
                        reference="no-pools"),
    "rate-16k": Recipe("16 kHz working rate instead of 8 kHz (n_fft 512, hop 128: the same 32 ms window and 16 ms "
                       "hop), same steps", NO_POOLS | {"stft.sample_rate": 16000, "stft.n_fft": 512, "stft.hop": 128},
                       reference="no-pools"),
}  # fmt: skip
RUNNABLE_SEPARATORS = [name for name, recipe in SEPARATOR_VARIANTS.items() if recipe.runnable]
SEEDS = (0, 1, 2)  # training seeds of the separator comparison
NOISES = (1, 2)  # noise counts the pipeline supports (params.yaml `noises`)


def ablation_rows() -> dict[str, Recipe]:
    """The ablation's rows, row 0 (the original work) first: row k keeps the original settings of fixes k+1 .. n."""
    fixes = list(ABLATION_FIXES.items())
    rows: dict[str, Recipe] = {}
    for k in range(len(fixes) + 1):
        overrides: dict[str, Any] = {}
        for _, fix in fixes[k:]:
            overrides |= fix.overrides
        name, what = ("original", "as the original work") if k == 0 else (fixes[k - 1][0], "+ " + fixes[k - 1][1].what)
        rows[name] = Recipe(what, overrides)
    return rows


def ablation_name(row: int, noises: int) -> str:
    """The experiment name of ablation row ``row`` (its index) at ``noises``."""
    return f"abl-{row:02d}-{list(ablation_rows())[row]}-n{noises}"


def ablation_variant_name(variant: int, noises: int) -> str:
    """The experiment name of ablation variant ``variant`` (its index in :data:`ABLATION_VARIANTS`) at ``noises``."""
    return f"abl-var-{list(ABLATION_VARIANTS)[variant]}-n{noises}"


def separator_name(variant: str, seed: int, noises: int = 1) -> str:
    """The experiment name of separator recipe ``variant`` trained with ``seed`` at ``noises``."""
    return f"sep-{variant}-s{seed}" if noises == 1 else f"sep-{variant}-n{noises}-s{seed}"


def separator_names(variant: str, seed: int, noises: int = 1) -> tuple[str, ...]:
    """Every name that experiment may be saved under: today's first, then the one it was recorded as before a rename."""
    old = SEPARATOR_VARIANTS[variant].recorded_as
    return tuple(separator_name(name, seed, noises) for name in (variant, old) if name)
