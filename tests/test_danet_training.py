"""DANet training: it learns to separate (synthetic tones vs. noise), checkpoints, and resumes exactly."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from danet_music2vec.danet_training import (
    DanetTrainConfig,
    EpochStats,
    load_checkpoint,
    noise_gains,
    train_danet,
)
from danet_music2vec.dsp import StftConfig
from danet_music2vec.features import FeatureStore, write_features
from danet_music2vec.params import ParamError
from danet_music2vec.separation import Separator

torch.set_num_threads(1)
RATE = 8000
CFG = StftConfig(sample_rate=RATE, n_fft=128, hop=32, window="sqrt_hann", chunk_frames=32)


def synth(seed: int, seconds: float = 2.0) -> SimpleNamespace:
    """'Music': notes of 3-harmonic tones changing every 0.25 s; 'noise': gated white noise, 0 dB overall."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    music = np.zeros(n)
    note = RATE // 4
    for start in range(0, n, note):
        f0 = rng.uniform(150, 700)
        seg = slice(start, start + note)
        env = np.hanning(min(note, n - start))
        for h, amp in ((1, 1.0), (2, 0.5), (3, 0.25)):
            music[seg] += amp * env * np.sin(2 * np.pi * h * f0 * t[seg] + rng.uniform(0, 6.28))
    gate = np.repeat(rng.random(n // 400 + 1) < 0.7, 400)[:n]
    noise = rng.standard_normal(n) * gate
    noise *= np.sqrt(np.mean(music**2) / np.mean(noise**2))
    music, noise = (0.2 * music).astype(np.float32), (0.2 * noise).astype(np.float32)
    return SimpleNamespace(music=music, noise=noise, mixture=music + noise)


def make_store(root: Path, n_mixtures: int = 8, seed: int = 0) -> FeatureStore:
    rows = pd.DataFrame(
        {"mixture_id": [f"train-{i}" for i in range(n_mixtures)], "sample_rate": RATE, "num_samples": 2 * RATE,
         "seed": [seed * 1000 + i for i in range(n_mixtures)]}
    )
    write_features(rows, CFG, root, shard_chunks=40, render=lambda row: synth(row.seed), progress=False)
    return FeatureStore(root)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def small(**kwargs) -> DanetTrainConfig:
    base = dict(hidden=24, layers=1, embedding_dim=8, epochs=2, kmeans_epochs=0, batch_size=8, lr=5e-3,
                chunks_per_epoch=16, seed=3, device="cpu", progress=False)
    return DanetTrainConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return make_store(tmp_path_factory.mktemp("features"))


@pytest.mark.parametrize("attractor", ["ideal", "anchored"])
def test_short_training_separates_tones_from_noise(store: FeatureStore, tmp_path: Path, attractor: str) -> None:
    kmeans_epochs = 2 if attractor == "ideal" else 0
    cfg = small(hidden=32, epochs=8, kmeans_epochs=kmeans_epochs, chunks_per_epoch=None, batch_size=8,
                train_snr_db=(-5.0, 5.0), attractor=attractor)
    seen: list[EpochStats] = []
    result = train_danet(store, cfg, tmp_path / "danet.pt", on_epoch=seen.append)
    phases = ["ideal", "kmeans", "kmeans"] if attractor == "ideal" else ["anchored"] * 3
    assert [s.epoch for s in seen] == list(range(1, 9)) and [s.attractors for s in seen][-3:] == phases
    assert result.losses[-1] < 0.7 * result.losses[0]
    assert result.train_attractors.shape == (2, 8) and result.chunks_per_s > 0

    test = synth(seed=999)
    gains = []
    for policy in ("kmeans", "fixed") if attractor == "ideal" else ("anchored",):
        sep = Separator.from_checkpoint(tmp_path / "danet.pt", attractor=policy, device="cpu")
        music, noise = sep.separate(test.mixture, RATE)
        gain = sdr(test.music, music) - sdr(test.music, test.mixture)
        gains.append(gain)
        assert sdr(test.noise, noise) > sdr(test.noise, test.mixture) + 2.0
    # The mixture is ~0 dB SDR; the separated music is clearly better with either attractor policy.
    assert min(gains) > 4.0, gains


def test_killed_run_resumes_at_next_epoch_with_identical_result(store: FeatureStore, tmp_path: Path) -> None:
    cfg = small(layers=2, dropout=0.3, epochs=3, kmeans_epochs=1)  # dropout: the RNG state must be restored too
    straight = train_danet(store, cfg, tmp_path / "a.pt")

    class Killed(Exception):
        pass

    def kill_after_first(stats: EpochStats) -> None:
        if stats.epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train_danet(store, cfg, tmp_path / "b.pt", on_epoch=kill_after_first)
    assert load_checkpoint(tmp_path / "b.pt")["epoch"] == 1
    resumed = train_danet(store, cfg, tmp_path / "b.pt")
    assert resumed.start_epoch == 2 and resumed.resumed and [s.epoch for s in resumed.new_epochs] == [2, 3]
    assert [s.epoch for s in resumed.history] == [1, 2, 3] and resumed.history[0].loss == straight.history[0].loss
    assert resumed.losses == straight.losses
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(resumed.train_attractors, straight.train_attractors, rtol=0, atol=0)
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    for group_a, group_b in zip(a["optimizer_state"]["state"].values(), b["optimizer_state"]["state"].values()):
        torch.testing.assert_close(group_a["exp_avg_sq"], group_b["exp_avg_sq"], rtol=0, atol=0)
    assert b["complete"] and b["epoch"] == 3


def test_more_epochs_continue_a_finished_run(store: FeatureStore, tmp_path: Path) -> None:
    first = train_danet(store, small(epochs=1), tmp_path / "c.pt")
    again = train_danet(store, small(epochs=1), tmp_path / "c.pt")
    assert again.start_epoch == 2 and again.new_epochs == [] and again.losses == first.losses  # nothing left to do
    assert again.chunks == 0 and again.chunks_per_s == first.chunks_per_s  # throughput of the run that trained
    more = train_danet(store, small(epochs=2), tmp_path / "c.pt")
    assert more.start_epoch == 2 and len(more.losses) == 2 and more.losses[0] == first.losses[0]


def test_changed_params_or_data_start_from_scratch(store: FeatureStore, tmp_path: Path) -> None:
    train_danet(store, small(epochs=1), tmp_path / "d.pt")
    assert train_danet(store, small(epochs=1, lr=1e-3), tmp_path / "d.pt").start_epoch == 1
    other = make_store(tmp_path / "other", n_mixtures=2, seed=5)
    assert train_danet(other, small(epochs=1, lr=1e-3), tmp_path / "d.pt").start_epoch == 1
    assert train_danet(store, small(epochs=1, lr=1e-3), tmp_path / "d.pt").start_epoch == 1


def test_checkpoint_round_trip(store: FeatureStore, tmp_path: Path) -> None:
    result = train_danet(store, small(epochs=1), tmp_path / "e.pt")
    state = load_checkpoint(tmp_path / "e.pt")
    assert state["sources"] == ["music", "noise"] and state["stft"]["chunk_frames"] == 32
    assert state["params"]["lr"] == 5e-3 and state["losses"] == result.losses
    sep = Separator.from_checkpoint(tmp_path / "e.pt", device="cpu")
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(sep.model.state_dict()[name], value)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_unfinished_checkpoint_is_refused_by_the_separator(store: FeatureStore, tmp_path: Path) -> None:
    def stop(stats: EpochStats) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_danet(store, small(epochs=2), tmp_path / "f.pt", on_epoch=stop)
    with pytest.raises(ValueError, match="epoch 1 of 2"):
        Separator.from_checkpoint(tmp_path / "f.pt")


def test_anchored_separation_needs_an_anchored_model(store: FeatureStore, tmp_path: Path) -> None:
    train_danet(store, small(epochs=1), tmp_path / "g.pt")
    with pytest.raises(ValueError, match="danet.attractor=anchored"):
        Separator.from_checkpoint(tmp_path / "g.pt", attractor="anchored")


def test_noise_gains_set_the_chunk_snr() -> None:
    g = torch.Generator().manual_seed(0)
    music = torch.randn(64, 10, 5, dtype=torch.complex64, generator=g)
    noise = torch.randn(64, 10, 5, dtype=torch.complex64, generator=g) * 3
    noise[0] = 0  # silent noise: left alone
    gains = noise_gains(music, noise, (-5.0, 5.0), torch.Generator().manual_seed(1))
    snr = 10 * torch.log10(music.abs().square().sum((1, 2)) / (gains.squeeze() ** 2 * noise.abs().square().sum((1, 2))))
    assert gains[0].item() == 1.0
    assert snr[1:].min() >= -5.0 - 1e-3 and snr[1:].max() <= 5.0 + 1e-3 and snr[1:].std() > 1.0


def test_config_from_params_validates() -> None:
    cfg = DanetTrainConfig.from_params({"hidden": 64, "train_snr_db": [-3, 3], "lr": "1e-3", "chunks_per_epoch": None})
    assert cfg.hidden == 64 and cfg.train_snr_db == (-3.0, 3.0) and cfg.lr == 1e-3
    assert DanetTrainConfig.from_params({"train_snr_db": None}).train_snr_db is None
    for bad, key in [({"hiden": 3}, "danet.hiden"), ({"loss": "l1"}, "danet.loss"), ({"mask": "soft"}, "danet.mask"),
                     ({"epochs": 2, "kmeans_epochs": 3}, "danet.kmeans_epochs"), ({"train_snr_db": [5, -5]}, "danet.train_snr_db"),
                     ({"device": "tpu"}, "danet.device"), ({"layers": 0}, "danet.layers"),
                     ({"attractor": "oracle"}, "danet.attractor"), ({"attractor": "anchored", "kmeans_epochs": 1}, "kmeans_epochs")]:
        with pytest.raises(ParamError, match=key):
            DanetTrainConfig.from_params(bad)
