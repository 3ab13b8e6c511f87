"""Tests for scripts/ablation.py: the rows undo one original choice at a time; the report reads MLflow."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("ablation", REPO / "scripts" / "ablation.py")
ablation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ablation)


def _get(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        node = node[part]
    return node


def test_rows_go_from_the_original_to_the_defaults_one_fix_at_a_time():
    rows = ablation.rows()
    assert len(rows) == len(ablation.FIXES) + 1
    everything = {k: v for _, _, original in ablation.FIXES for k, v in original.items()}
    assert rows[0][2] == everything and rows[-1][2] == {}
    for (_, _, before), (_, _, after), (_, _, fix) in zip(rows, rows[1:], ablation.FIXES):
        assert before == after | fix and not set(after) & set(fix)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, original in everything.items():
        # Every key exists (a typo would silently add a new param) and each fix changes something.
        assert _get(params, key) != original, key


def test_overrides_are_passed_as_yaml_that_dvc_parses():
    args = ablation.set_args({"danet.threshold_db": None, "music2vec.augment_lowpass_hz": [], "sweep.snr_db": [-5.0, 0.0]})
    assert args == ["-S", "danet.threshold_db=null", "-S", "music2vec.augment_lowpass_hz=[]", "-S", "sweep.snr_db=[-5.0, 0.0]"]
    assert ablation.exp_name(0, 2) == "abl-00-original-n2"


def test_target_verdicts():
    found = {
        "snr_0.classification.clean.f1": 0.9, "snr_0.classification.mixture.f1": 0.6,
        "snr_0.classification.separated.f1": 0.87, "snr_0.separation.gnsdr": 9.0,
        "snr_0.separation.oracle_irm.gnsdr": 10.0, "snr_0.separation.baseline.gnsdr": 1.0,
    }  # fmt: skip
    line = ablation.target_lines(found, 0.0, 1)
    assert "| +0.27 | 0.97 | met |" in line and "= 0.90 |" in line and "| met (stretch too) |" in line
    found["snr_0.classification.separated.f1"] = 0.8  # above the mixture, but 0.89 of clean
    found["snr_0.separation.gnsdr"] = 6.0  # 0.6 of the oracle: the target, not the stretch
    line = ablation.target_lines(found, 0.0, 1)
    assert "| 0.89 | not met |" in line and line.endswith("| met |\n")
    found["snr_0.classification.mixture.f1"] = found["snr_0.classification.clean.f1"] = 0.7  # no gap to close
    found["snr_0.separation.gnsdr"] = 4.9  # below half the oracle
    line = ablation.target_lines(found, 0.0, 1)
    assert "| +0.10 | 1.14 | met |" in line and line.endswith("| not met |\n")
    found["snr_0.classification.separated.f1"] = 0.69  # below the mixture
    assert "| -0.01 | 0.99 | not met |" in ablation.target_lines(found, 0.0, 1)
    assert "not recorded" in ablation.target_lines({}, -5.0, 2)


def test_report_is_built_from_the_runs_recorded_in_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    from danet_music2vec.tracking import stage_run

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    final = len(ablation.rows()) - 1
    for row, f1 in ((0, 0.25), (final, 0.85)):
        monkeypatch.setenv("DVC_EXP_NAME", ablation.exp_name(row, 1))
        with stage_run("sweep", params) as run:
            run.log_parent_metrics(
                {f"snr_{s}.{k}": v for s in ("m5", "0") for k, v in {
                    "separation.gnsdr": 4.0, "separation.gsir": 6.0, "separation.gsar": 11.0,
                    "separation.oracle_irm.gnsdr": 15.0, "separation.baseline.gnsdr": -0.5,
                    "classification.clean.f1": 0.89, "classification.mixture.f1": 0.7,
                    "classification.separated.f1": f1, "classification.clean.accuracy": 0.89}.items()}  # fmt: skip
            )
            # The intervals are only on the stage's own (child) run: the report merges them in.
            run.log_metrics({"snr_0.classification.separated.f1_ci_low": f1 - 0.2, "snr_0.classification.separated.f1_ci_high": 1.0})
    out = tmp_path / "docs" / "RESULTS.md"
    ablation.report(out)
    assert "Not generated yet: `python scripts/compare_separators.py report`" in out.read_text()
    (tmp_path / "docs" / "SEPARATORS.md").write_text("# Separators compared\n\nIntro.\n\n## Code abc, 1 noise\n\n| default |\n")
    ablation.report(out)
    text = out.read_text()
    assert text.endswith("## Separators: seeds and paired intervals (from docs/SEPARATORS.md)\n\nIntro.\n\n### Code abc, 1 noise\n\n| default |\n")
    total = 2 * (len(ablation.rows()) + len(ablation.VARIANTS))
    assert f"2 of {total} experiments recorded" in text
    original_row = next(line for line in text.splitlines() if line.startswith("| 0 | as the original work"))
    assert "| 0.25 |" in original_row and "| 4.00 | 6.00 | 11.00 |" in original_row
    assert "nan" not in text and "| 1 | + " in text.split("### 1 noise, input SNR 0 dB")[1]  # rows not run show "-"
    not_run = next(line for line in text.splitlines() if line.startswith("| 1 | + "))
    assert not_run.endswith("| - | - |")
    assert "| 1 | 0 dB | 0.89 / 0.70 / 0.85 [0.65, 1.00]" in text and "not recorded" in text
    assert (tmp_path / "docs" / "results" / "ablation_n1.png").read_bytes()[:4] == b"\x89PNG"


def test_run_refuses_unknown_rows():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "ablation.py"), "run", "--rows", "99"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "rows are 0 .." in done.stderr
