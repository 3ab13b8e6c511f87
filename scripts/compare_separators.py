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
bootstrap 95% interval that resamples the test music clips (the mixtures cut from one clip
move together; where the mix stage's output is missing, it resamples mixtures). A variant
becomes the default only if that interval excludes zero.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from ablation import DANET_HEAD, set_args  # noqa: E402  (the ablation's DANet + head recipe and `-S key=value` arguments)
from danet_music2vec.atomic import atomic_path  # noqa: E402
from danet_music2vec.evaluation import noise_names  # noqa: E402
from danet_music2vec.metrics import paired_difference  # noqa: E402
from danet_music2vec.params import lookup  # noqa: E402

@dataclass(frozen=True)
class Variant:
    """A separator recipe: params.yaml with ``overrides``, compared pair-wise with its ``reference`` variant.

    A variant's reference is the recipe it differs from in one respect, so each interval
    measures one change. Recipes built on DANet + head state that objective (and its 15
    epochs) explicitly, and the variants run while the linear magnitude loss was the default
    carry that loss, so each name means one recipe in every code version's section.
    ``adopted``: the recipe became the default; kept to report the experiments that led
    there, never run again (it would only repeat the default).
    """

    what: str
    overrides: dict[str, Any] = field(default_factory=dict)
    reference: str | None = "default"
    adopted: bool = False


LINEAR = DANET_HEAD | {"danet.loss": "linear_mse"}
VARIANTS: dict[str, Variant] = {
    "default": Variant("params.yaml as the experiment ran it (the section's recipe)", reference=None),
    "danet-head": Variant("DANet + mask-inference head (Chimera++), 15 epochs: as long as the mask network's 30 (the default "
                          "before)", DANET_HEAD),
    "mask-baseline": Variant("plain mask-inference network: same BLSTM, loss and steps as DANet + head (15 epochs), no "
                             "embeddings", {"danet.objective": "mask", "danet.epochs": 15}),
    "mask-baseline-same-time": Variant("plain mask-inference network trained as long as DANet + head: 2x the epochs (its steps "
                                       "take half the time: no embedding layer); now the default",
                                       {"danet.objective": "mask", "danet.epochs": 30}, adopted=True),
    "random-eq": Variant("+ random equalisation of every training excerpt, +-6 dB (chosen over 12 dB on the validation tracks)",
                         {"danet.train_eq_db": 6}),
    "extra-music-half": Variant("+ the 95.5 min extra-music pool in training, half of the examples (the other half: the labelled "
                                "training tracks)", {"data.separation_music_dirs": ["data/extra-music"], "danet.extra_music_share": 0.5}),
    "kmeans-inference": Variant("DANet + head models, masks from track-level k-means attractors (the paper's inference)",
                                DANET_HEAD | {"separate.masks": "attractors"}),
    "attractor-only": Variant("the paper's DANet objective alone (15 epochs, the last 3 k-means), k-means at inference",
                              {"danet.objective": "attractor", "danet.epochs": 15, "danet.kmeans_epochs": 3,
                               "separate.masks": "attractors"}),
    "linear-mse": Variant("DANet + head with the paper's linear magnitude loss instead of SI-SDR", LINEAR),
    "linear-mse-mask-baseline": Variant("plain mask network, linear magnitude loss", LINEAR | {"danet.objective": "mask"},
                                        reference="linear-mse"),
    "linear-mse-kmeans-inference": Variant("linear-mse models, k-means attractors at inference",
                                           LINEAR | {"separate.masks": "attractors"}, reference="linear-mse"),
    "linear-mse-extra-music": Variant("linear-mse + the 95.5 min extra-music pool in training (drawn by length)",
                                      LINEAR | {"data.separation_music_dirs": ["data/extra-music"]}, reference="linear-mse"),
    "loss-psa": Variant("DANet + head with the truncated phase-sensitive loss", DANET_HEAD | {"danet.loss": "psa"},
                        reference="linear-mse"),
}  # fmt: skip
RUNNABLE = [name for name, variant in VARIANTS.items() if not variant.adopted]
SEEDS = (0, 1, 2)


NOISES = (1, 2)


def exp_name(variant: str, seed: int, noises: int = 1) -> str:
    return f"sep-{variant}-s{seed}" if noises == 1 else f"sep-{variant}-n{noises}-s{seed}"


def run(variants: list[str], seeds: list[int], force: bool, noises: int = 1) -> None:
    todo = [(v, s) for s in seeds for v in variants]  # seed by seed: a stopped run leaves paired experiments
    code = workspace_code()
    done = {name for c, name in experiment_files([exp_name(v, s, noises) for v, s in todo]) if c == code}
    for variant, seed in todo:
        name = exp_name(variant, seed, noises)
        if not force and name in done:
            print(f"{name}: already saved as a DVC experiment of this code (use --force to rerun)")
            continue
        overrides = VARIANTS[variant].overrides | {"danet.seed": seed} | ({"noises": noises} if noises != 1 else {})
        cmd = ["dvc", "exp", "run", "--temp", "-n", name]
        cmd += set_args(overrides)
        cmd.append("score")
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


@dataclass(frozen=True)
class Experiment:
    """One saved experiment: its per-mixture scores, headline metrics, params and the code it ran."""

    table: pd.DataFrame  # plots/separation.csv
    score: dict[str, Any]  # metrics/score.json
    params: dict[str, Any]  # params.yaml
    baseline: str  # the commit the experiment was run on (7 hex digits)
    code: str  # hash of src/, stages/ and dvc.yaml as the experiment ran them


CODE_PATHS = ("src", "stages", "dvc.yaml")
GitRunner = Callable[..., subprocess.CompletedProcess]


def _git_runner(repo: Path, env: dict[str, str] | None = None) -> GitRunner:
    """``git(*args)`` in ``repo`` (bytes output captured; ``env``: e.g. a separate index file)."""
    return lambda *args: subprocess.run(["git", *args], cwd=repo, capture_output=True, env=env)


def _code_key(git: GitRunner, tree: str) -> str:
    """Short hash of the code paths in ``tree`` (a commit or tree id): equal for equal code."""
    objects = [git("rev-parse", "--verify", "-q", f"{tree}:{path}").stdout.strip() for path in CODE_PATHS]
    return hashlib.sha256(b" ".join(objects)).hexdigest()[:7]


def workspace_code(repo: Path = REPO) -> str:
    """:func:`_code_key` of the working tree, uncommitted changes included (as ``dvc exp run`` saves them)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git = _git_runner(repo, env)
        git("read-tree", "HEAD")
        git("add", "-A", "--", *[path for path in CODE_PATHS if (repo / path).exists()])
        return _code_key(git, git("write-tree").stdout.decode().strip())


def experiment_files(names: list[str], repo: Path = REPO) -> dict[tuple[str, str], Experiment]:
    """The saved experiments of ``names``, keyed by ``(code, name)``: the newest run of a name on each code version.

    Read from the commit DVC saved for the experiment (``refs/exps/...``), not from MLflow:
    an experiment whose stages were all restored from DVC's cache (e.g. the default with
    the committed seed) ran no stage, so it logged nothing, but its commit holds its outputs.
    """
    git = _git_runner(repo)
    listing = git("for-each-ref", "--sort=-committerdate", "--format=%(refname)", "refs/exps").stdout.decode().split()
    wanted = set(names)
    found: dict[tuple[str, str], Experiment] = {}
    for ref in listing:
        name = ref.rsplit("/", 1)[-1]
        if name not in wanted:
            continue
        code = _code_key(git, ref)
        if (code, name) in found:
            continue  # a newer run of this name on this code is kept
        table, score, params = (git("show", f"{ref}:{path}") for path in ("plots/separation.csv", "metrics/score.json", "params.yaml"))
        if table.returncode == 0 and score.returncode == 0:
            baseline = "".join(ref.split("/")[2:4])[:7]  # refs/exps/<sha[:2]>/<sha[2:]>/<name>
            found[(code, name)] = Experiment(pd.read_csv(io.BytesIO(table.stdout)), json.loads(score.stdout),
                                             yaml.safe_load(params.stdout) or {}, baseline, code)  # fmt: skip
    return found


def _system(table: pd.DataFrame, system: str) -> pd.DataFrame:
    part = table[(table["system"] == system) & ~table["silent"]]
    return part.set_index("mixture_id")[["nsdr_music", "length"]]


def _gnsdr(part: pd.DataFrame) -> float:
    return float(np.average(part["nsdr_music"], weights=part["length"]))


# The default's recipe as each section states it (read from the experiment's own params.yaml).
RECIPE_KEYS = ("danet.objective", "danet.loss", "danet.hidden", "danet.layers", "danet.epochs", "danet.lr_schedule",
               "separate.masks")  # fmt: skip


def _recipe(params: dict[str, Any]) -> str:
    values = []
    for dotted in RECIPE_KEYS:
        try:
            value = lookup(params, dotted)
        except KeyError:  # a key that code version did not have yet
            value = "-"
        values.append(f"`{dotted.split('.', 1)[1]}: {value}`")
    return ", ".join(values)


def workspace_mixtures(repo: Path = REPO) -> pd.DataFrame | None:
    """The workspace's test mixtures (index ``mixture_id``; ``music_clip``, ``noise``), or None before the mix stage ran.

    ``noise`` is written as the score stage writes it (noise clip names joined by ``+``),
    so an experiment's per-mixture table can be checked against it.
    """
    path = repo / "data" / "mixtures.parquet"
    if not path.exists():
        return None
    mixtures = pd.read_parquet(path, columns=["mixture_id", "split", "music_clip", "noise_clips"])
    mixtures = mixtures[mixtures["split"] == "test"].set_index("mixture_id")
    return pd.DataFrame({"music_clip": mixtures["music_clip"], "noise": mixtures["noise_clips"].map(noise_names)})


def clip_of_mixture(table: pd.DataFrame, mixtures: pd.DataFrame) -> pd.Series:
    """Each mixture's music clip (index ``mixture_id``), after checking that ``table`` scored these very mixtures.

    The mix stage assigns mixture ids clip by clip, whatever the noise count, so the music
    clip of an id holds for experiments with another ``noises`` too; where the noise count
    is the workspace's, the noises themselves must match (a changed ``mix.seed`` shows there).
    """
    scored = table.drop_duplicates("mixture_id").set_index("mixture_id")["noise"]
    workspace = mixtures["noise"].reindex(scored.index)  # NaN: an id the workspace does not have
    comparable = workspace.notna() & (scored.str.count(r"\+") == workspace.str.count(r"\+"))
    if workspace.isna().any() or (scored[comparable] != workspace[comparable]).any():
        raise ValueError(
            "the experiments scored other test mixtures than data/mixtures.parquet holds (mixture ids or noises "
            "differ); run `dvc checkout data/mixtures.parquet` (or `dvc repro mix`) with the experiments' mix params."
        )
    return mixtures.loc[scored.index, "music_clip"]


def report(n_boot: int = 2000, repo: Path = REPO) -> str:
    """The markdown: per code version (newest first) and noise count, GNSDR per seed and paired differences.

    Experiments on different code are never paired: a code change (e.g. how training
    examples are drawn) would be counted as the variant's effect.
    """
    names = {n: {v: [exp_name(v, s, n) for s in range(10)] for v in VARIANTS} for n in NOISES}
    found = experiment_files([name for by_variant in names.values() for group in by_variant.values() for name in group], repo)
    codes = list(dict.fromkeys(code for code, _ in found))  # newest first
    mixtures = workspace_mixtures(repo)
    sections = [_code_section({name: exp for (c, name), exp in found.items() if c == code}, names[n], n_boot, mixtures, n)
                for code in codes for n in NOISES]  # fmt: skip
    sections = [s for s in sections if s]
    if not sections:
        return "Not recorded yet: run `python scripts/compare_separators.py run`.\n"
    unit = "the test music clips (the mixtures cut from one clip move together)" if mixtures is not None else "mixtures"
    intro = (
        "Seeds and paired intervals. Generated by `python scripts/compare_separators.py report` from the experiments "
        "that `python scripts/compare_separators.py run [--noises 2]` saved (`dvc exp run --temp ... score` per variant "
        "and training seed; their outputs are read from the experiments' git refs). One section per version of the "
        "code (src/, stages/, dvc.yaml), newest first, and noise count; experiments on different code are not paired. "
        "Paired difference: per mixture, each variant's NSDR averaged over its seeds, minus its reference's (the recipe "
        "it differs from in one respect); length-weighted mean with a bootstrap 95% interval that resamples "
        f"{unit} ({n_boot} resamples).\n\n"
    )
    return intro + "\n".join(sections)


def _code_section(
    runs_by_name: dict[str, Experiment],
    names: dict[str, list[str]],
    n_boot: int,
    mixtures: pd.DataFrame | None,
    noises: int = 1,
) -> str:
    runs = {v: [n for n in group if n in runs_by_name] for v, group in names.items()}
    if not runs["default"]:
        return ""
    tables = {name: exp.table for name, exp in runs_by_name.items()}

    def mean_over_seeds(variant: str, system: str = "danet") -> pd.DataFrame:
        parts = [_system(tables[n], system) for n in runs[variant]]
        joined = pd.concat(parts, axis=1, join="inner", keys=range(len(parts)))
        nsdr = joined.xs("nsdr_music", axis=1, level=1).mean(axis=1)
        return pd.DataFrame({"nsdr_music": nsdr, "length": joined.xs("length", axis=1, level=1).iloc[:, 0]})

    default = runs_by_name[runs["default"][0]]
    first = default.table
    oracle, gate = _gnsdr(_system(first, "oracle_irm")), _gnsdr(_system(first, "baseline"))
    clips = None if mixtures is None else clip_of_mixture(first, mixtures)
    baselines = sorted({exp.baseline for exp in runs_by_name.values()})
    lines = [
        f"## Code {default.code}, {noises} noise{'s' if noises > 1 else ''} (experiments on commit(s) {', '.join(baselines)})\n\n",
        f"The default here: {_recipe(default.params)}. All are scored on the same {len(_system(first, 'danet'))} test "
        f"mixtures (every test clip with several test noises, {noises} noise{'s' if noises > 1 else ''} per mixture, 0 dB; "
        "BSS Eval at 8 kHz). On them the oracle ratio "
        f"mask reaches GNSDR {oracle:.2f} dB and the spectral gate {gate:.2f} dB.\n\n",
        "| variant | what | seeds | GNSDR per seed (dB) | mean +- sd | / oracle | separated F1 (mean) "
        "| paired diff vs reference [95% CI] |\n|---|---|---|---|---|---|---|---|\n",
    ]
    for variant, spec in VARIANTS.items():
        if not runs[variant]:
            continue
        per_seed = [_gnsdr(_system(tables[n], "danet")) for n in runs[variant]]
        f1 = [runs_by_name[n].score.get("classification.separated.f1") for n in runs[variant]]
        f1_text = f"{np.mean([x for x in f1 if x is not None]):.2f}" if any(x is not None for x in f1) else "-"
        sd = f"{np.std(per_seed, ddof=1):.2f}" if len(per_seed) > 1 else "-"
        if spec.reference is None:
            paired = "(reference)"
        elif not runs[spec.reference]:
            paired = f"vs {spec.reference}: not run on this code"
        else:
            both = mean_over_seeds(variant).merge(mean_over_seeds(spec.reference), left_index=True, right_index=True,
                                                  suffixes=("", "_reference"))  # fmt: skip
            groups = None if clips is None else clips.loc[both.index]
            diff, lo, hi = paired_difference(both["nsdr_music"], both["nsdr_music_reference"], both["length"], n=n_boot,
                                             groups=groups)  # fmt: skip
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "no difference shown"
            paired = f"vs {spec.reference}: {diff:+.2f} [{lo:+.2f}, {hi:+.2f}] {verdict}"
        lines.append(
            f"| {variant} | {spec.what} | {len(per_seed)} | {', '.join(f'{x:.2f}' for x in per_seed)} | "
            f"{np.mean(per_seed):.2f} +- {sd} | {np.mean(per_seed) / oracle:.2f} | {f1_text} | {paired} |\n"
        )
    not_run = [v for v in RUNNABLE if not runs[v]]
    if not_run:
        lines.append(f"\nNot run on this code: {', '.join(not_run)}.\n")
    return "".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="train and score each variant with each seed (dvc exp run --temp ... score)")
    run_p.add_argument("--variants", nargs="+", default=RUNNABLE, choices=RUNNABLE)
    run_p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    run_p.add_argument("--noises", type=int, default=1, choices=NOISES, help="environmental sounds per test mixture")
    run_p.add_argument("--force", action="store_true", help="rerun experiments already saved")
    rep = sub.add_parser("report", help="write docs/SEPARATORS.md from the recorded experiments")
    rep.add_argument("--out", type=Path, default=REPO / "docs" / "SEPARATORS.md")
    args = parser.parse_args()
    if args.command == "run":
        run(args.variants, args.seeds, args.force, args.noises)
    else:
        with atomic_path(args.out) as tmp:
            tmp.write_text("# Separators compared\n\n" + report())
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
