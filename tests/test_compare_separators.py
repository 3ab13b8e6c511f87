"""Tests for scripts/compare_separators.py: variants are real params; the report pairs mixtures across seeds."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pandas as pd
import yaml

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("compare_separators", REPO / "scripts" / "compare_separators.py")
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def test_every_variant_overrides_existing_params_with_other_values():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert compare.VARIANTS["default"][1] == {}
    for name, (_, overrides) in compare.VARIANTS.items():
        for dotted, value in overrides.items():
            node = params
            for part in dotted.split("."):
                assert part in node, f"{name}: {dotted} is not in params.yaml"
                node = node[part]
            assert node != value, f"{name}: {dotted} equals the default"


def _log(tmp_path, monkeypatch, name: str, nsdr: np.ndarray) -> None:
    from danet_music2vec.tracking import stage_run

    table = pd.DataFrame({"mixture_id": [f"test-{i:05d}" for i in range(len(nsdr))] * 3,
                          "system": ["danet"] * len(nsdr) + ["oracle_irm"] * len(nsdr) + ["baseline"] * len(nsdr),
                          "nsdr_music": np.concatenate([nsdr, nsdr + 10.0, nsdr * 0.0 - 1.0]),
                          "length": 96000, "silent": False})  # fmt: skip
    csv = tmp_path / f"{name}.csv"
    table.to_csv(csv, index=False)
    monkeypatch.setenv("DVC_EXP_NAME", name)
    with stage_run("score", yaml.safe_load((REPO / "params.yaml").read_text())) as run:
        renamed = tmp_path / name / "separation.csv"
        renamed.parent.mkdir()
        renamed.write_bytes(csv.read_bytes())
        run.log_artifact(renamed)
        run.log_parent_metrics({"separation.gnsdr": float(nsdr.mean()), "classification.separated.f1": 0.8})


def test_report_gives_seeds_and_a_paired_interval(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    hard = rng.normal(3.0, 3.0, size=40)  # mixtures differ in difficulty; both systems feel it
    for seed in (0, 1):
        _log(tmp_path, monkeypatch, compare.exp_name("default", seed), hard + rng.normal(0, 0.1, 40))
        _log(tmp_path, monkeypatch, compare.exp_name("mask-baseline", seed), hard - 0.5 + rng.normal(0, 0.1, 40))
    text = compare.report(n_boot=500)
    default = next(line for line in text.splitlines() if line.startswith("| default |"))
    baseline = next(line for line in text.splitlines() if line.startswith("| mask-baseline |"))
    assert "| 2 |" in default and "(reference)" in default
    diff, low, high = (float(x) for x in re.search(r"([-+]\d\.\d\d) \[([-+]\d\.\d\d), ([-+]\d\.\d\d)\] worse", baseline).groups())
    assert abs(diff + 0.5) < 0.05 and low < diff < high < 0  # 0.5 dB worse on every mixture: the interval shows it
    assert "| loss-psa |" in text and "not run" in text
    assert "40 test mixtures" in text
