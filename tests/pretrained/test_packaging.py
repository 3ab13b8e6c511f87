"""The shipped separator's packaging and the recipe's params."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from danet_music2vec import checkpoints
from danet_music2vec.pretrained import RECIPE
from danet_music2vec.pretrained.packaging import package
from danet_music2vec.pretrained.training import set_params
from danet_music2vec.separation import Separator
from tests.conftest import REPO
from tests.factories import separator_network_state, tiny_separator_network, tiny_separator_params

CLIPS = [{"clip_id": "separation/extra-noise/audio/1-100032-A-0", "kind": "noise", "label": "dog", "sha256": "ab" * 32,
          "role": "train"},
         {"clip_id": "music/rock/song_1", "kind": "music", "label": "rock", "sha256": "cd" * 32, "role": "validation"}]  # fmt: skip


@pytest.fixture
def work(tmp_path):
    """A training work folder as `scripts/train_pretrained.py train` leaves it (a tiny network instead of the long run)."""
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    (work / "metrics").mkdir()
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    set_params(work / "params.yaml", RECIPE)
    cfg = tiny_separator_params()
    state = separator_network_state(tiny_separator_network(cfg), cfg) | {"training_clips": CLIPS}
    checkpoints.save(work / "models" / "separator_network.pt", "separator", state)
    (work / "metrics" / "train_separator.json").write_text(json.dumps(
        {"epochs": 3, "seconds": 42.0, "device": "cpu", "best_epoch": 2, "best_val_si_sdr": 7.5}))  # fmt: skip
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"], cwd=work,
                   check=True)  # fmt: skip
    return work


def test_the_recipe_is_written_into_the_params(work):
    params = yaml.safe_load((work / "params.yaml").read_text())
    assert params["separator"]["architecture"] == RECIPE["separator.architecture"]
    assert params["data"]["separation_noise_dirs"] == ["data/extra-noise"]
    # `train` must train: params.yaml's default start copies the shipped separator instead.
    assert params["separator"]["start"] == "scratch"
    with pytest.raises(KeyError, match="no key 'separator.hiden'"):
        set_params(work / "params.yaml", {"separator.hiden": 3})


def test_the_packaged_separator_separates_as_the_trained_one_in_half_the_bytes(work, tmp_path):
    out, manifest = tmp_path / "separator.pt", tmp_path / "manifest.csv"
    card = package(work, out, manifest_csv=manifest)
    full = package(work, tmp_path / "fp32.pt", half=False)
    assert card["steps"] == 3 * RECIPE["separator.steps_per_epoch"] and card["train_seconds"] == 42.0
    assert card["clips"] == {"train.noise": 1, "validation.music": 1} and len(card["commit"]) == 40
    state = checkpoints.load(out, "separator")
    assert all(v.dtype == torch.float16 for v in state["model_state"].values() if v.is_floating_point())
    assert state["inference"]["overlap"] == yaml.safe_load((work / "params.yaml").read_text())["separate"]["overlap"]
    assert pd.read_csv(manifest).to_dict("records") == CLIPS
    wave = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    half_music = Separator.load(out, device="cpu").separate(wave, 16000).music
    full_music = Separator.load(tmp_path / "fp32.pt", device="cpu").separate(wave, 16000).music
    np.testing.assert_allclose(half_music, full_music, atol=1e-3)


def test_the_card_states_what_the_work_folder_trained_with(work, tmp_path):
    set_params(work / "params.yaml", {"separator.seed": 7, "separator.epochs": 3})  # a run that overrode the recipe
    recipe = package(work, tmp_path / "separator.pt")["recipe"]
    assert recipe.keys() == RECIPE.keys()
    assert recipe["separator.seed"] == 7 and recipe["separator.epochs"] == 3
    assert recipe["separator.architecture"] == RECIPE["separator.architecture"]
