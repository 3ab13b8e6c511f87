"""Tests for experiments.reports: RESULTS.md from the MLflow records; SEPARATORS.md pairs mixtures across seeds."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from danet_music2vec.experiments import records, reports, variants
from tests.conftest import REPO
from tests.experiments.conftest import save_experiment


def test_target_verdicts():
    found = {
        "snr_0.classification.clean.f1": 0.9, "snr_0.classification.mixture.f1": 0.6,
        "snr_0.classification.separated.f1": 0.87, "snr_0.separation.gnsdr": 9.0,
        "snr_0.separation.oracle_irm.gnsdr": 10.0, "snr_0.separation.spectral_gate.gnsdr": 1.0,
    }  # fmt: skip
    line = reports.target_lines(found, 0.0, 1)
    assert "| +0.27 | 0.97 | met |" in line and "= 0.90 |" in line and "| met (stretch too) |" in line
    found["snr_0.classification.separated.f1"] = 0.8  # above the mixture, but 0.89 of clean
    found["snr_0.separation.gnsdr"] = 6.0  # 0.6 of the oracle: the target, not the stretch
    line = reports.target_lines(found, 0.0, 1)
    assert "| 0.89 | not met |" in line and line.endswith("| met |\n")
    found["snr_0.classification.mixture.f1"] = found["snr_0.classification.clean.f1"] = 0.7  # no gap to close
    found["snr_0.separation.gnsdr"] = 4.9  # below half the oracle
    line = reports.target_lines(found, 0.0, 1)
    assert "| +0.10 | 1.14 | met |" in line and line.endswith("| not met |\n")
    found["snr_0.classification.separated.f1"] = 0.69  # below the mixture
    assert "| -0.01 | 0.99 | not met |" in reports.target_lines(found, 0.0, 1)
    assert "not recorded" in reports.target_lines({}, -5.0, 2)


def test_report_is_built_from_the_runs_recorded_in_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    from danet_music2vec.tracking import stage_run

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    final = len(variants.ablation_rows()) - 1
    for row, f1 in ((0, 0.25), (final, 0.85)):
        monkeypatch.setenv("DVC_EXP_NAME", variants.ablation_name(row, 1))
        with stage_run("sweep", params) as run:
            run.log_parent_metrics(
                # The spectral gate under its name before issue 18 (separation.baseline), as the recorded experiments have it.
                {f"snr_{s}.{k}": v for s in ("m5", "0") for k, v in {
                    "separation.gnsdr": 4.0, "separation.gsir": 6.0, "separation.gsar": 11.0,
                    "separation.oracle_irm.gnsdr": 15.0, "separation.baseline.gnsdr": -0.5,
                    "classification.clean.f1": 0.89, "classification.mixture.f1": 0.7,
                    "classification.separated.f1": f1, "classification.clean.accuracy": 0.89}.items()}  # fmt: skip
            )
            # The intervals are only on the stage's own (child) run: the report merges them in.
            run.log_metrics({"snr_0.classification.separated.f1_ci_low": f1 - 0.2, "snr_0.classification.separated.f1_ci_high": 1.0})
    out = tmp_path / "docs" / "RESULTS.md"
    reports.write_results(out, tmp_path)
    assert "Not generated yet: `python scripts/compare_separators.py report`" in out.read_text()
    (tmp_path / "docs" / "SEPARATORS.md").write_text("# Separators compared\n\nIntro.\n\n## Code abc, 1 noise\n\n| default |\n")
    reports.write_results(out, tmp_path)
    text = out.read_text()
    assert text.endswith("## Separators: seeds and paired intervals (from docs/SEPARATORS.md)\n\nIntro.\n\n### Code abc, 1 noise\n\n| default |\n")
    total = 2 * (len(variants.ablation_rows()) + len(variants.ABLATION_VARIANTS))
    assert f"2 of {total} experiments recorded" in text
    original_row = next(line for line in text.splitlines() if line.startswith("| 0 | as the original work"))
    assert "| 0.25 |" in original_row and "| 4.00 | 6.00 | 11.00 |" in original_row
    assert "nan" not in text and "| 1 | + " in text.split("### 1 noise, input SNR 0 dB")[1]  # rows not run show "-"
    not_run = next(line for line in text.splitlines() if line.startswith("| 1 | + "))
    assert not_run.endswith("| - | - |")
    assert "| 1 | 0 dB | 0.89 / 0.70 / 0.85 [0.65, 1.00]" in text and "not recorded" in text
    assert "`separator.architecture=danet`" in text and "`separate.danet.resolve_order=false`" in text
    assert (tmp_path / "docs" / "results" / "ablation_n1.png").read_bytes()[:4] == b"\x89PNG"


def test_report_gives_seeds_and_a_paired_interval(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    rng = np.random.default_rng(0)
    hard = rng.normal(3.0, 3.0, size=40)  # mixtures differ in difficulty; both systems feel it
    for seed in (0, 1):
        save_experiment(tmp_path, variants.separator_name("default", seed), hard + rng.normal(0, 0.1, 40))
        save_experiment(tmp_path, variants.separator_name("mask-network", seed), hard - 0.5 + rng.normal(0, 0.1, 40))
    text = reports.separators_markdown(n_boot=500, repo=tmp_path)
    default = next(line for line in text.splitlines() if line.startswith("| default |"))
    mask = next(line for line in text.splitlines() if line.startswith("| mask-network |"))
    assert "| 2 |" in default and "(reference)" in default
    diff, low, high = (float(x) for x in re.search(r"([-+]\d\.\d\d) \[([-+]\d\.\d\d), ([-+]\d\.\d\d)\] worse", mask).groups())
    assert abs(diff + 0.5) < 0.05 and low < diff < high < 0  # 0.5 dB worse on every mixture: the interval shows it
    assert "Not run on this code:" in text and "loss-psa" in text
    assert "40 test mixtures" in text and "| 0.80 |" in default
    assert "kmeans-inference" not in text  # retired: it can no longer be run, so it is not "not run"


def test_experiments_recorded_under_a_recipes_old_name_are_reported_under_its_name(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    hard = np.random.default_rng(4).normal(3.0, 3.0, size=40)
    old = ("danet", "oracle_irm", "baseline")  # the system names before issue 18
    save_experiment(tmp_path, "sep-default-s0", hard, systems=old, params={"danet": {"objective": "chimera", "epochs": 15}})
    save_experiment(tmp_path, "sep-mask-baseline-s0", hard - 1.0, systems=old)
    save_experiment(tmp_path, "sep-mask-baseline-s1", hard - 3.0, systems=old)
    save_experiment(tmp_path, "sep-mask-network-s1", hard - 2.0)  # saved under both names: today's counts
    text = reports.separators_markdown(n_boot=200, repo=tmp_path)
    mask = next(line for line in text.splitlines() if line.startswith("| mask-network |"))
    assert f"| 2 | {np.mean(hard - 1.0):.2f}, {np.mean(hard - 2.0):.2f} |" in mask  # seed 0 by its old name, seed 1 by today's
    assert re.search(r"vs default: -1\.50 \[-1\.50, -1\.50\] worse", mask)
    assert "The default here: `architecture: chimera`, `loss: -`, `hidden: -`, `layers: -`, `epochs: 15`" in text
    assert "spectral gate -1.00 dB" in text


def test_experiments_on_other_code_are_not_paired(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    rng = np.random.default_rng(1)
    hard = rng.normal(3.0, 3.0, size=40)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("old = True\n")
    save_experiment(tmp_path, variants.separator_name("default", 0), hard)
    save_experiment(tmp_path, variants.separator_name("mask-network", 0), hard - 1.0)
    old_code = records.workspace_code(tmp_path)
    (tmp_path / "src" / "model.py").write_text("old = False\n")  # the code changes; the default is run again
    assert records.workspace_code(tmp_path) != old_code
    save_experiment(tmp_path, variants.separator_name("default", 0), hard + 2.0, baseline="12/3456")
    text = reports.separators_markdown(n_boot=200, repo=tmp_path)
    new, old = text.split("## Code ")[1:]  # newest first
    assert new.startswith(records.workspace_code(tmp_path)) and old.startswith(old_code)
    assert "mask-network" not in new.split("Not run on this code:")[0]  # not paired with the new default
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
    save_experiment(tmp_path, variants.separator_name("default", 0), hard, noise=[f"n{i}" for i in range(40)])
    save_experiment(tmp_path, variants.separator_name("mask-network", 0), hard + per_clip_gain, noise=[f"n{i}" for i in range(40)])

    def interval(text: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith("| mask-network |"))
        low, high = (float(x) for x in re.search(r"\[([-+]\d\.\d\d), ([-+]\d\.\d\d)\]", line).groups())
        return high - low

    by_mixture = reports.separators_markdown(n_boot=1000, repo=tmp_path)
    _mixtures(tmp_path, 40, per_clip=5)
    by_clip = reports.separators_markdown(n_boot=1000, repo=tmp_path)
    assert "resamples mixtures" in by_mixture and "resamples the test music clips" in by_clip
    assert interval(by_clip) > 1.5 * interval(by_mixture)  # 8 independent clips, not 40 mixtures

    _mixtures(tmp_path, 30, per_clip=5)  # the workspace holds other mixtures than the experiments scored
    with pytest.raises(ValueError, match="dvc checkout data/mixtures.parquet"):
        reports.separators_markdown(n_boot=100, repo=tmp_path)


def test_two_noise_experiments_get_their_own_section_and_keep_the_clip_bootstrap(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    rng = np.random.default_rng(3)
    hard = rng.normal(3.0, 3.0, size=40)
    assert variants.separator_name("default", 1, noises=2) == "sep-default-n2-s1" and variants.separator_name("default", 1) == "sep-default-s1"
    save_experiment(tmp_path, variants.separator_name("default", 0), hard, noise=[f"n{i}" for i in range(40)])
    two = [f"n{i}+n{i + 1}" for i in range(40)]  # the same mixture ids, two noises each
    save_experiment(tmp_path, variants.separator_name("default", 0, noises=2), hard - 1.0, noise=two)
    save_experiment(tmp_path, variants.separator_name("mask-network", 0, noises=2), hard - 1.5, noise=two)
    _mixtures(tmp_path, 40, per_clip=5)  # the workspace has the 1-noise mixtures
    one_noise, two_noises = reports.separators_markdown(n_boot=200, repo=tmp_path).split("## Code ")[1:]
    assert ", 1 noise (" in one_noise and "mask-network" not in one_noise.split("Not run on this code:")[0]
    assert ", 2 noises (" in two_noises and "2 noises per mixture" in two_noises
    assert re.search(r"vs default: -0\.50 \[-0\.50, -0\.50\] worse", two_noises)
