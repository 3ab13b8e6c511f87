"""What leads from a run back to the code, params and data that made it.

The parent run carries ``TRACE_TAGS``: git commit and dirty flag of the checkout that ran,
the DVC experiment name and baseline rev, and hashes of params.yaml and the data manifest.
The pipeline key that names the parent run comes from the same sources.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from danet_music2vec.data.ingest import MANIFEST
from danet_music2vec.tracking.store import repo_root

DATA_MANIFEST = Path("data/raw") / MANIFEST
# Git-tracked files that the stages themselves write: a run changing them does not make its code dirty.
PIPELINE_WRITES = ("dvc.lock", "metrics", "plots")
# Tags on every parent run; README "MLflow" shows how to get from them to `dvc exp apply`.
TRACE_TAGS = (
    "git_commit", "git_dirty", "dvc_exp_name", "dvc_exp_baseline_rev", "params_sha256", "data_manifest_sha256",
)


def pipeline_key(params: Mapping[str, Any]) -> str:
    """Name of this pipeline execution: DVC experiment name, else git rev + params hash."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    digest = hashlib.sha256(yaml.safe_dump(dict(params), sort_keys=True).encode()).hexdigest()[:10]
    return f"{_git(['rev-parse', '--short', 'HEAD'], repo_root()) or 'norev'}-{digest}"


def _git(args: list[str], cwd: Path) -> str | None:
    """Output of a git command, or None outside a git checkout."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=cwd).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def trace_tags(checkout: Path | None = None) -> dict[str, str]:
    """``TRACE_TAGS`` of the code and data in ``checkout`` (the current directory: the copy that runs).

    In a queued or ``--temp`` experiment that copy is DVC's checkout of the baseline
    commit plus the experiment's changes, so ``git_dirty`` is ``true`` whenever
    ``-S`` changed params.yaml; the experiment name restores it exactly.
    """
    checkout = checkout or Path.cwd()
    excluded = [f":(exclude){path}" for path in PIPELINE_WRITES]
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", *excluded], checkout)
    tags = {
        "git_commit": _git(["rev-parse", "HEAD"], checkout),
        "git_dirty": None if status is None else str(bool(status)).lower(),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME"),
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV"),
        "params_sha256": _sha256(checkout / "params.yaml"),
        # Only after the download stage has written it; later stages fill the tag in.
        "data_manifest_sha256": _sha256(checkout / DATA_MANIFEST),
    }
    return {k: v for k, v in tags.items() if v is not None}
