"""Tests for experiments.runner and the scripts' `run`: one `dvc exp run` per experiment not recorded yet."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from danet_music2vec.experiments import runner
from danet_music2vec.tracking import pipeline_metrics, stage_run
from tests.conftest import REPO
from tests.experiments.conftest import save_experiment


def test_overrides_are_passed_as_yaml_that_dvc_parses():
    args = runner.set_args({"separator.danet.threshold_db": None, "music2vec.augment_lowpass_hz": [], "sweep.snr_db": [-5.0, 0.0]})
    assert args == ["-S", "separator.danet.threshold_db=null", "-S", "music2vec.augment_lowpass_hz=[]", "-S", "sweep.snr_db=[-5.0, 0.0]"]


def test_ablation_runs_what_mlflow_has_not_recorded_and_force_starts_a_clean_record(tmp_path, monkeypatch, dvc_calls):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    runner.run_ablation([7], [2], [2], force=False, repo=tmp_path)
    assert dvc_calls() == [
        ["exp", "run", "--temp", "-n", "abl-07-full-rate-n2", "-S", "noises=2", "-S", "music2vec.augment_gain_db=null",
         "-S", "music2vec.augment_lowpass_hz=[]", "-S", "data.separation_noise_dirs=[]", "-S", "separator.start=scratch",
         "-S", "adapt_music2vec.paths=[separated]", "-S", "sweep.snr_db=[-5.0, 0.0]"],
        ["exp", "run", "--temp", "-n", "abl-var-mask-floor-n2", "-S", "noises=2", "-S", "separator.start=scratch",
         "-S", "separator.architecture=chimera",
         "-S", "separator.epochs=15", "-S", "separate.mask_floor=0.1", "-S", "sweep.snr_db=[-5.0, 0.0]"],
    ]  # fmt: skip
    monkeypatch.setenv("DVC_EXP_NAME", "abl-07-full-rate-n2")
    with stage_run("sweep", {"noises": 2}) as run:  # what the experiment records
        run.log_parent_metrics({"snr_m5.separation.gnsdr": 3.0})
    runner.run_ablation([7], [], [2], force=False, repo=tmp_path)
    assert len(dvc_calls()) == 2  # recorded: skipped
    runner.run_ablation([7], [], [2], force=True, repo=tmp_path)
    assert dvc_calls()[-1][4] == "abl-07-full-rate-n2" and pipeline_metrics(["abl-07-full-rate-n2"], tmp_path) == {}


def test_separators_skip_what_was_saved_on_this_code_under_either_name(tmp_path, monkeypatch, dvc_calls):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    save_experiment(repo, "sep-mask-baseline-s0", np.zeros(4))  # saved under the recipe's old name
    runner.run_separators(["mask-network", "default"], [0], force=False, repo=repo)
    assert dvc_calls() == [["exp", "run", "--temp", "-n", "sep-default-s0", "-S", "separator.start=scratch", "-S",
                            "separator.seed=0", "score"]]  # fmt: skip
    runner.run_separators(["mask-network"], [0], force=True, repo=repo, noises=2)
    runner.run_separators(["mask-network"], [0], force=True, repo=repo)
    assert dvc_calls()[1:] == [
        ["exp", "run", "--temp", "-n", "sep-mask-network-n2-s0", "-S", "separator.start=scratch", "-S",
         "separator.architecture=mask", "-S", "separator.epochs=15", "-S", "separator.seed=0", "-S", "noises=2", "score"],
        ["exp", "run", "--temp", "-n", "sep-mask-network-s0", "-S", "separator.start=scratch", "-S",
         "separator.architecture=mask", "-S", "separator.epochs=15", "-S", "separator.seed=0", "score"],
    ]  # fmt: skip


def test_run_refuses_unknown_rows():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "ablation.py"), "run", "--rows", "99"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "rows are 0 .." in done.stderr
