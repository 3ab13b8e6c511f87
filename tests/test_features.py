import pandas as pd
import pytest
import torch

from danet_music2vec.dsp import StftConfig, istft, stft
from danet_music2vec.features import FeatureStore, clip_stft, write_features
from tests.conftest import tone, write_audio


def test_stft_round_trip_is_exact():
    cfg = StftConfig()
    wave = torch.randn(2, 8000)
    assert torch.allclose(istft(stft(wave, cfg), cfg, 8000), wave, atol=1e-5)
    assert stft(wave, cfg).shape == (2, 8000 // 64 + 1, 129)


def clip_table(tmp_path, rate=22050):
    rows = []
    for i, (kind, seconds) in enumerate([("music", 2.0), ("music", 1.5), ("noise", 1.0), ("noise", 0.5)]):
        path = write_audio(tmp_path / f"{kind}{i}.wav", (0.1 + 0.2 * i) * tone(seconds, rate, 300 + 100 * i), rate)
        rows.append({"clip_id": f"{kind}/{i}", "kind": kind, "group": f"g{i // 2}", "path": str(path)})
    return pd.DataFrame(rows)


def test_features_round_trip_every_clip_whole(tmp_path):
    clips = clip_table(tmp_path)
    cfg = StftConfig(chunk_frames=20)
    stats = write_features(clips, cfg, tmp_path / "features", sample_rate=22050, progress=False)
    store = FeatureStore(tmp_path / "features")
    assert store.config == cfg and len(store) == 4
    assert stats["clips.music"] == 2 and stats["clips.noise"] == 2 and stats["seconds.music"] == pytest.approx(3.5, abs=0.02)
    assert list(store.clips("music")["start"]) == [0, store.clips("music")["frames"].iloc[0]]
    for row, clip in zip(store.index.itertuples(), clips.itertuples()):
        from danet_music2vec.audio import load_audio

        expected = clip_stft(load_audio(clip.path, 22050), 22050, cfg)
        got = store.frames(row.kind, row.start, row.frames)
        assert got.shape == expected.shape == (row.frames, cfg.n_freq)
        assert torch.allclose(got, expected, rtol=2e-3, atol=1e-3)  # float16 storage
        assert row.power == pytest.approx(float(expected.abs().square().mean()), rel=1e-5)


def test_features_need_the_clip_columns(tmp_path):
    with pytest.raises(ValueError, match="missing group"):
        write_features(clip_table(tmp_path).drop(columns="group"), StftConfig(), tmp_path / "f", 22050, progress=False)
    assert not (tmp_path / "f").exists()  # nothing half-written


def test_a_missing_store_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro features"):
        FeatureStore(tmp_path)
