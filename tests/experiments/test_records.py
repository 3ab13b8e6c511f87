"""Tests for experiments.records: experiments recorded before issue 18 read back in today's names."""

from __future__ import annotations

import subprocess

import numpy as np
import yaml

from danet_music2vec.experiments import records
from tests.conftest import REPO
from tests.experiments.conftest import save_experiment


def test_old_params_come_back_in_todays_names():
    old = {"noises": 1,
           "danet": {"objective": "chimera", "threshold_db": 40, "head_weight": 0.5, "loss": "si_sdr", "mask": "ratio"},
           "separate": {"masks": "head", "resolve_order": True, "overlap": 0.25}}  # fmt: skip
    assert records.upgrade_params(old) == {
        "noises": 1,
        "separator": {"architecture": "chimera", "chimera": {"threshold_db": 40, "head_weight": 0.5}, "loss": "si_sdr",
                      "ideal_mask": "ratio"},
        "separate": {"danet": {"resolve_order": True}, "overlap": 0.25},
    }  # fmt: skip
    old["danet"]["objective"] = "attractor"  # DANet's keys go to the group of the architecture that ran
    upgraded = records.upgrade_params(old)
    assert upgraded["separator"]["architecture"] == "danet" and upgraded["separator"]["danet"] == {"threshold_db": 40}
    assert upgraded["separator"]["chimera"] == {"head_weight": 0.5}
    assert records.upgrade_params(upgraded) == upgraded  # today's names stay
    current = records.upgrade_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert records.upgrade_params(current) == current and "danet" not in current
    assert records.upgrade_metric_key("snr_m5.separation.baseline.gnsdr") == "snr_m5.separation.spectral_gate.gnsdr"
    assert records.upgrade_metric_key("separation.oracle_irm.gnsdr") == "separation.oracle_irm.gnsdr"


def test_saved_experiments_read_old_system_names_metrics_and_params(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    save_experiment(tmp_path, "sep-mask-baseline-s0", np.ones(4), systems=("danet", "oracle_irm", "baseline"),
                    score={"separation.baseline.gnsdr": 0.5}, params={"danet": {"objective": "mask"}})  # fmt: skip
    (code, name), saved = next(iter(records.saved_experiments(["sep-mask-baseline-s0"], tmp_path).items()))
    assert code == records.workspace_code(tmp_path) and name == "sep-mask-baseline-s0" and saved.commit == "abcdef"
    assert list(saved.table["system"].unique()) == ["separator", "oracle_irm", "spectral_gate"]
    assert saved.score == {"separation.spectral_gate.gnsdr": 0.5}
    assert saved.params == {"separator": {"architecture": "mask"}}
