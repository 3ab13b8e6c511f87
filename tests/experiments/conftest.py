"""Helpers of the experiment tests: experiments saved as ``dvc exp run`` saves them, a stand-in for ``dvc``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

SYSTEMS = ("separator", "oracle_irm", "spectral_gate")


def save_experiment(
    repo: Path,
    name: str,
    nsdr: np.ndarray,
    baseline: str = "ab/cdef",
    noise: list[str] | None = None,
    systems: tuple[str, str, str] = SYSTEMS,
    score: dict | None = None,
    params: dict | None = None,
) -> None:
    """A commit holding an experiment's outputs under refs/exps/, as `dvc exp run` saves one.

    ``systems``: the names of the separator, the oracle and the spectral gate in plots/separation.csv.
    """
    table = pd.DataFrame({"mixture_id": [f"test-{i:05d}" for i in range(len(nsdr))] * 3,
                          "noise": (noise or ["n"] * len(nsdr)) * 3,
                          "system": [s for s in systems for _ in range(len(nsdr))],
                          "nsdr_music": np.concatenate([nsdr, nsdr + 10.0, nsdr * 0.0 - 1.0]),
                          "length": 96000, "silent": False})  # fmt: skip
    (repo / "plots").mkdir(exist_ok=True)
    (repo / "metrics").mkdir(exist_ok=True)
    table.to_csv(repo / "plots" / "separation.csv", index=False)
    (repo / "metrics" / "score.json").write_text(json.dumps(score or {"classification.separated.f1": 0.8}))
    if params is not None:
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    count = int(subprocess.run(["git", "rev-list", "--all", "--count"], cwd=repo, capture_output=True, text=True).stdout or 0)
    when = f"2026-01-01T00:{count:02d}:00"  # one minute apart: the report lists the newest code first
    subprocess.run(git + ["commit", "-qm", name], cwd=repo, check=True, env=os.environ | {"GIT_COMMITTER_DATE": when})
    subprocess.run(["git", "update-ref", f"refs/exps/{baseline}/{name}", "HEAD"], cwd=repo, check=True)


@pytest.fixture
def dvc_calls(tmp_path_factory, monkeypatch) -> Callable[[], list[list[str]]]:
    """Put a `dvc` on PATH that only records its arguments; ``dvc_calls()``: the calls so far."""
    bin_dir = tmp_path_factory.mktemp("fake-dvc")  # outside tmp_path: not part of a test's repository
    log = bin_dir / "calls.jsonl"
    dvc = bin_dir / "dvc"
    dvc.write_text(f"#!/bin/sh\nexec python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \"$@\" >> {log}\n")
    dvc.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
