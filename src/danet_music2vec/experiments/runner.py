"""Run the recipes: one ``dvc exp run --temp -n <name> -S key=value ...`` per experiment.

DVC's run cache restores every stage whose inputs an earlier experiment already produced,
so only what a recipe changes is recomputed. An experiment already recorded is skipped
(``force`` reruns it), so an interrupted run resumes. Before an experiment runs, the MLflow
runs recorded under its name are deleted: a name names one parent run, which a rerun would
otherwise reuse with its old params and the old metrics of every stage DVC restores.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from danet_music2vec.experiments.records import recorded_metrics, saved_experiments, sweep_finished, workspace_code
from danet_music2vec.experiments.variants import (
    ABLATION_SNRS,
    ABLATION_VARIANTS,
    SEPARATOR_VARIANTS,
    ablation_name,
    ablation_rows,
    ablation_variant_name,
    separator_name,
    separator_names,
)
from danet_music2vec.params import yaml_text
from danet_music2vec.tracking import delete_pipeline_runs


def set_args(overrides: Mapping[str, Any]) -> list[str]:
    """``overrides`` as ``dvc exp run`` arguments: ``-S key=<one line of YAML>`` each (null, [] keep their types)."""
    return [arg for key, value in overrides.items() for arg in ("-S", f"{key}={yaml_text(value)}")]


def run_experiments(
    todo: Sequence[tuple[str, Mapping[str, Any]]],
    done: Collection[str],
    force: bool,
    repo: Path,
    targets: Sequence[str] = (),
    recorded: str = "already recorded",
) -> None:
    """``dvc exp run --temp`` each ``(name, overrides)`` of ``todo`` in ``repo``, up to ``targets`` (all stages if none).

    Names in ``done`` are skipped unless ``force`` (``recorded`` says where they were found).
    """
    for name, overrides in todo:
        if not force and name in done:
            print(f"{name}: {recorded} (use --force to rerun)")
            continue
        delete_pipeline_runs([name], repo)  # the rerun starts a clean MLflow record
        cmd = ["dvc", "exp", "run", "--temp", "-n", name, *set_args(overrides), *targets]
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=repo, check=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


def run_ablation(rows: list[int], variants: list[int], noises: list[int], force: bool, repo: Path) -> None:
    """The ablation's ``rows`` and ``variants`` (indices) at each of ``noises``, the whole pipeline each.

    An experiment counts as done once MLflow holds its sweep's numbers.
    """
    recipes = list(ablation_rows().values())
    levers = list(ABLATION_VARIANTS.values())
    todo = [(ablation_name(r, n), n, recipes[r].overrides) for n in noises for r in rows]
    todo += [(ablation_variant_name(v, n), n, levers[v].overrides) for n in noises for v in variants]
    done = {name for name, found in recorded_metrics([name for name, _, _ in todo], repo).items() if sweep_finished(found)}
    run_experiments(
        [(name, {"noises": n} | dict(overrides) | {"sweep.snr_db": ABLATION_SNRS}) for name, n, overrides in todo],
        done,
        force,
        repo,
        recorded="already recorded in MLflow",
    )


def run_separators(variants: list[str], seeds: list[int], force: bool, repo: Path, noises: int = 1) -> None:
    """Each separator recipe of ``variants`` with each training seed, up to the score stage.

    Seed by seed, so a stopped run leaves paired experiments. An experiment counts as done
    once DVC saved it on the workspace's code (under today's name or the one it was recorded as).
    """
    todo = [(v, s) for s in seeds for v in variants]
    names = {(v, s): separator_names(v, s, noises) for v, s in todo}
    code = workspace_code(repo)
    found = saved_experiments([name for candidates in names.values() for name in candidates], repo)
    saved = {name for c, name in found if c == code}
    done = {candidates[0] for candidates in names.values() if saved.intersection(candidates)}
    extra = {"noises": noises} if noises != 1 else {}
    run_experiments(
        [(separator_name(v, s, noises), dict(SEPARATOR_VARIANTS[v].overrides) | {"separator.seed": s} | extra)
         for v, s in todo],  # fmt: skip
        done,
        force,
        repo,
        targets=["score"],
        recorded="already saved as a DVC experiment of this code",
    )
