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

# name -> (what it is, overrides of params.yaml). "default" is params.yaml as committed.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("params.yaml (DANet + mask-inference head, head masks at inference)", {}),
    "mask-baseline": ("plain mask-inference network: same BLSTM, no embeddings, same steps",
                      {"danet.objective": "mask"}),
    "kmeans-inference": ("the default's model, masks from track-level k-means attractors (the paper's inference)",
                         {"separate.masks": "attractors"}),
    "attractor-only": ("the paper's DANet objective alone (last 3 epochs k-means), k-means at inference",
                       {"danet.objective": "attractor", "danet.kmeans_epochs": 3, "separate.masks": "attractors"}),
    "extra-music": ("+ the 95.5 min extra-music pool in training (data/extra-music, drawn by length)",
                    {"data.separation_music_dirs": ["data/extra-music"]}),
    "loss-psa": ("truncated phase-sensitive loss instead of the linear magnitude loss", {"danet.loss": "psa"}),
    "loss-si-sdr": ("SI-SDR loss through the inverse STFT", {"danet.loss": "si_sdr"}),
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
        overrides = VARIANTS[variant][1] | {"danet.seed": seed}
        cmd = ["dvc", "exp", "run", "--temp", "-n", name]
        cmd += set_args(overrides)
        cmd.append("score")
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


def experiment_files(names: list[str], repo: Path = REPO) -> dict[str, tuple[pd.DataFrame, dict[str, Any]]]:
    """Per-mixture scores (``plots/separation.csv``) and ``metrics/score.json`` of each experiment, from its git ref.

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
            found[name] = (pd.read_csv(io.BytesIO(table.stdout)), json.loads(score.stdout))
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
    tables = {name: table for name, (table, _) in found.items()}
    headline = {name: score for name, (_, score) in found.items()}
    runs = {v: [n for n in group if n in tables] for v, group in names.items()}
    if not runs["default"]:
        return "Not recorded yet: run `python scripts/compare_separators.py run`.\n"

    def mean_over_seeds(variant: str, system: str = "danet") -> pd.DataFrame:
        parts = [_system(tables[n], system) for n in runs[variant]]
        joined = pd.concat(parts, axis=1, join="inner", keys=range(len(parts)))
        nsdr = joined.xs("nsdr_music", axis=1, level=1).mean(axis=1)
        return pd.DataFrame({"nsdr_music": nsdr, "length": joined.xs("length", axis=1, level=1).iloc[:, 0]})

    default = mean_over_seeds("default")
    first = tables[runs["default"][0]]
    oracle, gate = _gnsdr(_system(first, "oracle_irm")), _gnsdr(_system(first, "baseline"))
    lines = [
        "Seeds and paired intervals. ",
        f"Generated by `python scripts/compare_separators.py report` from the {len(tables)} experiments that "
        "`python scripts/compare_separators.py run` saved (`dvc exp run --temp ... score` per variant and training "
        "seed; their outputs are read from the experiments' git refs). "
        f"All are scored on the same {len(default)} test mixtures (every test clip with several test noises, 1 noise, "
        f"0 dB; BSS Eval at 8 kHz). On them the oracle ratio mask reaches GNSDR {oracle:.2f} dB and the spectral gate "
        f"{gate:.2f} dB. Paired difference: per mixture, each variant's NSDR averaged over its seeds, minus the "
        f"default's; length-weighted mean with a bootstrap 95% interval over mixtures ({n_boot} resamples).\n\n",
        "| variant | what | seeds | GNSDR per seed (dB) | mean +- sd | / oracle | separated F1 (mean) "
        "| paired diff vs default [95% CI] |\n|---|---|---|---|---|---|---|---|\n",
    ]
    for variant, (what, _) in VARIANTS.items():
        if not runs[variant]:
            lines.append(f"| {variant} | {what} | 0 | not run | | | | |\n")
            continue
        per_seed = [_gnsdr(_system(tables[n], "danet")) for n in runs[variant]]
        f1 = [headline[n].get("classification.separated.f1") for n in runs[variant] if n in headline]
        f1_text = f"{np.mean([x for x in f1 if x is not None]):.2f}" if any(x is not None for x in f1) else "-"
        sd = f"{np.std(per_seed, ddof=1):.2f}" if len(per_seed) > 1 else "-"
        if variant == "default":
            paired = "(reference)"
        else:
            mine = mean_over_seeds(variant)
            both = default.join(mine, how="inner", lsuffix="_default")
            diff, lo, hi = paired_difference(both["nsdr_music"], both["nsdr_music_default"], both["length"], n=n_boot)
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "no difference shown"
            paired = f"{diff:+.2f} [{lo:+.2f}, {hi:+.2f}] {verdict}"
        lines.append(
            f"| {variant} | {what} | {len(per_seed)} | {', '.join(f'{x:.2f}' for x in per_seed)} | "
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
