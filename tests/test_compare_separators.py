"""Tests for scripts/compare_separators.py: variants are real params; the report pairs mixtures across seeds."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("compare_separators", REPO / "scripts" / "compare_separators.py")
compare = importlib.util.module_from_spec(spec)
sys.modules["compare_separators"] = compare  # dataclasses look their module up while the class is built
spec.loader.exec_module(compare)


def test_every_variant_overrides_existing_params_with_other_values():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert compare.VARIANTS["default"].overrides == {} and compare.VARIANTS["default"].reference is None
    for name, variant in compare.VARIANTS.items():
        assert variant.reference is None or variant.reference in compare.VARIANTS, name
        changed = []
        for dotted, value in variant.overrides.items():
            node = params
            for part in dotted.split("."):
                assert part in node, f"{name}: {dotted} is not in params.yaml"
                node = node[part]
            changed.append(node != value)
        # A recipe may restate a default (to mean the same in every section), but it must change
        # something, unless it is the recipe the default adopted.
        assert name == "default" or any(changed) != variant.adopted, f"{name}: changes {'nothing' if not variant.adopted else 'something'}"
    assert compare.RUNNABLE == [name for name, variant in compare.VARIANTS.items() if not variant.adopted]


def _save(repo, name: str, nsdr: np.ndarray, baseline: str = "ab/cdef", noise: list[str] | None = None) -> None:
    """A commit holding an experiment's outputs under refs/exps/, as `dvc exp run` saves one."""
    table = pd.DataFrame({"mixture_id": [f"test-{i:05d}" for i in range(len(nsdr))] * 3,
                          "noise": (noise or ["n"] * len(nsdr)) * 3,
                          "system": ["danet"] * len(nsdr) + ["oracle_irm"] * len(nsdr) + ["baseline"] * len(nsdr),
                          "nsdr_music": np.concatenate([nsdr, nsdr + 10.0, nsdr * 0.0 - 1.0]),
                          "length": 96000, "silent": False})  # fmt: skip
    (repo / "plots").mkdir(exist_ok=True)
    (repo / "metrics").mkdir(exist_ok=True)
    table.to_csv(repo / "plots" / "separation.csv", index=False)
    (repo / "metrics" / "score.json").write_text(json.dumps({"classification.separated.f1": 0.8}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    count = int(subprocess.run(["git", "rev-list", "--all", "--count"], cwd=repo, capture_output=True, text=True).stdout or 0)
    when = f"2026-01-01T00:{count:02d}:00"  # one minute apart: the report lists the newest code first
    subprocess.run(git + ["commit", "-qm", name], cwd=repo, check=True, env=os.environ | {"GIT_COMMITTER_DATE": when})
    subprocess.run(["git", "update-ref", f"refs/exps/{baseline}/{name}", "HEAD"], cwd=repo, check=True)


def test_report_gives_seeds_and_a_paired_interval(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    rng = np.random.default_rng(0)
    hard = rng.normal(3.0, 3.0, size=40)  # mixtures differ in difficulty; both systems feel it
    for seed in (0, 1):
        _save(tmp_path, compare.exp_name("default", seed), hard + rng.normal(0, 0.1, 40))
        _save(tmp_path, compare.exp_name("mask-baseline", seed), hard - 0.5 + rng.normal(0, 0.1, 40))
    text = compare.report(n_boot=500, repo=tmp_path)
    default = next(line for line in text.splitlines() if line.startswith("| default |"))
    baseline = next(line for line in text.splitlines() if line.startswith("| mask-baseline |"))
    assert "| 2 |" in default and "(reference)" in default
    diff, low, high = (float(x) for x in re.search(r"([-+]\d\.\d\d) \[([-+]\d\.\d\d), ([-+]\d\.\d\d)\] worse", baseline).groups())
    assert abs(diff + 0.5) < 0.05 and low < diff < high < 0  # 0.5 dB worse on every mixture: the interval shows it
    assert "Not run on this code:" in text and "loss-psa" in text
    assert "40 test mixtures" in text and "| 0.80 |" in default


def test_experiments_on_other_code_are_not_paired(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    rng = np.random.default_rng(1)
    hard = rng.normal(3.0, 3.0, size=40)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("old = True\n")
    _save(tmp_path, compare.exp_name("default", 0), hard)
    _save(tmp_path, compare.exp_name("mask-baseline", 0), hard - 1.0)
    old_code = compare.workspace_code(tmp_path)
    (tmp_path / "src" / "model.py").write_text("old = False\n")  # the code changes; the default is run again
    assert compare.workspace_code(tmp_path) != old_code
    _save(tmp_path, compare.exp_name("default", 0), hard + 2.0, baseline="12/3456")
    text = compare.report(n_boot=200, repo=tmp_path)
    new, old = text.split("## Code ")[1:]  # newest first
    assert new.startswith(compare.workspace_code(tmp_path)) and old.startswith(old_code)
    assert "mask-baseline" not in new.split("Not run on this code:")[0]  # not paired with the new default
    assert re.search(r"vs default: -1\.00 \[-1\.00, -1\.00\] worse", old)  # paired with the default of its own code


def _mixtures(repo, n: int, per_clip: int) -> None:
    """The mix stage's output for ``n`` test mixtures, ``per_clip`` cut from each music clip (and one train row)."""
    (repo / "data").mkdir(exist_ok=True)
    ids = [f"test-{i:05d}" for i in range(n)]
    pd.DataFrame({"mixture_id": ids + ["train-00000"], "split": ["test"] * n + ["train"],
                  "music_clip": [f"music/rock/clip{i // per_clip}" for i in range(n)] + ["music/rock/other"],
                  "noise_clips": [[f"noise/n{i}"] for i in range(n + 1)]}).to_parquet(repo / "data" / "mixtures.parquet")  # fmt: skip


def test_the_paired_interval_resamples_music_clips_when_the_mixtures_are_known(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    rng = np.random.default_rng(2)
    hard = rng.normal(3.0, 3.0, size=40)
    per_clip_gain = np.repeat(rng.normal(0.5, 1.0, size=8), 5)  # the variant suits some clips and not others
    _save(tmp_path, compare.exp_name("default", 0), hard, noise=[f"n{i}" for i in range(40)])
    _save(tmp_path, compare.exp_name("mask-baseline", 0), hard + per_clip_gain, noise=[f"n{i}" for i in range(40)])

    def interval(text: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith("| mask-baseline |"))
        low, high = (float(x) for x in re.search(r"\[([-+]\d\.\d\d), ([-+]\d\.\d\d)\]", line).groups())
        return high - low

    by_mixture = compare.report(n_boot=1000, repo=tmp_path)
    _mixtures(tmp_path, 40, per_clip=5)
    by_clip = compare.report(n_boot=1000, repo=tmp_path)
    assert "resamples mixtures" in by_mixture and "resamples the test music clips" in by_clip
    assert interval(by_clip) > 1.5 * interval(by_mixture)  # 8 independent clips, not 40 mixtures

    _mixtures(tmp_path, 30, per_clip=5)  # the workspace holds other mixtures than the experiments scored
    with pytest.raises(ValueError, match="dvc checkout data/mixtures.parquet"):
        compare.report(n_boot=100, repo=tmp_path)


def test_two_noise_experiments_get_their_own_section_and_keep_the_clip_bootstrap(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    rng = np.random.default_rng(3)
    hard = rng.normal(3.0, 3.0, size=40)
    assert compare.exp_name("default", 1, noises=2) == "sep-default-n2-s1" and compare.exp_name("default", 1) == "sep-default-s1"
    _save(tmp_path, compare.exp_name("default", 0), hard, noise=[f"n{i}" for i in range(40)])
    two = [f"n{i}+n{i + 1}" for i in range(40)]  # the same mixture ids, two noises each
    _save(tmp_path, compare.exp_name("default", 0, noises=2), hard - 1.0, noise=two)
    _save(tmp_path, compare.exp_name("mask-baseline", 0, noises=2), hard - 1.5, noise=two)
    _mixtures(tmp_path, 40, per_clip=5)  # the workspace has the 1-noise mixtures
    one_noise, two_noises = compare.report(n_boot=200, repo=tmp_path).split("## Code ")[1:]
    assert ", 1 noise (" in one_noise and "mask-baseline" not in one_noise.split("Not run on this code:")[0]
    assert ", 2 noises (" in two_noises and "2 noises per mixture" in two_noises
    assert re.search(r"vs default: -0\.50 \[-0\.50, -0\.50\] worse", two_noises)
