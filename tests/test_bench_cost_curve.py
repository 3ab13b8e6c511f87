"""The cost curve's data and arithmetic (bench/scale_profile.py, bench/bench_cost_curve.py); the benchmark itself runs on purpose."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
from bench_cost_curve import fit_line, measured, project, torch_factor, worker_ratios  # noqa: E402
from scale_profile import REPO, build_scale_profile  # noqa: E402

from danet_music2vec.data.ingest import catalogue_sources  # noqa: E402
from danet_music2vec.data.splits import split_clips  # noqa: E402
from danet_music2vec.params import load_params  # noqa: E402

MUSIC, NOISE = 8, 12


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.wav"))}


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same small profile built twice."""
    root = tmp_path_factory.mktemp("scale")
    for name in ("a", "b"):
        build_scale_profile(root / name, MUSIC, NOISE, seed=3, genres=4)
    return root / "a", root / "b"


def _sample_test_set() -> pd.DataFrame:
    """The sample's test clips: data/splits.parquet when a `dvc repro` wrote it, else the split stage's computation."""
    path = REPO / "data" / "splits.parquet"
    if path.is_file():
        splits = pd.read_parquet(path)
    else:
        params = load_params(REPO / "params.yaml")
        data = params.data.model_copy(update={"profile": "sample", "sample_dir": str(REPO / "data" / "sample")})
        splits, _ = split_clips(catalogue_sources(data), params.split, "sample")
    return splits[splits["split"] == "test"]


def test_profile_has_the_requested_distinct_clips(profiles: tuple[Path, Path]) -> None:
    profile, _ = profiles
    music = sorted((profile / "music").rglob("*.wav"))
    noise = sorted((profile / "noise").glob("*.wav"))
    assert len(music) == MUSIC and len(noise) == NOISE
    assert {p.parent.name for p in music} == {"blues", "classical", "country", "disco"}
    meta = pd.read_csv(profile / "noise" / "meta.csv")
    assert sorted(meta["filename"]) == [p.name for p in noise] and meta["src_file"].is_unique
    assert len(set(_digest(profile).values())) == MUSIC + NOISE  # no two clips alike
    assert {sf.info(p).duration for p in music} == {30.0} and {sf.info(p).samplerate for p in noise} == {44100}
    segments = pd.read_csv(profile / "segments.csv")
    # every clip's segments come from different tracks / recordings
    assert (segments.groupby(["kind", "clip"])["source_group"].nunique() == segments.groupby(["kind", "clip"]).size()).all()


def test_profile_cuts_no_test_audio(profiles: tuple[Path, Path]) -> None:
    segments = pd.read_csv(profiles[0] / "segments.csv")
    test = _sample_test_set()
    test_paths = {Path(p).name for p in test["source_path"]}
    assert not {Path(p).name for p in segments["source_path"]} & test_paths
    # no other excerpt of a test track, no other take of a test recording (ESC-50 names: fold-src_file-take-target)
    test_tracks = {g.lstrip("/") for g in test.loc[test["kind"] == "music", "group"]}
    music = segments[segments["kind"] == "music"]
    assert not set(music["source_group"].str.split(":", n=1).str[1].str.lstrip("/")) & test_tracks
    recording = segments.loc[segments["kind"] == "noise", "source_path"].map(lambda p: Path(p).name.split("-")[1])
    test_recordings = {Path(p).name.split("-")[1] for p in test.loc[test["kind"] == "noise", "source_path"]}
    assert not set(recording) & test_recordings


def test_profile_is_deterministic(profiles: tuple[Path, Path]) -> None:
    a, b = profiles
    assert _digest(a) == _digest(b)
    pd.testing.assert_frame_equal(pd.read_csv(a / "segments.csv"), pd.read_csv(b / "segments.csv"))


def test_fit_line_and_slope() -> None:
    n = [10.0, 30.0, 100.0]
    linear = fit_line(n, [5 + 2 * x for x in n])
    assert linear["intercept"] == pytest.approx(5) and linear["per_item"] == pytest.approx(2)
    assert 0.8 < linear["loglog_slope"] < 1.0  # the intercept bends it below 1
    assert fit_line(n, [x**2 for x in n])["loglog_slope"] == pytest.approx(2)
    falling = fit_line(n, [12.0, 10.0, 8.0])  # timing noise around a constant
    assert falling["per_item"] == 0 and falling["intercept"] == pytest.approx(10)


def test_projection_on_the_measured_cores_and_the_16_core_model() -> None:
    line = {"intercept": 10.0, "per_item": 2.0, "loglog_slope": 1.0}
    memory = {"intercept": 500.0, "per_item": 1.0, "loglog_slope": 0.5}
    fits = {stage: {"size": "test_mixtures", "seconds": line, "tree_mib": memory, "single_mib": memory, "worker_mib": 100.0}
            for stage in ("score", "separate", "features", "mix")}  # fmt: skip
    measured = project(fits, {"test_mixtures": 100}, cores=2, measured_cores=2)
    assert {s: p["seconds"] for s, p in measured.items()} == {"score": 210, "separate": 210, "features": 210, "mix": 210}
    model = project(fits, {"test_mixtures": 100}, cores=16, measured_cores=2)
    assert model["score"]["seconds"] == pytest.approx(10 + 200 * 2 / 16)  # the workers share the per-mixture part
    assert model["score"]["tree_mib"] == pytest.approx(600 + 14 * 100)  # and each holds its memory
    assert model["separate"]["seconds"] == model["score"]["seconds"]  # separate works on mixtures in workers too
    assert model["features"]["seconds"] == pytest.approx(10 + 200 * torch_factor(16, 2))
    assert model["mix"]["seconds"] == measured["mix"]["seconds"]
    assert torch_factor(2, 2) == 1 and torch_factor(16, 2, parallel=1.0) == pytest.approx(2 / 16)
    assert np.isclose(torch_factor(16, 2, parallel=0.0), 1.0)


def test_worker_ratio_is_every_cores_time_over_one_workers() -> None:
    row = {"seconds": 10.0, "peak_tree_mib": 1.0, "peak_rss_mib": 1.0}
    runs = [
        {"profile": "test-10x", "sizes": {"test_mixtures": 450}, "stages": {
            "score": row | {"seconds": 55.0}, "score@1": row | {"seconds": 100.0},
            "sweep": row | {"seconds": 30.0}, "sweep@1": row | {"seconds": 60.0}}},
        {"profile": "train-1", "sizes": {"train_clips": 700}, "stages": {"adapt_music2vec": row | {"projected_seconds": 99.4}}},
    ]  # fmt: skip
    assert worker_ratios(runs) == {"test-10x": {"score": pytest.approx(0.55), "sweep": pytest.approx(0.5)}}
    table = measured(runs)
    assert "| test-10x | test_mixtures 450 | `score@1` | 100.0 |  | 1 | 1 |" in table
    assert "| train-1 | train_clips 700 | `adapt_music2vec` | 10.0 | 99 | 1 | 1 |" in table
