"""Separators compared with enough power to tell: several training seeds, paired per-mixture intervals.

    python scripts/compare_separators.py run [--variants default mask-baseline ...] [--seeds 0 1 2]
    python scripts/compare_separators.py report      # writes docs/SEPARATORS.md

``run`` executes ``dvc exp run --temp -n sep-<variant>-s<seed> -S danet.seed=<seed> ... score``
per variant and seed (the pipeline up to the score stage; DVC's run cache restores what
another experiment already computed, e.g. the trained model of a variant that only changes
inference). Experiments already saved (a DVC experiment ref of that name) are skipped,
so an interrupted run resumes; every experiment also logs to MLflow as usual. ``report`` reads each experiment's per-mixture scores (the score stage's
``plots/separation.csv`` in the experiment's git ref) and gives, per variant, GNSDR per seed (mean and spread) and
the paired difference to the default on the same test mixtures: per mixture, the NSDR
averaged over the seeds of each variant, then the length-weighted mean difference with a
bootstrap 95% interval over mixtures. A variant becomes the default only if that interval
excludes zero.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from ablation import set_args  # noqa: E402  (the same `-S key=value` arguments as the ablation's)
from danet_music2vec.atomic import atomic_path  # noqa: E402
from danet_music2vec.metrics import paired_difference  # noqa: E402

@dataclass(frozen=True)
class Variant:
    """A separator recipe: params.yaml with ``overrides``, compared pair-wise with its ``reference`` variant.

    A variant's reference is the recipe it differs from in one respect, so each interval
    measures one change. The variants run while the linear magnitude loss was the
    default carry that loss explicitly and are paired with ``linear-mse``.
    """

    what: str
    overrides: dict[str, Any] = field(default_factory=dict)
    reference: str | None = "default"


LINEAR = {"danet.loss": "linear_mse"}
VARIANTS: dict[str, Variant] = {
    "default": Variant("params.yaml: DANet + mask-inference head (Chimera++), SI-SDR loss, head masks at inference", reference=None),
    "mask-baseline": Variant("plain mask-inference network: same BLSTM, loss and steps, no embeddings", {"danet.objective": "mask"}),
    "kmeans-inference": Variant("the default's models, masks from track-level k-means attractors (the paper's inference)",
                                {"separate.masks": "attractors"}),
    "attractor-only": Variant("the paper's DANet objective alone (last 3 epochs k-means), k-means at inference",
                              {"danet.objective": "attractor", "danet.kmeans_epochs": 3, "separate.masks": "attractors"}),
    "linear-mse": Variant("the paper's linear magnitude loss instead of SI-SDR (the default before)", LINEAR),
    "linear-mse-mask-baseline": Variant("plain mask network, linear magnitude loss", LINEAR | {"danet.objective": "mask"},
                                        reference="linear-mse"),
    "linear-mse-kmeans-inference": Variant("linear-mse models, k-means attractors at inference",
                                           LINEAR | {"separate.masks": "attractors"}, reference="linear-mse"),
    "linear-mse-extra-music": Variant("linear-mse + the 95.5 min extra-music pool in training (drawn by length)",
                                      LINEAR | {"data.separation_music_dirs": ["data/extra-music"]}, reference="linear-mse"),
    "loss-psa": Variant("truncated phase-sensitive loss", {"danet.loss": "psa"}, reference="linear-mse"),
}  # fmt: skip
SEEDS = (0, 1, 2)


def exp_name(variant: str, seed: int) -> str:
    return f"sep-{variant}-s{seed}"


def run(variants: list[str], seeds: list[int], force: bool) -> None:
    todo = [(v, s) for v in variants for s in seeds]
    done = experiment_files([exp_name(v, s) for v, s in todo])
    for variant, seed in todo:
        name = exp_name(variant, seed)
        if not force and name in done:
            print(f"{name}: already saved as a DVC experiment (use --force to rerun)")
            continue
        overrides = VARIANTS[variant].overrides | {"danet.seed": seed}
        cmd = ["dvc", "exp", "run", "--temp", "-n", name]
        cmd += set_args(overrides)
        cmd.append("score")
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


def experiment_files(names: list[str], repo: Path = REPO) -> dict[str, tuple[pd.DataFrame, dict[str, Any], str]]:
    """Per-mixture scores (``plots/separation.csv``), ``metrics/score.json`` and baseline commit of each experiment.

    Read from the commit DVC saved for the experiment (``refs/exps/...``), not from MLflow:
    an experiment whose stages were all restored from DVC's cache (e.g. the default with
    the committed seed) ran no stage, so it logged nothing, but its commit holds its outputs.
    """
    listing = subprocess.run(["git", "for-each-ref", "--sort=-committerdate", "--format=%(refname)", "refs/exps"],
                             cwd=repo, capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    refs: dict[str, str] = {}
    for ref in listing:
        refs.setdefault(ref.rsplit("/", 1)[-1], ref)  # the newest run of a name wins
    found = {}
    for name in names:
        if name not in refs:
            continue
        show = lambda path: subprocess.run(["git", "show", f"{refs[name]}:{path}"], cwd=repo, capture_output=True)  # noqa: E731
        table, score = show("plots/separation.csv"), show("metrics/score.json")
        if table.returncode == 0 and score.returncode == 0:
            baseline = "".join(refs[name].split("/")[2:4])[:7]  # refs/exps/<sha[:2]>/<sha[2:]>/<name>
            found[name] = (pd.read_csv(io.BytesIO(table.stdout)), json.loads(score.stdout), baseline)
    return found


def _system(table: pd.DataFrame, system: str) -> pd.DataFrame:
    part = table[(table["system"] == system) & ~table["silent"]]
    return part.set_index("mixture_id")[["nsdr_music", "length"]]


def _gnsdr(part: pd.DataFrame) -> float:
    return float(np.average(part["nsdr_music"], weights=part["length"]))


def report(n_boot: int = 2000, repo: Path = REPO) -> str:
    """The markdown section: GNSDR per seed and paired differences to the default."""
    names = {v: [exp_name(v, s) for s in range(10)] for v in VARIANTS}
    found = experiment_files([n for group in names.values() for n in group], repo)
    tables = {name: table for name, (table, _, _) in found.items()}
    headline = {name: score for name, (_, score, _) in found.items()}
    baselines = sorted({baseline for _, _, baseline in found.values()})
    runs = {v: [n for n in group if n in tables] for v, group in names.items()}
    if not runs["default"]:
        return "Not recorded yet: run `python scripts/compare_separators.py run`.\n"

    def mean_over_seeds(variant: str, system: str = "danet") -> pd.DataFrame:
        parts = [_system(tables[n], system) for n in runs[variant]]
        joined = pd.concat(parts, axis=1, join="inner", keys=range(len(parts)))
        nsdr = joined.xs("nsdr_music", axis=1, level=1).mean(axis=1)
        return pd.DataFrame({"nsdr_music": nsdr, "length": joined.xs("length", axis=1, level=1).iloc[:, 0]})

    first = tables[runs["default"][0]]
    oracle, gate = _gnsdr(_system(first, "oracle_irm")), _gnsdr(_system(first, "baseline"))
    lines = [
        "Seeds and paired intervals. ",
        f"Generated by `python scripts/compare_separators.py report` from the {len(tables)} experiments that "
        "`python scripts/compare_separators.py run` saved (`dvc exp run --temp ... score` per variant and training "
        f"seed; their outputs are read from the experiments' git refs; code of commit(s) {', '.join(baselines)}). "
        f"All are scored on the same {len(_system(first, 'danet'))} test mixtures (every test clip with several test noises, 1 noise, "
        f"0 dB; BSS Eval at 8 kHz). On them the oracle ratio mask reaches GNSDR {oracle:.2f} dB and the spectral gate "
        f"{gate:.2f} dB. Paired difference: per mixture, each variant's NSDR averaged over its seeds, minus its "
        f"reference's (the recipe it differs from in one respect); length-weighted mean with a bootstrap 95% interval "
        f"over mixtures ({n_boot} resamples).\n\n",
        "| variant | what | seeds | GNSDR per seed (dB) | mean +- sd | / oracle | separated F1 (mean) "
        "| paired diff vs reference [95% CI] |\n|---|---|---|---|---|---|---|---|\n",
    ]
    for variant, spec in VARIANTS.items():
        if not runs[variant]:
            lines.append(f"| {variant} | {spec.what} | 0 | not run | | | | |\n")
            continue
        per_seed = [_gnsdr(_system(tables[n], "danet")) for n in runs[variant]]
        f1 = [headline[n].get("classification.separated.f1") for n in runs[variant] if n in headline]
        f1_text = f"{np.mean([x for x in f1 if x is not None]):.2f}" if any(x is not None for x in f1) else "-"
        sd = f"{np.std(per_seed, ddof=1):.2f}" if len(per_seed) > 1 else "-"
        if spec.reference is None:
            paired = "(reference)"
        elif not runs[spec.reference]:
            paired = f"vs {spec.reference}: not run"
        else:
            both = mean_over_seeds(variant).merge(mean_over_seeds(spec.reference), left_index=True, right_index=True,
                                                  suffixes=("", "_reference"))  # fmt: skip
            diff, lo, hi = paired_difference(both["nsdr_music"], both["nsdr_music_reference"], both["length"], n=n_boot)
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "no difference shown"
            paired = f"vs {spec.reference}: {diff:+.2f} [{lo:+.2f}, {hi:+.2f}] {verdict}"
        lines.append(
            f"| {variant} | {spec.what} | {len(per_seed)} | {', '.join(f'{x:.2f}' for x in per_seed)} | "
            f"{np.mean(per_seed):.2f} +- {sd} | {np.mean(per_seed) / oracle:.2f} | {f1_text} | {paired} |\n"
        )
    return "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="train and score each variant with each seed (dvc exp run --temp ... score)")
    run_p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    run_p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    run_p.add_argument("--force", action="store_true", help="rerun experiments already saved")
    rep = sub.add_parser("report", help="write docs/SEPARATORS.md from the recorded experiments")
    rep.add_argument("--out", type=Path, default=REPO / "docs" / "SEPARATORS.md")
    args = parser.parse_args()
    if args.command == "run":
        run(args.variants, args.seeds, args.force)
    else:
        with atomic_path(args.out) as tmp:
            tmp.write_text("# Separators compared\n\n" + report())
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
