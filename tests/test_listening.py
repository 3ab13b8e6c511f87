"""Tests for danet_music2vec.listening: which mixtures, and a page that plays and shows them (in a real browser too)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from danet_music2vec.errors import StaleDataError
from danet_music2vec.evidence import SCORED
from danet_music2vec.listening import (
    SOUNDS,
    choose_mixtures,
    genre_table,
    listening_page,
    playable,
)
from tests.conftest import tone, write_audio

RATE = 8000
GENRES = ("folk", "rock")
NOISES = {"1-100-A-1": "dog", "1-200-A-2": "rain", "1-300-A-3": "siren"}


def test_choose_mixtures_takes_best_median_worst_then_one_per_category_not_yet_heard():
    nsdr = {"m0": 9.0, "m1": 7.0, "m2": 5.0, "m3": 3.0, "m4": 1.0, "m5": -1.0, "m6": 4.0, "m7": 20.0}
    scores = pd.DataFrame({"mixture_id": list(nsdr), "nsdr_music": list(nsdr.values()), "silent": [False] * 7 + [True]})
    categories = {"m0": ["dog"], "m1": ["rain"], "m2": ["rain"], "m3": ["dog"], "m4": ["siren", "rain"], "m5": ["dog"],
                  "m6": ["wind"], "m7": ["zebra"]}  # fmt: skip
    chosen = choose_mixtures(scores, categories, limit=6)
    # silent m7 is left out; ranks: m0 9, m1 7, m2 5, m6 4, m3 3, m4 1, m5 -1 -> median m6
    assert chosen[:3] == [("m0", "best NSDR"), ("m6", "median NSDR"), ("m5", "worst NSDR")]
    # dog and wind are heard; rain (alphabetical first): m1, m2, m4 -> median m2; siren: m4 alone
    assert chosen[3:] == [("m2", "noise category rain: its median NSDR"), ("m4", "noise category siren: its median NSDR")]
    assert [m for m, _ in choose_mixtures(scores, categories, limit=4)] == ["m0", "m6", "m5", "m2"]
    with pytest.raises(StaleDataError, match="data/separation_scores.parquet"):
        choose_mixtures(scores.assign(silent=True), categories, limit=3)


def test_playable_scales_all_sounds_by_one_gain_so_none_clips():
    loud, quiet = np.array([0.5, -2.0], dtype=np.float32), np.array([0.1, 0.2], dtype=np.float32)
    out = playable({"a": (loud, 8000), "b": (quiet, 4000)})
    assert np.max(np.abs(out["a"][0])) == pytest.approx(0.99) and out["b"][1] == 4000
    assert out["b"][0] / out["a"][0][0] == pytest.approx(quiet / loud[0])  # the ratio between sounds is kept
    assert np.array_equal(playable({"a": (quiet, 8000)})["a"][0], quiet)  # nothing loud: left as it is


def pipeline_outputs(root: Path, mixtures_per_clip: int = 3) -> dict[str, object]:
    """What the stages before ``listen`` write, for 2 clips x ``mixtures_per_clip`` mixtures of 2 s at 8 kHz."""
    for i, stem in enumerate(NOISES):
        write_audio(root / "raw" / f"{stem}.wav", 0.05 * np.random.default_rng(i).standard_normal(3 * RATE).astype(np.float32), RATE)
    mixtures, separated, scores, predictions = [], [], [], []
    for c, genre in enumerate(GENRES):
        music = write_audio(root / "raw" / f"{genre}.wav", tone(4.0, RATE, 300 + 200 * c), RATE)
        for k in range(mixtures_per_clip):
            mixture_id = f"test-{c}{k}"
            stem = list(NOISES)[(c + k) % len(NOISES)]
            mixtures.append({"mixture_id": mixture_id, "split": "test", "music_clip": f"music/{genre}", "label": genre,
                             "music_path": str(music), "music_offset": 1000 * k, "noise_clips": [f"noise/{stem}"],
                             "noise_paths": [str(root / "raw" / f"{stem}.wav")], "noise_offsets": [0], "noise_gains": [1.0],
                             "snr_db": 0.0, "num_samples": 2 * RATE, "sample_rate": RATE})  # fmt: skip
            out = root / "separated" / mixture_id
            paths = {name: write_audio(out / f"{name}.flac", tone(2.0 - 0.25 * k, RATE, 100 * (k + 1)), RATE) for name in ("music", "noise")}
            separated.append({"mixture_id": mixture_id, "music_path": str(paths["music"]), "noise_path": str(paths["noise"]),
                              "sample_rate": RATE, "seconds": 2.0})  # fmt: skip
            for system in ("separator", "oracle_irm", "spectral_gate"):
                scores.append({"mixture_id": mixture_id, "system": system, "nsdr_music": 3.0 * c + k, "sir_music": 10.0,
                               "sar_music": 5.0, "silent": False})  # fmt: skip
            for path in SCORED:
                p = 0.8 if path != "mixture" else 0.3
                predictions.append({"mixture_id": mixture_id, "input": path, "true_label": genre,
                                    "predicted_label": genre if p > 0.5 else GENRES[1 - c],
                                    f"p_{genre}": p, f"p_{GENRES[1 - c]}": 1 - p})  # fmt: skip
    return {"mixtures": pd.DataFrame(mixtures), "separated": pd.DataFrame(separated), "scores": pd.DataFrame(scores),
            "predictions": pd.DataFrame(predictions), "noise_labels": NOISES}  # fmt: skip


def page(root: Path, **overrides: object) -> tuple[str, list]:
    outputs = pipeline_outputs(root) | overrides
    return listening_page(**outputs, limit=4, compression=0.7, title="a run")


def audio_sources(html_text: str) -> list[tuple[str, float, bytes]]:
    """(sound name, data-seconds, decoded bytes) of every <audio> of a page."""
    found = re.findall(r'<audio [^>]*data-sound="([^"]+)" data-seconds="([0-9.]+)" src="data:audio/ogg;base64,([^"]+)"', html_text)
    return [(name, float(seconds), base64.b64decode(data)) for name, seconds, data in found]


def test_genre_table_gives_each_paths_genre_with_its_probability(tmp_path):
    predictions = pipeline_outputs(tmp_path, 1)["predictions"]
    table = genre_table(predictions, "test-10")
    assert list(table["input"]) == list(SCORED)
    assert table.set_index("input").loc["mixture"].tolist() == ["folk", pytest.approx(0.7)]
    assert table.set_index("input").loc["product"].tolist() == ["rock", pytest.approx(0.8)]
    with pytest.raises(StaleDataError, match=r"data/predictions.parquet: no row for test-99.*dvc repro classify"):
        genre_table(predictions, "test-99")


def test_the_page_plays_the_four_sounds_of_each_chosen_mixture_with_scores_genres_and_spectrograms(tmp_path):
    text, shown = page(tmp_path)
    assert [m.mixture_id for m in shown] == ["test-12", "test-02", "test-00", "test-01"]  # NSDR 5, 2 (median), 0; rain
    assert shown[3].why == "noise category rain: its median NSDR"  # dog and siren were heard
    sources = audio_sources(text)
    assert [name for name, _, _ in sources] == list(SOUNDS) * 4
    for (name, seconds, data), mixture in zip(sources, [m for m in shown for _ in SOUNDS]):
        info = sf.info(io.BytesIO(data))
        assert (info.format, info.subtype, info.samplerate) == ("OGG", "VORBIS", RATE)
        assert info.frames / info.samplerate == pytest.approx(seconds, abs=0.01)
        wave, rate = mixture.sounds[name]
        assert seconds == pytest.approx(len(wave) / rate)
    assert [s for _, s, _ in sources[4:8]] == [2.0, 1.5, 1.5, 2.0]  # test-02: its separated files are 1.5 s
    assert text.count('src="data:image/jpeg;base64,') == 4
    assert "SIR (dB)" in text and "oracle IRM (ceiling)" in text and "spectral gate (floor)" in text
    assert "the best, the median and the worst NSDR" in text and "up to 4 mixtures" in text  # the rule is stated
    assert len(text) < 4 * 200_000  # 4 mixtures x 4 two-second clips and a spectrogram


def test_stale_inputs_stop_the_page_naming_the_file_and_the_stage_to_rerun(tmp_path):
    outputs = pipeline_outputs(tmp_path)
    with pytest.raises(StaleDataError, match=r"data/separation_scores.parquet: .* run `dvc repro score`"):
        page(tmp_path, scores=outputs["scores"][outputs["scores"]["mixture_id"] != "test-00"])
    with pytest.raises(StaleDataError, match=r"data/separated/index.parquet: .* run `dvc repro separate`"):
        page(tmp_path, separated=outputs["separated"].iloc[1:])


def test_the_page_loads_offline_in_a_browser_with_every_clip_at_its_length(browser, tmp_path):
    text, shown = page(tmp_path)
    path = tmp_path / "listening.html"
    path.write_text(text)
    browser.open(path.as_uri())
    durations = browser.wait_for(
        "const a = [...document.querySelectorAll('audio')]; "
        "return a.length > 0 && a.every(x => x.readyState >= 1 && isFinite(x.duration)) && a.map(x => x.duration)",
        what="every <audio> reports its duration",
    )
    expected = [info.frames / info.samplerate for info in (sf.info(io.BytesIO(d)) for _, _, d in audio_sources(text))]
    assert len(durations) == len(expected) == 4 * len(SOUNDS)
    assert np.allclose(durations, expected, atol=0.1), (durations, expected)
    images = browser.driver.execute_script("return [...document.images].map(i => i.complete && i.naturalWidth > 0)")
    assert images == [True] * len(shown)
    browser.screenshot(tmp_path / "listening.png")
    assert browser.stray_requests() == [] and browser.failed_requests() == []
