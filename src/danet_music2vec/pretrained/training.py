"""Train the shipped separator: the real pipeline's stages, in a clone of the repository at one commit.

The work folder is a ``git clone`` of the repository's HEAD with :data:`RECIPE` written into
its params.yaml; ``dvc repro train_separator`` there runs download, split, features and
train_separator exactly as the pipeline does, and resumes from the training checkpoint
after an interruption (run the same command again).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from danet_music2vec.params import assign
from danet_music2vec.pretrained import RECIPE


def set_params(params_path: Path, overrides: Mapping[str, Any]) -> None:
    """Write ``overrides`` (dotted keys) into the params file at ``params_path``."""
    params = yaml.safe_load(params_path.read_text())
    for dotted, value in overrides.items():
        try:
            assign(params, dotted, value)
        except KeyError:
            raise KeyError(f"{params_path}: no key {dotted!r} to override; fix the recipe") from None
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))


def prepare(repo: Path, work: Path, recipe: Mapping[str, Any] = RECIPE) -> str:
    """Clone ``repo``'s HEAD into ``work`` (kept if it exists, so training resumes) with ``recipe``; its commit."""
    if not (work / ".git").is_dir():
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(repo), str(work)], check=True)
        set_params(work / "params.yaml", recipe)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True).stdout.strip()


def train(work: Path) -> None:
    """``dvc repro train_separator`` in ``work`` (resumes from its checkpoints/separator.pt)."""
    subprocess.run(["dvc", "repro", "train_separator"], cwd=work, check=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
