"""Shared fixtures: small real-format audio files written into tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

# Two cores on CI: one torch thread per test process keeps runs predictable.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def repo_params():
    """The repository's params.yaml, validated: the one source of defaults for tests too."""
    from danet_music2vec.params import load_params

    return load_params(REPO / "params.yaml")


def _merged(model, overrides: dict):
    """``model`` (a params group) with ``overrides`` (nested dicts merge into sub-groups), validated again."""
    data = model.model_dump()
    for key, value in overrides.items():
        data[key] = data[key] | value if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return type(model).model_validate(data)


def separator_params(**overrides):
    """``separator`` params of params.yaml with ``overrides``, e.g. ``architecture="danet", danet={"kmeans_epochs": 1}``."""
    return _merged(repo_params().separator, overrides)


def separate_params(**overrides):
    """``separate`` params of params.yaml with ``overrides``, e.g. ``overlap=0.5, danet={"attractor": "fixed"}``."""
    return _merged(repo_params().separate, overrides)


def music2vec_params(**overrides):
    """``music2vec`` params of params.yaml with ``overrides``."""
    return _merged(repo_params().music2vec, overrides)


def parsed_params(**groups):
    """params.yaml with top-level values replaced (nested dicts merge), through the whole-file check that names keys.

    e.g. ``parsed_params(separator={"danet": {"attractor": "oracle"}})`` raises the ParamError a stage would.
    """
    import yaml

    from danet_music2vec.params import parse_params

    def merge(old, new):
        if isinstance(old, dict) and isinstance(new, dict):
            return old | {k: merge(old.get(k), v) for k, v in new.items()}
        return new

    return parse_params(merge(yaml.safe_load((REPO / "params.yaml").read_text()), groups))


def tone(seconds: float, sample_rate: int, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate)
    return path


@pytest.fixture
def make_library(tmp_path: Path):
    """Build a small local-profile library: genre folders of music + noise files with an ESC-50 CSV."""

    def build(genres=("rock", "folk"), clips_per_genre=4, noises=6, music_seconds=6.0, rate=22050) -> tuple[Path, Path]:
        rng = np.random.default_rng(0)
        music_dir, noise_dir = tmp_path / "music", tmp_path / "noise"
        for g, genre in enumerate(genres):
            for i in range(clips_per_genre):
                write_audio(music_dir / genre / f"{genre}.{i:05d}.wav", tone(music_seconds, rate, 200 + 100 * g + 10 * i), rate)
        rows = []
        for i in range(noises):
            name = f"{1 + i % 5}-{1000 + i}-A-{i % 3}.wav"
            write_audio(noise_dir / name, (0.1 * rng.standard_normal(2 * 44100)).astype(np.float32), 44100)
            rows.append(f"{name},{1 + i % 5},{i % 3},cat{i % 3},False,{1000 + i},A")
        (noise_dir / "meta.csv").write_text("filename,fold,target,category,esc10,src_file,take\n" + "\n".join(rows) + "\n")
        return music_dir, noise_dir

    return build


@pytest.fixture(scope="session")
def team_stack(tmp_path_factory):
    """Real PostgreSQL + moto S3 + `mlflow server` on 127.0.0.1, started once for the session and stopped after it."""
    from danet_music2vec.servers import team_stack as start

    with start(tmp_path_factory.mktemp("team")) as stack:
        yield stack


@pytest.fixture
def on_team_stack(team_stack, monkeypatch):
    """This test's MLflow and S3 clients talk to the session's servers."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_stack.tracking_uri)
    for key, value in team_stack.s3.env().items():
        monkeypatch.setenv(key, value)
    return team_stack


@pytest.fixture
def browser():
    """Headless Chromium with the network off (tests/browser.py); the test skips, saying why, where it is missing."""
    from tests.browser import start

    yield from start()


def pytest_collection_modifyitems(items):
    """Mark what starts servers (``server``: the team stack) and what runs real pipelines, process groups or a
    real browser (``slow``). ``make test`` (the default run, under 10 minutes) skips ``slow``; ``make test-slow`` runs them on
    purpose, and CI runs both."""
    for item in items:
        if "team_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)
        if item.path.name in SLOW_MODULES or "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


# Test modules that run the real pipeline under DVC, torchrun process groups or the tracking stack's stages
# (and every test that uses the fixture ``browser``).
SLOW_MODULES = {"test_pipeline.py", "test_distributed.py", "test_kfp_pipeline.py"}


@pytest.fixture(autouse=True)
def no_leaked_tracking_uris():
    """Undo what ``mlflow.set_tracking_uri``/``set_registry_uri`` export into ``os.environ`` during a test.

    Otherwise the next test's subprocesses (the stages under `dvc repro`) log to the previous test's store.
    """
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
