"""Classifier: crops, test-time averaging, resampling, checkpoint loading."""

from pathlib import Path

import numpy as np
import pytest
import torch

from danet_music2vec.classification import Classifier, crop_starts
from danet_music2vec.models.music2vec import Music2Vec
from danet_music2vec.errors import CheckpointError
from tests.factories import music2vec_file, tiny_music2vec_params

torch.set_num_threads(1)
RATE = 8000


def small_classifier(hop_seconds: float = 0.5, crop_seconds: float = 0.5, classes=("a", "b", "c")) -> Classifier:
    torch.manual_seed(0)
    model = Music2Vec(len(classes), channels=(8, 8, 8), lstm_hidden=8, dropout=0.5)
    return Classifier(model, list(classes), sample_rate=RATE, crop_seconds=crop_seconds, hop_seconds=hop_seconds)


def noise(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def test_crop_starts_cover_the_whole_track() -> None:
    assert crop_starts(100, 40, 20) == [0, 20, 40, 60]
    assert crop_starts(105, 40, 20) == [0, 20, 40, 60, 65]  # one more flush with the end
    assert crop_starts(30, 40, 20) == [0]


def test_probabilities_sum_to_one_and_two_crops_average() -> None:
    clf = small_classifier(hop_seconds=0.5)
    wave = noise(1.0, seed=1)  # exactly two crops of 0.5 s
    proba = clf.predict_proba(wave, RATE)
    assert proba.shape == (3,) and np.isclose(proba.sum(), 1.0) and (proba > 0).all()
    first = clf.predict_proba(wave[:4000], RATE)
    second = clf.predict_proba(wave[4000:], RATE)
    assert not np.allclose(first, second)  # the test means something only if the crops differ
    np.testing.assert_allclose(proba, (first + second) / 2, rtol=1e-5, atol=1e-7)


def test_model_is_in_eval_mode_so_predictions_are_deterministic() -> None:
    clf = small_classifier()
    wave = noise(2.0, seed=2)
    np.testing.assert_array_equal(clf.predict_proba(wave, RATE), clf.predict_proba(wave, RATE))


def test_other_rates_are_resampled_and_short_input_is_tiled() -> None:
    clf = small_classifier()
    t = np.arange(16000) / 16000
    at_16k = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    t8 = np.arange(8000) / 8000
    at_8k = (0.3 * np.sin(2 * np.pi * 440 * t8)).astype(np.float32)
    np.testing.assert_allclose(clf.predict_proba(at_16k, 16000), clf.predict_proba(at_8k, RATE), atol=2e-3)
    assert clf.crops(noise(0.2, seed=3), RATE).shape == (1, 4000)
    with pytest.raises(ValueError, match="mono"):
        clf.predict_proba(np.zeros((2, 8000), np.float32), RATE)


def test_batches_give_the_same_answer_as_one_pass() -> None:
    clf = small_classifier(hop_seconds=0.1)
    wave = noise(3.0, seed=4)
    whole = clf.predict_proba(wave, RATE)
    clf.batch_size = 3
    np.testing.assert_allclose(clf.predict_proba(wave, RATE), whole, rtol=1e-5)


def test_predict_top_orders_genres(tmp_path: Path) -> None:
    clf = small_classifier()
    wave = noise(1.0, seed=5)
    proba = clf.predict_proba(wave, RATE)
    top = clf.predict_top(wave, RATE, k=2)
    assert [g for g, _ in top] == [clf.classes[i] for i in np.argsort(-proba)[:2]]
    assert top[0][1] >= top[1][1] and np.isclose(top[0][1], proba.max())


def test_from_checkpoint_restores_model_classes_and_crop_geometry(tmp_path: Path) -> None:
    clf = small_classifier()
    cfg = tiny_music2vec_params(sample_rate=RATE, crop_seconds=0.5, test_hop_seconds=0.25, augment_lowpass_hz=(2000,))
    music2vec_file(tmp_path / "m.pt", clf.classes, cfg, model=clf.model)
    loaded = Classifier.from_checkpoint(tmp_path / "m.pt")
    assert loaded.classes == ["a", "b", "c"] and loaded.sample_rate == RATE
    assert loaded.crop == 4000 and loaded.hop == 2000
    assert Classifier.from_checkpoint(tmp_path / "m.pt", hop_seconds=0.5).hop == 4000
    clf.hop = loaded.hop
    wave = noise(1.7, seed=6)
    np.testing.assert_allclose(loaded.predict_proba(wave, RATE), clf.predict_proba(wave, RATE), rtol=1e-6)
    with pytest.raises(CheckpointError, match="nothing.pt: not found; run `dvc repro train_music2vec`"):
        Classifier.from_checkpoint(tmp_path / "nothing.pt")
