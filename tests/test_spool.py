"""Waves spooled to disk: read back bit for bit, cropped for training exactly as arrays are, removed at the end."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from danet_music2vec.music2vec_training import ClipSet
from danet_music2vec.music2vec_training.data import random_crops
from danet_music2vec.spool import WaveSpool


def waves(lengths=(1000, 37, 5000)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n).astype(np.float32) for n in lengths]


def test_spooled_waves_read_back_every_slice_bit_for_bit(tmp_path: Path) -> None:
    arrays = waves()
    with WaveSpool(tmp_path / "w.f32") as spool:
        spooled = [spool.add(a) for a in arrays]
        for a, s in zip(arrays, spooled):
            assert len(s) == len(a)
            np.testing.assert_array_equal(np.asarray(s), a)
            for index in (slice(0, 10), slice(5, 25), slice(len(a) - 7, len(a)), slice(-3, None), slice(20, 10)):
                np.testing.assert_array_equal(s[index], a[index])
        # A handle is plain data: a worker process can read it.
        np.testing.assert_array_equal(np.asarray(pickle.loads(pickle.dumps(spooled[1]))), arrays[1])
        assert np.asarray(spooled[0], dtype=np.float64).dtype == np.float64


def test_spool_refuses_what_it_cannot_read_back(tmp_path: Path) -> None:
    with WaveSpool(tmp_path / "w.f32") as spool:
        with pytest.raises(ValueError, match="mono"):
            spool.add(np.zeros((2, 10), np.float32))
        wave = spool.add(np.arange(10, dtype=np.float32))
        with pytest.raises(ValueError, match="contiguous"):
            wave[::2]
        with pytest.raises(TypeError, match="slices"):
            wave[3]


def test_spool_overwrites_an_interrupted_runs_file_and_removes_its_own(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "w.f32"
    path.parent.mkdir()
    path.write_bytes(b"left by a killed run" * 100)
    with WaveSpool(path) as spool:
        wave = spool.add(np.ones(4, np.float32))
        np.testing.assert_array_equal(np.asarray(wave), np.ones(4, np.float32))
        assert path.stat().st_size == 16
    assert not path.exists()


def test_training_crops_of_spooled_clips_equal_the_in_memory_ones(tmp_path: Path) -> None:
    arrays = waves()  # the 37-sample clip is shorter than a crop: tiled
    labels = np.array([0, 1, 0])
    picks = np.array([0, 1, 2, 2, 1, 0])
    in_memory = ClipSet(waves=arrays, labels=labels, classes=["a", "b"], clip_ids=["x", "y", "z"])
    with WaveSpool(tmp_path / "w.f32") as spool:
        on_disk = ClipSet(waves=[spool.add(a) for a in arrays], labels=labels, classes=["a", "b"], clip_ids=["x", "y", "z"])
        assert on_disk.fingerprint() == in_memory.fingerprint()
        crops, crop_labels = random_crops(on_disk, picks, 100, np.random.default_rng(3))
    expected, expected_labels = random_crops(in_memory, picks, 100, np.random.default_rng(3))
    assert torch.equal(crops, expected) and torch.equal(crop_labels, expected_labels)
