"""The separator's learning curves (docs/LEARNING_CURVES.md): validation quality against training budget, per recipe.

Each curve is one training run's per-epoch validation SI-SDR (plots/separator_loss.csv: the held-out
training tracks and noise recordings, the same mixtures for every recipe), placed by training examples
seen and by wall time. Short runs are the separator comparison's saved DVC experiments (seed 0 of each
recipe, :data:`~danet_music2vec.experiments.variants.SEPARATOR_VARIANTS`); long runs are work folders of
``scripts/train_pretrained.py``. The table beside the figure gives each run's budget, its best
validation score and, where the run was scored, its test GNSDR and separated-music F1.
"""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from danet_music2vec.atomic import atomic_path
from danet_music2vec.experiments.records import saved_experiments
from danet_music2vec.experiments.variants import SEPARATOR_VARIANTS, separator_name
from danet_music2vec.plots import plot_learning_curves


@dataclass(frozen=True)
class Curve:
    """One training run: per-epoch validation, its budget, and its test scores where it was scored."""

    name: str
    what: str
    epochs: pd.DataFrame  # epoch, examples, minutes, val_si_sdr
    hidden: int
    test: dict[str, float]  # metrics/score.json keys, empty when not scored


def _curve(name: str, what: str, losses: pd.DataFrame, trained: dict, params: dict, test: dict[str, float]) -> Curve:
    group = params["separator"]
    per_epoch = group["steps_per_epoch"] * group["batch_size"]
    minutes = trained["seconds"] / 60.0 / max(1, trained["epochs"])
    table = pd.DataFrame({"epoch": losses["epoch"], "examples": losses["epoch"] * per_epoch,
                          "minutes": losses["epoch"] * minutes, "val_si_sdr": losses["val_si_sdr"]})  # fmt: skip
    return Curve(name, what, table, group["hidden"], test)


def experiment_curves(variants: list[str], repo: Path, seed: int = 0, saved_as: dict[str, str] | None = None) -> list[Curve]:
    """The curves of the separator comparison's saved experiments (``variants`` with ``seed``), newest code only.

    ``saved_as``: variant -> the recipe name its experiment was saved under, where that differs (a recipe that
    was the default when it ran was saved as ``default``).
    """
    saved_as = saved_as or {}
    names = {separator_name(saved_as.get(v, v), seed): v for v in variants}
    found = saved_experiments(list(names), repo)
    newest = next(iter(dict.fromkeys(code for code, _ in found)), None)
    curves = []
    for (code, name), exp in found.items():
        if code != newest:
            continue
        ref = subprocess.run(["git", "for-each-ref", "--format=%(refname)", f"refs/exps/*/*/{name}"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout.split()[0]  # fmt: skip

        def show(path: str, ref: str = ref) -> bytes:
            return subprocess.run(["git", "show", f"{ref}:{path}"], cwd=repo, capture_output=True, check=True).stdout

        losses = pd.read_csv(io.BytesIO(show("plots/separator_loss.csv")))
        trained = json.loads(show("metrics/train_separator.json"))
        variant = names[name]
        curves.append(_curve(variant, SEPARATOR_VARIANTS[variant].what, losses, trained, exp.params, exp.score))
    order = list(names.values())
    return sorted(curves, key=lambda c: order.index(c.name))


def work_folder_curve(name: str, what: str, work: Path, test: dict[str, float] | None = None) -> Curve:
    """The curve of a ``scripts/train_pretrained.py`` work folder (its train_separator outputs)."""
    return _curve(name, what, pd.read_csv(work / "plots" / "separator_loss.csv"),
                  json.loads((work / "metrics" / "train_separator.json").read_text()),
                  yaml.safe_load((work / "params.yaml").read_text()), test or {})  # fmt: skip


def curves_markdown(curves: list[Curve], figure: str) -> str:
    """The table of ``curves`` under the figure's link."""
    lines = [f"![validation SI-SDR against training budget]({figure})\n\n",
             "| run | what | width | steps x batch | wall min | best val SI-SDR (epoch) | flattens | test GNSDR | "
             "full band | separated F1 |\n|---|---|---|---|---|---|---|---|---|---|\n"]  # fmt: skip
    for c in curves:
        t = c.epochs
        best = t.loc[t["val_si_sdr"].idxmax()]
        # Where the curve flattens: the first epoch within 0.25 dB of the best.
        flat = t[t["val_si_sdr"] >= best["val_si_sdr"] - 0.25].iloc[0]
        gnsdr, f1 = c.test.get("separation.gnsdr"), c.test.get("classification.separated.f1")
        full = c.test.get("separation.full_band.gnsdr")
        lines.append(
            f"| {c.name} | {c.what} | {c.hidden} | {int(t['examples'].iloc[-1]):,} | {t['minutes'].iloc[-1]:.0f} | "
            f"{best['val_si_sdr']:.2f} ({int(best['epoch'])}) | {flat['minutes']:.0f} min, {int(flat['examples']):,} ex. | "
            f"{'-' if gnsdr is None else f'{gnsdr:.2f}'} | {'-' if full is None else f'{full:.2f}'} | "
            f"{'-' if f1 is None else f'{f1:.2f}'} |\n"
        )
    return "".join(lines)


def write_learning_curves(curves: list[Curve], out: Path, figure: Path, intro: str = "") -> None:
    """docs/LEARNING_CURVES.md (``out``) and its PNG (``figure``) from ``curves``."""
    plot_learning_curves({c.name: c.epochs for c in curves}, figure)
    with atomic_path(out) as tmp:
        tmp.write_text("# Learning curves of the separator\n\n" + intro + curves_markdown(curves, figure.name))
    print(f"wrote {out} and {figure}")
