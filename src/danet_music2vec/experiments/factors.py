"""The factor study: which of the plain recipe's differences from the shipped recipe explain its lead.

A plain 2 x 300 BLSTM mask network (per-bin ``log(1+|X|)`` input, magnitude loss, batch 32, SNR
-5..5 dB, no pools) beat the earlier shipped separator (chunk-dB input, SI-SDR loss, batch 8,
-10..15 dB, both pools) on music neither had heard. :data:`FACTORS` starts from the plain recipe
and changes one factor at a time toward the shipped one; ``shipped-recipe`` changes them all.

Every run trains for the same wall time (``separator.budget_minutes``) on one feature store that
holds the profile's training split and both pools; a recipe without a pool simply does not see
its clips (:meth:`FeatureStore.only`). Every run of one seed is scored on the same evaluation
mixtures: held-out profile tracks with held-out noise recordings (the profile's and the noise
pool's, drawn with the seed as training holds them out), at -5..5 dB, 8 kHz. Runs are paired by
seed and mixture, so differences come with paired bootstrap intervals clustered by music track.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from danet_music2vec import checkpoints
from danet_music2vec.atomic import write_json
from danet_music2vec.audio import resample
from danet_music2vec.data.mixing import render_mixture
from danet_music2vec.dsp import istft
from danet_music2vec.dynamic_mixing import EXTRA_PREFIX, DynamicMixer, split_groups
from danet_music2vec.features import FeatureStore
from danet_music2vec.losses import si_sdr
from danet_music2vec.metrics import global_scores, paired_difference, separation_scores
from danet_music2vec.params import Params, SeparateParams, assign, parse_params
from danet_music2vec.separation import Separator
from danet_music2vec.separator_training.loop import train_separator

POOLS = ("none", "noise", "both")


@dataclass(frozen=True)
class Factor:
    """One recipe of the study: separator overrides (dotted keys) and the pools it trains on."""

    what: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    pools: str = "none"


# The plain recipe (as measured on unseen music: issue 24), in params.yaml's keys.
PLAIN: dict[str, Any] = {
    "separator.architecture": "mask",
    "separator.hidden": 300,
    "separator.layers": 2,
    "separator.input_norm": "bin_log1p",
    "separator.loss": "magnitude_mse",
    "separator.batch_size": 32,
    "separator.train_snr_db": [-5, 5],
    "separator.lr": 0.001,
    "separator.lr_schedule": "constant",
    "separator.train_eq_db": None,
    "separator.extra_music_share": None,
    "separator.noise_balance": "length",
}
SHIPPED_FACTORS: dict[str, Any] = {
    "separator.input_norm": "chunk_db",
    "separator.loss": "si_sdr",
    "separator.batch_size": 8,
    "separator.train_snr_db": [-10, 15],
}
FACTORS: dict[str, Factor] = {
    "plain": Factor("the plain recipe: log1p input per bin, magnitude MSE, batch 32, -5..5 dB, no pools"),
    "chunk-db-input": Factor("input: dB below the chunk's loudest bin (the shipped recipe's)",
                             {"separator.input_norm": "chunk_db"}),
    "si-sdr-loss": Factor("loss: SI-SDR through the inverse STFT (the shipped recipe's)", {"separator.loss": "si_sdr"}),
    "batch-8": Factor("batch 8 (the shipped recipe's)", {"separator.batch_size": 8}),
    "snr-wide": Factor("training SNR -10..15 dB (the shipped recipe's)", {"separator.train_snr_db": [-10, 15]}),
    "noise-pool": Factor("+ the extra-noise pool", pools="noise"),
    "both-pools": Factor("+ the extra-noise and extra-music pools (the shipped recipe's data)", pools="both"),
    "shipped-recipe": Factor("every factor of the shipped recipe at once", SHIPPED_FACTORS, pools="both"),
}  # fmt: skip


def recipe_params(base: Mapping[str, Any], factor: Factor, seed: int, budget_minutes: float) -> Params:
    """``base`` (a params.yaml as data) with the plain recipe, ``factor`` and the study's budget and seed: validated."""
    raw = json.loads(json.dumps(base))
    overrides = PLAIN | dict(factor.overrides) | {
        "separator.seed": seed, "separator.budget_minutes": budget_minutes, "separator.epochs": 10_000,
        "separator.steps_per_epoch": 50, "separator.start": "scratch"}  # fmt: skip
    for key, value in overrides.items():
        assign(raw, key, value)
    return parse_params(raw)


# The inference settings the study's test GNSDR was measured with (seeds 0 and 1): the training chunk length and
# fp32, fixed here so that a later seed is scored alike whatever params.yaml or the CPU (bf16 under ``auto``) says.
TEST_INFERENCE: dict[str, Any] = {"chunk_frames": None, "precision": "fp32", "device": "cpu"}


def pool_view(store: FeatureStore, pools: str) -> FeatureStore:
    """``store`` without the pools a recipe does not train on (``none``, ``noise`` or ``both``)."""
    pool = store.index["clip_id"].str.startswith(EXTRA_PREFIX)
    allowed = {"none": set(), "noise": {"noise"}, "both": {"music", "noise"}}[pools]
    return store.only(~pool | store.index["kind"].isin(allowed))


def evaluation_mixers(store: FeatureStore, val_fraction: float, seed: int) -> dict[str, DynamicMixer]:
    """The study's evaluation mixtures for ``seed``: ``profile`` (the profile's held-out tracks) and ``pool`` (the
    music pool's held-out tracks), each with every held-out noise recording (the profile's and the noise pool's).

    The groups are those training holds out with the same seed (:func:`~danet_music2vec.separator_training.loop.make_mixers`),
    so no recipe trained on them, with or without a pool.
    """
    held: dict[tuple[str, bool], set[str]] = {}
    for kind in ("music", "noise"):
        clips = store.clips(kind)
        pool = clips["clip_id"].str.startswith(EXTRA_PREFIX)
        held[(kind, False)] = split_groups(clips.loc[~pool, "group"], val_fraction, seed)[1]
        held[(kind, True)] = split_groups(clips.loc[pool, "group"], val_fraction, seed)[1] if pool.any() else set()
    noise = held[("noise", False)] | held[("noise", True)]
    return {name: DynamicMixer(store, held[("music", from_pool)], noise, 1, (-5.0, 5.0))
            for name, from_pool in (("profile", False), ("pool", True)) if held[("music", from_pool)]}  # fmt: skip


def evaluate(model: torch.nn.Module, mixer: DynamicMixer, store: FeatureStore, seed: int, n: int) -> pd.DataFrame:
    """Per-mixture music SI-SDR (dB) of ``model``'s mask, and of the mixture itself, on ``n`` seeded mixtures."""
    rng = np.random.default_rng(seed)
    rows = []
    cfg = store.config
    with torch.inference_mode():
        for i in range(n):
            example_seed = int(rng.integers(0, 2**63))
            group = str(mixer.music_clip(np.random.default_rng(example_seed))["group"])
            music, noise = mixer.example(np.random.default_rng(example_seed))
            mix = (music + noise).unsqueeze(0)
            mask = model(mix.abs())[..., 0]
            length = (mix.shape[1] - 1) * cfg.hop
            reference = istft(music.unsqueeze(0), cfg, length)
            estimate = istft(mask * mix, cfg, length)
            mixture = istft(mix, cfg, length)
            if float(reference.square().mean()) <= 1e-10:
                continue
            rows.append({"example": i, "group": group,
                         "si_sdr": float(si_sdr(estimate, reference)[0]),
                         "si_sdr_mixture": float(si_sdr(mixture, reference)[0])})  # fmt: skip
    table = pd.DataFrame(rows)
    table["si_sdri"] = table["si_sdr"] - table["si_sdr_mixture"]
    return table


def run_factor(store: FeatureStore, base: Mapping[str, Any], name: str, seed: int, budget_minutes: float,
               out: Path, n_eval: int = 256) -> dict[str, Any]:  # fmt: skip
    """Train recipe ``name`` with ``seed`` for ``budget_minutes`` and score it; results under ``out/<name>-s<seed>/``.

    A finished run (its ``result.json``) is not run again; an interrupted one resumes from its checkpoint.
    """
    folder = out / f"{name}-s{seed}"
    if (folder / "result.json").is_file():
        return json.loads((folder / "result.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    factor = FACTORS[name]
    params = recipe_params(base, factor, seed, budget_minutes)
    result = train_separator(pool_view(store, factor.pools), params.separator, folder / "checkpoint.pt", progress=False)
    mixers = evaluation_mixers(store, params.separator.val_fraction, seed)
    table = pd.concat([evaluate(result.model, mixer, store, seed, n_eval).assign(music=name)
                       for name, mixer in mixers.items()], ignore_index=True)  # fmt: skip
    table.to_csv(folder / "evaluation.csv", index=False)
    summary = {"recipe": name, "seed": seed, "epochs": result.epochs, "best_epoch": result.best_epoch,
               "examples": int(sum(h.chunks for h in result.history)),
               "train_minutes": sum(h.seconds for h in result.history) / 60.0,
               "val_si_sdr": max(h.val_si_sdr for h in result.history),
               **{f"eval_si_sdri.{name}": float(part["si_sdri"].mean()) for name, part in table.groupby("music")}}  # fmt: skip
    write_json(folder / "result.json", summary)
    return summary


def best_epoch_separator(folder: Path, settings: SeparateParams) -> Separator:
    """The best epoch of a finished run in ``folder``, with ``settings`` updated by :data:`TEST_INFERENCE`."""
    state = checkpoints.load(folder / "checkpoint.pt", "separator")
    return Separator.from_network(state | {"model_state": state["best"]["state"]}, settings.model_copy(update=TEST_INFERENCE))


def test_gnsdr(folder: Path, mixtures: pd.DataFrame, settings: SeparateParams) -> dict[str, Any]:
    """GNSDR (BSS Eval at the model's 8 kHz, as the score stage's headline) of a finished run's best epoch on the
    profile's test mixtures, separated with ``settings`` updated by :data:`TEST_INFERENCE`; written to
    ``folder/test.json`` (read back if it is there). Reported, never chosen on."""
    if (folder / "test.json").is_file():
        return json.loads((folder / "test.json").read_text())
    separator = best_epoch_separator(folder, settings)
    rate = separator.cfg.sample_rate
    results = []
    for row in mixtures.itertuples():
        rendered = render_mixture(row)
        music, noise, mixture = (resample(x, int(row.sample_rate), rate) for x in (rendered.music, rendered.noise, rendered.mixture))
        estimate = separator.separate(mixture, rate).music[: len(music)]
        results.append(separation_scores(np.stack([music, noise]), np.stack([estimate, mixture - estimate]), mixture))
    summary = {"test_gnsdr": global_scores(results)["gnsdr"], "mixtures": len(results)}
    write_json(folder / "test.json", summary)
    return summary


def factor_table(out: Path, reference: str = "plain") -> pd.DataFrame:
    """One row per recipe and evaluation music (``profile``, ``pool``): mean SI-SDRi over its seeds and the paired
    difference to ``reference`` (mixtures paired by seed and example, resampled by music track) with its 95% interval."""
    runs = {}
    for path in sorted(out.glob("*/result.json")):
        summary = json.loads(path.read_text())
        table = pd.read_csv(path.parent / "evaluation.csv").assign(seed=summary["seed"])
        runs[(summary["recipe"], summary["seed"])] = (summary, table)
    rows = []
    for name in FACTORS:
        seeds = sorted(s for (r, s) in runs if r == name)
        if not seeds:
            continue
        mine = pd.concat([runs[(name, s)][1] for s in seeds])
        paired = [s for s in seeds if (reference, s) in runs]
        theirs = pd.concat([runs[(reference, s)][1] for s in paired]) if paired else None
        tests = [json.loads((out / f"{name}-s{s}" / "test.json").read_text())["test_gnsdr"]
                 for s in seeds if (out / f"{name}-s{s}" / "test.json").is_file()]  # fmt: skip
        for music, part in mine.groupby("music", sort=False):
            row = {"recipe": name, "music": music, "seeds": len(seeds),
                   "test_gnsdr": float(np.mean(tests)) if tests else math.nan,
                   "examples_trained": float(np.mean([runs[(name, s)][0]["examples"] for s in seeds])),
                   "si_sdri": float(part["si_sdri"].mean()),
                   "vs_plain": math.nan, "vs_plain_lo": math.nan, "vs_plain_hi": math.nan}  # fmt: skip
            if name != reference and theirs is not None:
                both = part[part["seed"].isin(paired)].merge(theirs, on=["seed", "music", "example"], suffixes=("", "_ref"))
                diff, lo, hi = paired_difference(both["si_sdri"], both["si_sdri_ref"],
                                                 groups=(both["seed"].astype(str) + ":" + both["group"]).tolist())  # fmt: skip
                row |= {"vs_plain": diff, "vs_plain_lo": lo, "vs_plain_hi": hi}
            rows.append(row)
    return pd.DataFrame(rows)


def factor_report(out: Path, minutes: float) -> str:
    """docs/FACTORS.md: the table of :func:`factor_table` with what each recipe changes, in words."""
    table = factor_table(out)
    lines = ["| recipe | what changes | evaluation music | seeds | examples trained | SI-SDRi (dB) | vs plain (dB) [95% CI] "
             "| test GNSDR (dB) |\n", "|---|---|---|---|---|---|---|---|\n"]
    for row in table.itertuples():
        versus = "-" if math.isnan(row.vs_plain) else f"{row.vs_plain:+.2f} [{row.vs_plain_lo:+.2f}, {row.vs_plain_hi:+.2f}]"
        lines.append(f"| {row.recipe} | {FACTORS[row.recipe].what} | {row.music} | {row.seeds} | "
                     f"{row.examples_trained:,.0f} | {row.si_sdri:.2f} | {versus} | "
                     + ("-" if math.isnan(row.test_gnsdr) else f"{row.test_gnsdr:.2f}") + " |\n")  # fmt: skip
    head = (f"Every run trained {minutes:g} minutes on one thread (`separator.budget_minutes`), 2 x 300 BLSTM mask "
            "network at 8 kHz; scored on 256 held-out mixtures per evaluation music and seed (-5..5 dB, one noise, "
            "100-frame chunks): `profile` = the sample's held-out training tracks, `pool` = held-out extra-music tracks; "
            "the noises are held-out recordings of the sample and of the extra-noise pool. Intervals: paired by seed and "
            "mixture, resampled by music track.\n\n")
    ranks = table.pivot_table(index="recipe", columns="music", values=["si_sdri", "test_gnsdr"])
    agreement = ""
    if "test_gnsdr" in ranks and ranks["test_gnsdr"].notna().all().all() and len(ranks) > 2:
        rho = {music: float(ranks[("si_sdri", music)].corr(ranks[("test_gnsdr", music)], method="spearman"))
               for music in ranks["si_sdri"].columns}  # fmt: skip
        agreement = ("\nValidation against test ranking (Spearman's rho over recipes, evaluation SI-SDRi against the "
                     "sample's test GNSDR): " + ", ".join(f"{m} {r:.2f}" for m, r in rho.items()) + ".\n")  # fmt: skip
    return head + "".join(lines) + agreement
