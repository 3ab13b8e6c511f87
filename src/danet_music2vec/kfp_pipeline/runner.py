"""What a pipeline component runs inside the project image: one DVC stage, unchanged.

    python -m danet_music2vec.kfp_pipeline.runner --workdir /app --stage mix \\
        --cmd "python stages/mix.py" --param noises 2 \\
        --dep data/raw <input artifact path> --out data/mixtures.parquet <output artifact path>

In ``--workdir`` (the copied project) it puts each input artifact where the stage
expects its dep, writes the ``--param`` values (YAML, as ``dvc exp run -S`` takes
them) into ``params.yaml``, removes the stage's outs as ``dvc repro`` does, runs
the stage's own ``cmd`` from dvc.yaml, and copies each out to its output artifact
path, from which KFP uploads it.

A shard task adds ``--shard K/N`` (the stage computes one block of the test set into its
resume folder, the task's one out); the stage's task after the shards adds
``--shards FOLDER EXECUTOR_INPUT``: the task's executor input (KFP's ``{{$}}``), whose list of
artifacts ``shards`` holds the shards' folders, merged into ``FOLDER`` before the stage runs
(:mod:`danet_music2vec.shards`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from danet_music2vec.params import assign, parse_params


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _copy(source: Path, target: Path) -> None:
    _remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


def artifact_paths(executor_input: str, name: str) -> list[Path]:
    """Local paths of the list of artifacts ``name`` in a task's executor input (the JSON KFP puts for ``{{$}}``, as
    lightweight Python components receive it). KFP's own rule maps each URI to where the launcher put its files."""
    from kfp import dsl

    artifacts = json.loads(executor_input)["inputs"]["artifacts"][name]["artifacts"]
    return [Path(dsl.Artifact(uri=a["uri"], metadata=a.get("metadata") or {}).path) for a in artifacts]


def merge_folders(sources: Sequence[Path], target: Path) -> None:
    """Copy every file of ``sources`` into ``target`` (a shard's resume folder holds its own mixtures' files only)."""
    _remove(target)
    target.mkdir(parents=True)
    for source in sources:
        shutil.copytree(source, target, dirs_exist_ok=True)


def write_params(path: Path, values: Sequence[tuple[str, str]]) -> None:
    """Overwrite ``path``'s leaves with YAML-encoded ``values``; the result is validated before it is written."""
    params = yaml.safe_load(path.read_text())
    for dotted, text in values:
        try:
            assign(params, dotted, yaml.safe_load(text))
        except KeyError:
            raise KeyError(f"params.yaml has no key {dotted}") from None
    parse_params(params, path)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def run_stage(
    workdir: Path,
    cmd: str,
    params: Sequence[tuple[str, str]],
    deps: Sequence[tuple[str, str]],
    outs: Sequence[tuple[str, str]],
    run_name: str | None = None,
    shard: str | None = None,
    shards: tuple[str, Sequence[Path]] | None = None,
) -> None:
    """Place the deps, write the params, run ``cmd`` in ``workdir`` and copy the outs out.

    ``shard``: run ``cmd --shard <shard>``; ``shards``: (the stage's resume folder, the shards' folders) merged
    there before ``cmd`` runs.

    ``run_name`` (the KFP run's) stands in for the DVC experiment name, which names the
    MLflow parent run: every step of one pipeline run logs under one parent, as the stages
    of one ``dvc exp run`` do. Without it each step's own params.yaml would name the parent.
    """
    for rel, artifact in deps:
        _copy(Path(artifact), workdir / rel)
    write_params(workdir / "params.yaml", params)
    for rel, _artifact in outs:
        _remove(workdir / rel)
    if shards is not None:
        merge_folders(shards[1], workdir / shards[0])
    env = os.environ | ({"DVC_EXP_NAME": f"kfp-{run_name}"} if run_name else {})
    subprocess.run(shlex.split(cmd) + (["--shard", shard] if shard else []), cwd=workdir, env=env, check=True)
    for rel, artifact in outs:
        produced = workdir / rel
        if not produced.exists():
            raise FileNotFoundError(f"{cmd}: did not write its out {rel}")
        _copy(produced, Path(artifact))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one DVC stage inside a Kubeflow pipeline component.")
    parser.add_argument("--workdir", type=Path, required=True, help="the project copy in the image")
    parser.add_argument("--stage", required=True, help="DVC stage name (for messages)")
    parser.add_argument("--cmd", required=True, help="the stage's cmd from dvc.yaml")
    parser.add_argument("--run-name", help="the KFP run's name: names the MLflow parent run")
    pair = dict(nargs=2, action="append", default=[])
    parser.add_argument("--param", metavar=("KEY", "YAML"), **pair)
    parser.add_argument("--dep", metavar=("PATH", "ARTIFACT"), **pair)
    parser.add_argument("--out", metavar=("PATH", "ARTIFACT"), **pair)
    parser.add_argument("--shard", metavar="K/N", help="run one shard of the stage's test mixtures")
    parser.add_argument("--shards", nargs=2, metavar=("FOLDER", "EXECUTOR_INPUT"),
                        help="the task's executor input (KFP's {{$}}): its artifacts `shards` are merged into FOLDER")
    args = parser.parse_args(argv)
    shards = None if args.shards is None else (args.shards[0], artifact_paths(args.shards[1], "shards"))
    try:
        run_stage(args.workdir, args.cmd, args.param, args.dep, args.out, args.run_name, args.shard, shards)
    except subprocess.CalledProcessError as err:
        print(f"{args.stage}: `{args.cmd}` exited with status {err.returncode}", file=sys.stderr)
        return err.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
