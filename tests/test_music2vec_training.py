"""music2vec training: params, learning a separable toy task, checkpoints and resume, augmentation, init weights."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from danet_music2vec import checkpoints
from danet_music2vec.classification import Classifier
from danet_music2vec.devices import bf16_is_native
from danet_music2vec.errors import CheckpointError, DeviceError
from danet_music2vec.models.music2vec import Music2Vec
from danet_music2vec.music2vec_training import ClipSet, augment, load_clip_set, load_init_weights, lowpass, train
from danet_music2vec.params import Music2VecParams, ParamError
from tests.conftest import music2vec_params, parsed_params

torch.set_num_threads(1)
RATE = 8000


def tone(freq: float, seconds: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def toy_clips(n_per_class: int, seed: int, seconds: float = 2.0) -> ClipSet:
    """Class 0: low tones (150-400 Hz); class 1: high tones (1500-3000 Hz)."""
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for label, (lo, hi) in enumerate([(150, 400), (1500, 3000)]):
        for _ in range(n_per_class):
            waves.append(tone(rng.uniform(lo, hi), seconds, rng))
            labels.append(label)
    return ClipSet(waves, np.array(labels), ["low", "high"], [f"c{i:02d}" for i in range(len(waves))])


def toy_config(**overrides) -> Music2VecParams:
    base = dict(
        sample_rate=RATE, crop_seconds=0.5, test_hop_seconds=0.25, channels=[8, 16, 16], lstm_hidden=16,
        dropout=0.0, epochs=6, batch_size=16, crops_per_clip=4, lr=3e-3, seed=3, device="cpu",
        augment_gain_db=[-3, 3], augment_lowpass_hz=[], augment_lowpass_prob=0.0, augment_noise_prob=0.0,
        augment_snr_db=[0, 20],
    )  # fmt: skip
    return music2vec_params(**base | overrides)


def test_params_round_trip_and_bad_values_name_the_key() -> None:
    cfg = music2vec_params()
    assert cfg == parsed_params().music2vec
    assert Music2VecParams.model_validate(cfg.model_dump()) == cfg
    assert cfg.crop_samples == int(cfg.crop_seconds * 22050)
    for bad, key in [({"channels": [16, 0]}, "music2vec.channels"), ({"epochs": 0}, "music2vec.epochs"),
                     ({"nonsense": 1}, "music2vec.nonsense"), ({"precision": "fp16"}, "music2vec.precision"),
                     ({"nproc": 0}, "music2vec.nproc"), ({"init_weights": "soundnet.pth"}, "init_weights and init_sha256 go together"),
                     ({"augment_lowpass_hz": [20000]}, "augment_lowpass_hz"), ({"device": "tpu"}, "music2vec.device")]:  # fmt: skip
        with pytest.raises(ParamError, match=key):
            parsed_params(music2vec=bad)


def test_learns_a_separable_toy_task(tmp_path: Path) -> None:
    # Many short clips (24 tone frequencies per class) so the net learns pitch, not the clips.
    cfg = toy_config(epochs=8, crops_per_clip=2)
    result = train(cfg, toy_clips(24, seed=0, seconds=1.0), tmp_path / "ckpt.pt", progress=False)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    classifier = Classifier(result.model, result.classes, RATE, cfg.crop_seconds, cfg.test_hop_seconds)
    held_out = toy_clips(10, seed=99, seconds=1.5)  # unseen frequencies
    predicted = [int(np.argmax(classifier.predict_proba(w, RATE))) for w in held_out.waves]
    accuracy = float(np.mean(np.array(predicted) == held_out.labels))
    assert accuracy >= 0.9, accuracy


def test_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    clips = toy_clips(3, seed=1)
    full = train(toy_config(epochs=2), clips, tmp_path / "full.pt", progress=False)
    first = train(toy_config(epochs=1), clips, tmp_path / "part.pt", progress=False)
    assert first.resumed_from_epoch == 0
    resumed = train(toy_config(epochs=2), clips, tmp_path / "part.pt", progress=False)
    assert resumed.resumed_from_epoch == 1
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    state = checkpoints.load(tmp_path / "part.pt", "music2vec")
    assert state["epoch"] == 2 and state["classes"] == ["low", "high"] and "optimizer_state" in state
    # Rerun with everything done: nothing is trained again.
    again = train(toy_config(epochs=2), clips, tmp_path / "part.pt", progress=False)
    assert again.resumed_from_epoch == 2 and len(again.history) == 2


def test_changed_params_or_data_start_afresh(tmp_path: Path) -> None:
    clips = toy_clips(3, seed=1)
    train(toy_config(epochs=1), clips, tmp_path / "ckpt.pt", progress=False)
    assert train(toy_config(epochs=2, lr=1e-3), clips, tmp_path / "ckpt.pt", progress=False).resumed_from_epoch == 0
    other = toy_clips(3, seed=2, seconds=2.5)
    assert train(toy_config(epochs=2, lr=1e-3), other, tmp_path / "ckpt.pt", progress=False).resumed_from_epoch == 0


def test_checkpoint_round_trip_rebuilds_the_same_network(tmp_path: Path) -> None:
    result = train(toy_config(epochs=1), toy_clips(2, seed=4), tmp_path / "ckpt.pt", progress=False)
    model = checkpoints.network(checkpoints.load(tmp_path / "ckpt.pt", "music2vec"))
    x = torch.from_numpy(toy_clips(1, seed=5).waves[0][: 4000][None])
    with torch.no_grad():
        assert torch.allclose(model(x), result.model.eval()(x))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a (readable )?music2vec checkpoint"):
        checkpoints.load(tmp_path / "junk.pt", "music2vec")


def test_lowpass_removes_energy_above_the_cutoff() -> None:
    rng = np.random.default_rng(0)
    rate = 22050
    batch = torch.from_numpy(np.stack([tone(300, 1.0, rng, rate) + tone(7000, 1.0, rng, rate)]))
    out = lowpass(batch, rate, 4000)
    spectrum = np.abs(np.fft.rfft(out[0].numpy()))
    freqs = np.fft.rfftfreq(rate, 1 / rate)
    assert out.shape == batch.shape
    assert spectrum[np.argmin(np.abs(freqs - 7000))] < 1e-3 * spectrum[np.argmin(np.abs(freqs - 300))]
    assert spectrum[np.argmin(np.abs(freqs - 300))] > 0.9 * np.abs(np.fft.rfft(batch[0].numpy()))[300]


def test_noise_augmentation_hits_the_requested_snr_and_gain_stays_in_range() -> None:
    rng = np.random.default_rng(0)
    music = torch.from_numpy(np.stack([tone(440, 1.0, rng)] * 4))
    noise = [rng.standard_normal(RATE // 2).astype(np.float32)]
    cfg = toy_config(augment_noise_prob=1.0, augment_snr_db=[10, 10], augment_gain_db=None)
    out = augment(music, cfg, np.random.default_rng(1), noise)
    added = out - music
    snr = 10 * torch.log10(music.pow(2).mean(1) / added.pow(2).mean(1))
    assert torch.allclose(snr, torch.full((4,), 10.0), atol=0.01)
    gained = augment(music, toy_config(augment_gain_db=[-6, 6]), np.random.default_rng(2))
    ratio_db = 20 * torch.log10(gained.abs().max(1).values / music.abs().max(1).values)
    assert (ratio_db.abs() <= 6.0 + 1e-4).all() and ratio_db.std() > 0.1
    assert torch.equal(augment(music, toy_config(augment_gain_db=None), rng), music)  # everything off: unchanged


def test_noise_augmentation_without_noise_clips_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="augment_noise_prob"):
        train(toy_config(augment_noise_prob=0.5), toy_clips(2, seed=0), tmp_path / "c.pt", progress=False)


def test_load_clip_set_takes_only_the_requested_kind_and_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i, (kind, label, split) in enumerate(
        [("music", "rock", "train"), ("music", "jazz", "train"), ("music", "rock", "test"), ("noise", "rain", "train")]
    ):
        path = f"raw/{i}.flac"
        (tmp_path / "raw").mkdir(exist_ok=True)
        sf.write(tmp_path / path, tone(300 + 100 * i, 1.0, rng, 22050), 22050)
        rows.append(dict(clip_id=f"{kind}-{i}", kind=kind, label=label, group=str(i), fold=-1, path=path,
                         duration_s=1.0, split=split))  # fmt: skip
    clips = load_clip_set(pd.DataFrame(rows), tmp_path, 8000)
    assert clips.clip_ids == ["music-0", "music-1"] and clips.classes == ["jazz", "rock"]
    assert list(clips.labels) == [1, 0] and all(len(w) == 8000 for w in clips.waves)
    with pytest.raises(ValueError, match="no noise clips in the test split"):
        load_clip_set(pd.DataFrame(rows), tmp_path, 8000, kind="noise", split="test")


def test_init_weights_are_checked_by_sha256_before_loading(tmp_path: Path) -> None:
    donor = Music2Vec(10, channels=(16, 32), lstm_hidden=8)
    torch.nn.init.constant_(donor.convs[0].conv.weight, 0.125)
    path = tmp_path / "soundnet.pth"
    torch.save(donor.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model = Music2Vec(4, channels=(16, 32, 64), lstm_hidden=8)
    with pytest.raises(ParamError, match=r"soundnet.pth has sha256 .* but music2vec.init_sha256 is 00"):
        load_init_weights(model, path, "00" * 32)
    assert not torch.all(model.convs[0].conv.weight == 0.125)  # nothing loaded from an unverified file
    with pytest.raises(ParamError, match="missing.pth not found"):
        load_init_weights(model, tmp_path / "missing.pth", digest)
    assert load_init_weights(model, path, digest.upper()) == [1, 2]
    assert torch.all(model.convs[0].conv.weight == 0.125)
    narrow = Music2Vec(4, channels=(8,), lstm_hidden=8)
    with pytest.raises(ParamError, match="no conv layer"):
        load_init_weights(narrow, path, digest)


def test_training_from_init_weights_starts_from_them(tmp_path: Path) -> None:
    donor = Music2Vec(2, channels=(8, 16, 16), lstm_hidden=4)
    path = tmp_path / "w.pth"
    torch.save({"state_dict": donor.state_dict()}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    cfg = toy_config(epochs=1, init_weights=str(path), init_sha256=digest)
    result = train(cfg, toy_clips(2, seed=0), tmp_path / "c.pt", progress=False)
    assert result.loaded_soundnet_layers == [1, 2, 3]
    with pytest.raises(ParamError, match="sha256"):
        train(toy_config(epochs=1, init_weights=str(path), init_sha256="ab" * 32), toy_clips(2, 0), tmp_path / "d.pt")


def test_bf16_precision_trains_alike(tmp_path: Path) -> None:
    if not bf16_is_native(torch.device("cpu")):  # this CPU cannot: a clear error, no training
        with pytest.raises(DeviceError, match="precision bf16 needs a CPU with bf16 units"):
            train(toy_config(epochs=1, precision="bf16"), toy_clips(4, seed=0), tmp_path / "bf16.pt", progress=False)
        return
    fp32 = train(toy_config(epochs=3), toy_clips(4, seed=0), tmp_path / "fp32.pt", progress=False)
    bf16 = train(toy_config(epochs=3, precision="bf16"), toy_clips(4, seed=0), tmp_path / "bf16.pt", progress=False)
    losses = [[h["loss"] for h in r.history] for r in (fp32, bf16)]
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=0.05, atol=0.0)
    assert losses[1][-1] < losses[1][0]


def test_fine_tuning_starts_from_the_given_weights_and_resumes_only_for_the_same_sources(tmp_path: Path) -> None:
    clips = toy_clips(3, seed=1)
    trained = train(toy_config(epochs=3), clips, tmp_path / "clean.pt", progress=False).model
    clean_loss = train(toy_config(epochs=1, lr=1e-9), clips, tmp_path / "a.pt", progress=False,
                       init_state=trained.state_dict()).history[0]["loss"]  # fmt: skip
    fresh_loss = train(toy_config(epochs=1, lr=1e-9), clips, tmp_path / "b.pt", progress=False).history[0]["loss"]
    assert clean_loss < fresh_loss  # started from the trained weights, not from a new network
    cfg = toy_config(epochs=1)
    train(cfg, clips, tmp_path / "tuned.pt", progress=False, init_state=trained.state_dict(), match_extra={"separator": "a"})
    same = train(toy_config(epochs=2), clips, tmp_path / "tuned.pt", progress=False, match_extra={"separator": "a"})
    assert same.resumed_from_epoch == 1
    other = train(toy_config(epochs=2), clips, tmp_path / "tuned.pt", progress=False, match_extra={"separator": "b"})
    assert other.resumed_from_epoch == 0  # the data came from another separator: start afresh
