"""The packaged audio-in model (same audio as `dm2v denoise`, same label as `dm2v classify --denoise`) and `dm2v promote`."""

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from danet_music2vec import cli, tracking
from danet_music2vec.service import Limits
from danet_music2vec.tracking.packaging import MODEL_URI_TAG, log_audio_model
from danet_music2vec.tracking.registry import ALIAS, promote
from tests.conftest import REPO, separate_params
from tests.factories import music2vec_file, separator_file

torch.set_num_threads(1)
ROCK = sorted((REPO / "data" / "sample" / "music" / "rock").glob("*.ogg"))
NAME = "danet-music2vec"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("models")
    sep = separator_file(root / "separator.pt", settings=separate_params(device="cpu"))
    adapted = music2vec_file(root / "music2vec_adapted.pt", ["classical", "rock"], seed=1,
                             rule={"path": "combined", "weight": 0.5, "gate_db": 3.0})  # fmt: skip
    return sep, music2vec_file(root / "music2vec.pt", ["classical", "rock"]), adapted


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # mlflow.set_tracking_uri / set_registry_uri export both; a test before this one may have left them.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    return tmp_path


def package(models: tuple[Path, Path, Path], pipeline: str, f1: float, gnsdr: float, monkeypatch: pytest.MonkeyPatch) -> str:
    """One pipeline run's package stage: the served model with these scores; returns the run id."""
    monkeypatch.setenv("DVC_EXP_NAME", pipeline)
    with tracking.stage_run("package", {"noises": 1, "serve": {"max_seconds": 600.0}}, groups=("serve",)) as run:
        log_audio_model(run, *models, Limits(600.0), {"classification.product.f1": f1, "separation.gnsdr": gnsdr})
    return run.run_id


def test_the_loaded_model_gives_the_audio_of_dm2v_denoise_and_the_label_of_dm2v_classify(
    models: tuple[Path, Path, Path], store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    run_id = package(models, "exp-one", 0.7, 4.0, monkeypatch)
    client = mlflow.tracking.MlflowClient(tracking.tracking_uri(store))
    run = client.get_run(run_id)
    assert run.data.metrics["classification.product.f1"] == 0.7
    model = mlflow.pyfunc.load_model(run.data.tags[MODEL_URI_TAG])
    assert {c.name for c in model.metadata.get_input_schema().inputs} >= {"audio", "samples", "sample_rate", "format"}

    # A 22.05 kHz excerpt of a real file, as a user would send it (dm2v classify reads at the classifier's 22.05 kHz).
    wave, rate = sf.read(ROCK[0], dtype="float32", frames=22050 * 4)
    song = store / "song.wav"
    sf.write(song, wave, rate, subtype="FLOAT")
    audio = base64.b64encode(song.read_bytes()).decode()
    answers = model.predict(pd.DataFrame([{"audio": audio, "format": "wav"}, {"audio": audio, "format": "flac"}]))
    answer = answers.iloc[0]

    assert cli.main(["denoise", str(song), "-o", str(store / "clean.wav"), "--model", str(models[0])]) == 0
    assert cli.main(["classify", str(song), "--denoise", "--top", "1", "--model", str(models[1]), "--adapted", str(models[2]),
                     "--separator", str(models[0])]) == 0
    printed = capsys.readouterr().out
    label = printed.splitlines()[-1].split()[0]
    assert "path combined" in printed  # dm2v classify says which path answered
    served, served_rate = sf.read(io.BytesIO(base64.b64decode(answer["music"])), dtype="float32")
    denoised, denoised_rate = sf.read(store / "clean.wav", dtype="float32")
    assert served_rate == denoised_rate == rate
    np.testing.assert_array_equal(served, denoised)  # both 16-bit WAV: the very same samples
    # libsndfile scales float to 16-bit FLAC a hair differently from WAV: one step at most
    flac, _ = sf.read(io.BytesIO(base64.b64decode(answers.iloc[1]["music"])), dtype="float32")
    np.testing.assert_allclose(flac, denoised, rtol=0, atol=1.01 / 32768)
    assert answer["genre"] == label and answer["path"] == "combined"  # the served model and dm2v answer by one rule
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0)

    with pytest.raises(mlflow.exceptions.MlflowException, match="^sample rate 4000 Hz is not supported"):
        model.predict(pd.DataFrame([{"samples": [0.0] * 400, "sample_rate": 4000.0}]))


def test_model_files_behind_symlinks_are_packaged(
    models: tuple[Path, Path, Path], store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    # DVC's `symlink` cache type leaves every output as a link into .dvc/cache.
    cache, linked = tmp_path / "cache", tmp_path / "models"
    cache.mkdir(), linked.mkdir()
    links = []
    for model in models:
        (cache / model.name).write_bytes(model.read_bytes())
        (linked / model.name).symlink_to(cache / model.name)
        links.append(linked / model.name)
    run_id = package(tuple(links), "exp-linked", 0.7, 4.0, monkeypatch)  # type: ignore[arg-type]
    client = mlflow.tracking.MlflowClient(tracking.tracking_uri(store))
    model = mlflow.pyfunc.load_model(client.get_run(run_id).data.tags[MODEL_URI_TAG])
    assert model.predict(pd.DataFrame([{"samples": [0.01] * 22050, "sample_rate": 22050.0}])).iloc[0]["path"] == "combined"


def test_promote_registers_the_best_run_and_moves_the_alias_only_for_a_better_one(
    models: tuple[Path, Path, Path], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worse = package(models, "exp-worse", 0.60, 6.0, monkeypatch)
    better = package(models, "exp-better", 0.70, 1.0, monkeypatch)
    first = promote(NAME)
    assert first.moved and first.winner.run_id == better and first.previous is None and first.candidates == 2
    assert any("product F1 0.7000" in line and better in line for line in first.report())

    again = promote(NAME)  # idempotent: same version, alias stays
    assert not again.moved and again.version == first.version and "already the best run" in again.report()[-1]

    tie = package(models, "exp-tie-more-gnsdr", 0.70, 2.0, monkeypatch)  # same F1, higher GNSDR: the tie-break wins
    moved = promote(NAME)
    assert moved.moved and moved.winner.run_id == tie and moved.previous.run_id == better
    assert moved.version != first.version

    import mlflow

    client = mlflow.tracking.MlflowClient(tracking.tracking_uri(store))
    assert client.get_model_version_by_alias(NAME, ALIAS).run_id == tie
    versions = client.search_model_versions(f"name = '{NAME}'")
    assert sorted(v.run_id for v in versions) == sorted([better, tie]) and worse not in {v.run_id for v in versions}


def test_promote_on_the_team_stack(models: tuple[Path, Path], store: Path, on_team_stack, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """PostgreSQL + S3 behind an MLflow server: `dm2v promote --tracking-uri` registers, the alias resolves."""
    import mlflow

    name = "danet-music2vec-team"
    package(models, "team-a", 0.5, 2.0, monkeypatch)
    best = package(models, "team-b", 0.8, 2.0, monkeypatch)
    assert cli.main(["promote", "--name", name, "--tracking-uri", on_team_stack.tracking_uri]) == 0
    out = capsys.readouterr().out
    assert f"models:/{name}@{ALIAS} -> version" in out and best in out
    model = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}")  # the artifacts come back from S3 through the server
    assert model.metadata.run_id == best
