import math

import pandas as pd

from danet_music2vec.evaluation import confusion_long, json_safe, score_classification


def predictions() -> pd.DataFrame:
    rows = []
    for i, (true, clean, mix) in enumerate([("rock", "rock", "folk"), ("rock", "rock", "rock"), ("folk", "folk", "folk"), ("folk", "folk", "rock")]):
        rows += [
            {"mixture_id": f"m{i}", "input": "clean", "true_label": true, "predicted_label": clean},
            {"mixture_id": f"m{i}", "input": "mixture", "true_label": true, "predicted_label": mix},
        ]
    return pd.DataFrame(rows)


def test_classification_summary_per_input_with_intervals():
    summary, tables = score_classification(predictions(), n_boot=200, seed=0, alpha=0.05)
    assert summary["classification.clean.accuracy"] == 1.0
    assert summary["classification.mixture.accuracy"] == 0.5
    assert summary["classification.mixture.f1_ci_low"] <= summary["classification.mixture.f1"] <= summary["classification.mixture.f1_ci_high"]
    assert "classification.separated.f1" not in summary  # no separated rows, no made-up numbers
    assert tables["mixture"].loc["rock", "folk"] == 1 and tables["clean"].to_numpy().trace() == 4


def test_confusion_long_has_one_row_per_clip_for_dvc():
    _, tables = score_classification(predictions(), n_boot=10, seed=0, alpha=0.05)
    long = confusion_long(tables["mixture"])
    assert len(long) == 4 and list(long.columns) == ["actual", "predicted"]
    assert ((long["actual"] == "rock") & (long["predicted"] == "folk")).sum() == 1


def test_json_safe_turns_nan_into_null():
    assert json_safe({"a": math.nan, "b": 1.5}) == {"a": None, "b": 1.5}
