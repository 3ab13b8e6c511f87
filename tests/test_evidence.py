"""Evidence of a noisy recording along every path, the rule chosen on validation, and the reader the product uses."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from danet_music2vec.classification import Classifier
from danet_music2vec.evidence import (
    PATHS,
    SCORED,
    Evidence,
    GenreReader,
    ProductRule,
    choose_rule,
    classified_results,
    classify_mixtures,
    product_rule,
    removed_db,
)
from tests.factories import music2vec_file


def ev(mixture, separated, adapted, removed=3.0) -> Evidence:
    return Evidence(np.asarray(mixture, float), np.asarray(separated, float), np.asarray(adapted, float), removed)


def test_combined_weighs_the_mixture_against_the_adapted_separation_and_gated_switches_per_clip() -> None:
    e = ev([0.8, 0.2], [0.5, 0.5], [0.2, 0.8], removed=1.0)
    paths = ProductRule(path="combined", weight=0.25, gate_db=2.0).paths(e)
    np.testing.assert_allclose(paths["combined"], [0.35, 0.65])
    np.testing.assert_allclose(paths["gated"], e.mixture)  # the separator removed less than the gate: the mixture answers
    np.testing.assert_allclose(ProductRule(gate_db=0.5).paths(e)["gated"], e.separated_adapted)
    assert set(paths) == set(PATHS) and set(PATHS) < set(SCORED)
    assert ProductRule(path="combined", weight=0.25).proba(e) is not None
    with pytest.raises(ValueError, match="product path 'best'"):
        ProductRule(path="best")
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        ProductRule(weight=1.5)


def test_removed_db_is_the_power_the_separator_took_out() -> None:
    mixture = np.ones(100, dtype=np.float32)
    assert removed_db(mixture, mixture) == pytest.approx(0.0)
    assert removed_db(mixture, 0.5 * mixture) == pytest.approx(10 * np.log10(4))
    assert np.isfinite(removed_db(np.zeros(10), np.zeros(10)))


def test_choose_rule_picks_what_validates_best_and_the_mixture_on_a_tie() -> None:
    labels = [0, 1, 0, 1]
    # The mixture is wrong on half the clips, the adapted separation right on all of them.
    good = [ev([0.4, 0.6], [0.5, 0.5], [0.9, 0.1]), ev([0.6, 0.4], [0.5, 0.5], [0.1, 0.9]),
            ev([0.9, 0.1], [0.5, 0.5], [0.8, 0.2]), ev([0.1, 0.9], [0.5, 0.5], [0.2, 0.8])]  # fmt: skip
    rule, scores = choose_rule(good, labels, 2, weights=[0.0, 0.5, 1.0], gates_db=[1.0, 5.0])
    assert rule.path in ("separated_adapted", "combined", "gated") and scores[rule.path]["f1"] == 1.0
    assert scores["mixture"]["f1"] < 1.0 and rule.weight < 1.0
    assert set(scores) == set(PATHS)
    # Every path equally right and equally sure: the mixture, which needs no separator, wins the tie.
    same = [ev(p, p, p) for p in ([0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9])]
    assert choose_rule(same, labels, 2, weights=[0.5], gates_db=[1.0])[0].path == "mixture"
    with pytest.raises(ValueError, match="need as many of each"):
        choose_rule(good, labels[:2], 2, weights=[0.5], gates_db=[1.0])


def _write(path: Path, wave: np.ndarray, rate: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype="FLOAT")
    return str(path)


def test_classify_mixtures_scores_every_path_and_the_product_is_the_rules_path(tmp_path: Path) -> None:
    classes = ["rock", "jazz"]
    rule = ProductRule(path="combined", weight=0.3, gate_db=1.0)
    adapted_path = music2vec_file(tmp_path / "adapted.pt", classes, seed=1, rule=rule.as_dict())
    reader = GenreReader.load(music2vec_file(tmp_path / "clean.pt", classes), adapted_path)
    assert product_rule(adapted_path) == rule and reader.rule == rule
    rate, rng = 22050, np.random.default_rng(0)
    music = _write(tmp_path / "raw/m.wav", (0.1 * rng.standard_normal(rate)).astype(np.float32), rate)
    rain = _write(tmp_path / "raw/n.wav", (0.1 * rng.standard_normal(rate // 2)).astype(np.float32), rate)
    row = dict(music_clip="m", label="rock", music_path=music, music_offset=0, noise_clips=["n"], noise_paths=[rain],
               noise_offsets=[100], noise_gains=[0.5], snr_db=6.0, num_samples=rate, sample_rate=rate)  # fmt: skip
    mixtures = pd.DataFrame([row | {"mixture_id": "test-00001", "split": "test"}, row | {"mixture_id": "train-00000", "split": "train"}])
    _write(tmp_path / "separated/test-00001.wav", (0.05 * rng.standard_normal(rate)).astype(np.float32), rate)
    separated = pd.DataFrame({"mixture_id": ["test-00001"], "music_path": ["separated/test-00001.wav"]})
    table, seconds = classify_mixtures(reader, mixtures, separated, root=tmp_path, progress=False)
    assert list(table["input"]) == list(SCORED) and set(table["mixture_id"]) == {"test-00001"}
    assert seconds["audio"] == pytest.approx(1.0, abs=1e-3) and seconds["classify"] > 0
    probas = table.set_index("input")[["p_rock", "p_jazz"]]
    np.testing.assert_allclose(probas.sum(axis=1), 1.0)
    np.testing.assert_allclose(probas.loc["product"], probas.loc["combined"])
    np.testing.assert_allclose(probas.loc["combined"], 0.3 * probas.loc["mixture"] + 0.7 * probas.loc["separated_adapted"])
    # Two different networks: the adapted classifier's answer on the separated music is its own.
    assert not np.allclose(probas.loc["separated"], probas.loc["separated_adapted"])
    with pytest.raises(ValueError, match="run `dvc repro separate`"):
        classify_mixtures(reader, mixtures, separated.iloc[:0], root=tmp_path, progress=False)

    # Kept for a rerun (or handed over by a Kubeflow shard): taken back as the same table, columns in order.
    kept = classified_results(tmp_path / "kept")
    first, _ = classify_mixtures(reader, mixtures, separated, root=tmp_path, progress=False, finished=kept, settings="a")
    again = classified_results(tmp_path / "kept")
    second, taken = classify_mixtures(reader, mixtures, separated, root=tmp_path, progress=False, finished=again, settings="a")
    assert again.reused == 1 and second.equals(first) and second.equals(table) and taken["audio"] == seconds["audio"]
    other = classified_results(tmp_path / "kept")
    classify_mixtures(reader, mixtures, separated, root=tmp_path, progress=False, finished=other, settings="b")
    assert other.reused == 0  # other classifiers' answers are never taken


def test_the_reader_refuses_classifiers_of_different_genres(tmp_path: Path) -> None:
    clean = Classifier.from_checkpoint(music2vec_file(tmp_path / "a.pt", ["rock", "jazz"]))
    other = Classifier.from_checkpoint(music2vec_file(tmp_path / "b.pt", ["rock", "folk"]))
    with pytest.raises(ValueError, match="different genres"):
        GenreReader(clean, other, ProductRule())
