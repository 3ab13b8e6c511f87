"""One checkpoint module for both models: save -> export -> load -> the same network; a file that would run code is refused."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from danet_music2vec import checkpoints
from danet_music2vec.errors import CheckpointError
from danet_music2vec.music2vec_training import train as train_music2vec
from danet_music2vec.separator_training import train_separator
from tests.separator_training.test_loop import make_store, small
from tests.test_music2vec_training import toy_clips, toy_config

torch.set_num_threads(1)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("architecture", ["mask", "chimera", "danet", "tcn"])
def test_a_separator_round_trips(tmp_path: Path, architecture: str) -> None:
    store = make_store(tmp_path / "features")
    result = train_separator(store, small(architecture=architecture, epochs=2), tmp_path / "ck.pt", progress=False)
    exported = checkpoints.export(tmp_path / "ck.pt", tmp_path / "model.pt", "separator")
    loaded = checkpoints.load(tmp_path / "model.pt", "separator")
    assert loaded["kind"] == "separator" and loaded["format"] == checkpoints.FORMAT and loaded["epoch"] == 2
    assert not set(checkpoints.TRAINING_ONLY) & set(loaded) and loaded["best_epoch"] == exported["best_epoch"]
    network = checkpoints.network(loaded)
    assert type(network) is type(result.model) and network.config == result.model.config
    mag = torch.rand(2, 32, store.config.n_freq, generator=torch.Generator().manual_seed(0)) + 0.01
    _same_outputs(network, result.model, mag)  # the result's model holds the best epoch's weights, as the export


def test_a_music2vec_model_round_trips(tmp_path: Path) -> None:
    result = train_music2vec(toy_config(epochs=2), toy_clips(2, seed=4), tmp_path / "ck.pt", progress=False)
    checkpoints.export(tmp_path / "ck.pt", tmp_path / "model.pt", "music2vec")
    loaded = checkpoints.load(tmp_path / "model.pt", "music2vec")
    assert loaded["epoch"] == 2 and loaded["complete"] and loaded["classes"] == ["low", "high"]
    assert "optimizer_state" not in loaded and "match" not in loaded
    x = torch.from_numpy(toy_clips(1, seed=5).waves[0][:4000][None])
    _same_outputs(checkpoints.network(loaded), result.model, x)
    with pytest.raises(CheckpointError, match=r"model.pt: not a separator checkpoint .*found music2vec"):
        checkpoints.load(tmp_path / "model.pt", "separator")  # one kind is not read as the other


class _RunsCode:
    """Unpickling this runs a shell command that writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_a_file_whose_pickle_would_run_code_is_refused_without_running_it(tmp_path: Path, writer: str) -> None:
    marker, path = tmp_path / "ran", tmp_path / "evil.pt"
    payload = {"kind": "separator", "format": checkpoints.FORMAT, "model_state": _RunsCode(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError) as err:
        checkpoints.load(path, "separator")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: not a separator checkpoint (not a file of plain data")
    assert "dvc repro train_separator" in message  # the fix
    assert not marker.exists()  # the code did not run
    with pytest.raises(CheckpointError):
        checkpoints.export(path, tmp_path / "model.pt", "separator")
    assert not marker.exists() and not (tmp_path / "model.pt").exists()
    # The same payload loaded without the safe unpickler would have run it: the test is not vacuous.
    pickle.loads(pickle.dumps(_RunsCode(marker)))
    assert marker.exists()


def test_missing_and_unfinished_files_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"absent.pt: not found; run `dvc repro train_music2vec`"):
        checkpoints.load(tmp_path / "absent.pt", "music2vec")
    checkpoints.save(tmp_path / "half.pt", "music2vec", {"epoch": 1, "complete": False})
    with pytest.raises(CheckpointError, match=r"half.pt: training is not finished \(epoch 1\)"):
        checkpoints.export(tmp_path / "half.pt", tmp_path / "model.pt", "music2vec")
    with pytest.raises(ValueError, match="kind='danet'"):
        checkpoints.save(tmp_path / "x.pt", "danet", {})
