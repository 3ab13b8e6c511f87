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
    _step,
    build_model,
    export_model,
    learning_rate,
    load_checkpoint,
    make_mixers,
    step_seeds,
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


def synth_clips(n_music: int = 6, n_noise: int = 6) -> pd.DataFrame:
    """Clip table of synthetic music (tones) and noise clips; paths name the seed (see :func:`synth_load`)."""
    rows = [{"clip_id": f"music/m{i}", "kind": "music", "group": f"track{i}", "path": f"music:{i}"} for i in range(n_music)]
    rows += [{"clip_id": f"noise/n{i}", "kind": "noise", "group": f"rec{i}", "path": f"noise:{i}"} for i in range(n_noise)]
    return pd.DataFrame(rows)


def synth_load(path: str) -> np.ndarray:
    kind, seed = path.split(":")
    return getattr(synth(int(seed)), kind)


def make_store(root: Path, n_music: int = 6, seed: int = 0) -> FeatureStore:
    clips = synth_clips(n_music)
    clips["path"] = [p.replace(":", f":{seed * 1000}") if seed else p for p in clips["path"]]
    write_features(clips, CFG, root, sample_rate=RATE, load=synth_load, progress=False)
    return FeatureStore(root)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def small(**kwargs) -> DanetTrainConfig:
    base = dict(hidden=24, layers=1, embedding_dim=8, epochs=2, kmeans_epochs=0, batch_size=8, lr=5e-3,
                steps_per_epoch=2, val_fraction=0.34, val_examples=8, objective="attractor", seed=3, device="cpu",
                progress=False)
    return DanetTrainConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return make_store(tmp_path_factory.mktemp("features"))


@pytest.mark.parametrize(
    "objective,attractor,policies",
    [("attractor", "ideal", ("kmeans", "fixed")), ("attractor", "anchored", ("anchored",)), ("chimera", "ideal", ("head", "kmeans")),
     ("mask", "ideal", ("head",))],
)
def test_short_training_separates_tones_from_noise(
    store: FeatureStore, tmp_path: Path, objective: str, attractor: str, policies: tuple[str, ...]
) -> None:
    kmeans_epochs = 2 if (objective, attractor) == ("attractor", "ideal") else 0
    cfg = small(hidden=32, epochs=8, kmeans_epochs=kmeans_epochs, steps_per_epoch=6, batch_size=8,
                train_snr_db=(-5.0, 5.0), attractor=attractor, objective=objective)
    seen: list[EpochStats] = []
    result = train_danet(store, cfg, tmp_path / "danet.pt", on_epoch=seen.append)
    phases = {"attractor": ["ideal", "kmeans", "kmeans"] if attractor == "ideal" else ["anchored"] * 3,
              "chimera": ["ideal"] * 3, "mask": ["head"] * 3}[objective]
    assert [s.epoch for s in seen] == list(range(1, 9)) and [s.attractors for s in seen][-3:] == phases
    assert all(np.isfinite(s.val_si_sdr) for s in seen)
    assert result.best_epoch == max(seen, key=lambda s: s.val_si_sdr).epoch
    assert result.chunks_per_s > 0
    export_model(tmp_path / "danet.pt", tmp_path / "model.pt")

    test = synth(seed=999)
    gains = []
    for policy in policies:
        masks = "head" if policy == "head" else "attractors"
        sep = Separator.from_checkpoint(tmp_path / "model.pt", masks=masks, attractor="kmeans" if masks == "head" else policy,
                                        device="cpu")
        music, noise = sep.separate(test.mixture, RATE)
        gains.append(sdr(test.music, music) - sdr(test.music, test.mixture))
        assert sdr(test.noise, noise) > sdr(test.noise, test.mixture) + 2.0
    # The mixture is ~0 dB SDR; the separated music is clearly better with every inference path.
    assert min(gains) > 4.0, gains


def test_exported_model_is_the_best_validation_epoch(store: FeatureStore, tmp_path: Path) -> None:
    result = train_danet(store, small(epochs=4, objective="chimera"), tmp_path / "ck.pt")
    export_model(tmp_path / "ck.pt", tmp_path / "model.pt")
    exported, last = load_checkpoint(tmp_path / "model.pt"), load_checkpoint(tmp_path / "ck.pt")
    scores = [h.val_si_sdr for h in result.history]
    assert exported["best_epoch"] == result.best_epoch == 1 + int(np.argmax(scores))
    assert exported["best_val_si_sdr"] == pytest.approx(max(scores))
    assert "optimizer_state" not in exported
    for name, value in result.model.state_dict().items():  # the result carries the best weights too
        torch.testing.assert_close(exported["model_state"][name], value, rtol=0, atol=0)
    if result.best_epoch != 4:
        assert any(not torch.equal(exported["model_state"][k], v) for k, v in last["model_state"].items())


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


def test_cosine_schedule_falls_from_lr_to_zero_and_resumes_on_it(store: FeatureStore, tmp_path: Path) -> None:
    cfg = small(epochs=2, lr_schedule="cosine")
    rates = [learning_rate(cfg, epoch, step) for epoch in (1, 2) for step in range(cfg.steps_per_epoch)]
    assert rates[0] == cfg.lr and rates == sorted(rates, reverse=True) and len(set(rates)) == len(rates)
    assert rates[2] == pytest.approx(cfg.lr / 2)  # half-way through the 4 steps: cos(pi / 2)
    assert {learning_rate(small(), e, s) for e in (1, 2) for s in (0, 1)} == {small().lr}  # constant
    straight = train_danet(store, cfg, tmp_path / "a.pt")
    state = load_checkpoint(tmp_path / "a.pt")
    assert state["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(rates[-1])  # the optimizer followed it
    with pytest.raises(_Stop):
        train_danet(store, cfg, tmp_path / "b.pt", on_epoch=_stop_after_first)
    resumed = train_danet(store, cfg, tmp_path / "b.pt")
    assert resumed.start_epoch == 2 and resumed.losses == straight.losses
    assert train_danet(store, small(epochs=2), tmp_path / "a.pt").start_epoch == 1  # another schedule: from scratch


def _stop_after_first(stats: EpochStats) -> None:
    if stats.epoch == 1:
        raise _Stop


class _Stop(Exception):
    pass


def test_validation_holds_out_labelled_tracks_only_and_the_pool_always_trains(tmp_path: Path) -> None:
    clips = synth_clips(6)
    pool = pd.DataFrame([{"clip_id": f"separation/extra/p{i}", "kind": "music", "group": f"pool{i}", "path": f"music:{20 + i}"}
                         for i in range(6)])  # fmt: skip
    write_features(pd.concat([clips, pool], ignore_index=True), CFG, tmp_path, sample_rate=RATE, load=synth_load, progress=False)
    store = FeatureStore(tmp_path)
    cfg = small(val_fraction=0.34, extra_music_share=0.5)
    train, val = make_mixers(store, cfg)
    assert set(val.music["group"]) and not set(val.music["clip_id"]).intersection(pool["clip_id"])
    assert set(pool["group"]) <= set(train.music["group"]) and not set(val.music["group"]) & set(train.music["group"])
    # The same validation tracks as without the pool: a variant with the pool is scored on the same mixtures.
    _, val_without = make_mixers(FeatureStore(make_store(tmp_path / "plain").root), cfg)
    assert set(val.music["group"]) == set(val_without.music["group"])


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
    other = make_store(tmp_path / "other", n_music=3, seed=5)
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


def test_config_from_params_validates() -> None:
    cfg = DanetTrainConfig.from_params({"hidden": 64, "train_snr_db": [-3, 3], "lr": "1e-3", "head_weight": "0.25"}, noises=2)
    assert cfg.hidden == 64 and cfg.train_snr_db == (-3.0, 3.0) and cfg.lr == 1e-3 and cfg.noises == 2
    assert cfg.head_weight == 0.25 and cfg.heads == ("embedding", "mask")
    assert DanetTrainConfig.from_params({"objective": "mask"}).heads == ("mask",)
    assert DanetTrainConfig.from_params({"train_snr_db": None}).train_snr_db is None  # native levels
    for bad, key in [({"hiden": 3}, "danet.hiden"), ({"loss": "l1"}, "danet.loss"), ({"mask": "soft"}, "danet.mask"),
                     ({"epochs": 2, "kmeans_epochs": 3}, "danet.kmeans_epochs"), ({"train_snr_db": [5, -5]}, "danet.train_snr_db"),
                     ({"device": "tpu"}, "danet.device"),
                     ({"layers": 0}, "danet.layers"), ({"attractor": "oracle"}, "danet.attractor"),
                     ({"attractor": "anchored", "kmeans_epochs": 1}, "kmeans_epochs"), ({"objective": "dc"}, "danet.objective"),
                     ({"objective": "mask", "kmeans_epochs": 1}, "danet.objective=mask"), ({"head_weight": 1}, "danet.head_weight"),
                     ({"val_fraction": 1.0}, "danet.val_fraction"), ({"steps_per_epoch": 0}, "danet.steps_per_epoch"),
                     ({"max_gain_db": 0}, "danet.max_gain_db"), ({"chunks_per_epoch": 5}, "danet.chunks_per_epoch"),
                     ({"precision": "fp16"}, "danet.precision"), ({"nproc": 0}, "danet.nproc"),
                     ({"loader_workers": -1}, "danet.loader_workers"), ({"lr_schedule": "step"}, "danet.lr_schedule"),
                     ({"train_eq_db": 0}, "danet.train_eq_db")]:
        with pytest.raises(ParamError, match=key):
            DanetTrainConfig.from_params(bad)
    with pytest.raises(ParamError, match="noises"):
        DanetTrainConfig.from_params({}, noises=3)


def test_bf16_precision_runs_the_network_in_bfloat16_and_trains_alike(store: FeatureStore, tmp_path: Path) -> None:
    cfg = small(objective="chimera", precision="bf16")
    model = build_model(cfg, store.config.n_freq)
    dtypes = []
    for layer in (m for m in model.modules() if isinstance(m, torch.nn.Linear)):
        layer.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    music, noise = make_mixers(store, cfg)[0].batch(step_seeds(cfg, 1)[0])
    loss = _step(model, music, noise, cfg, store.config, use_kmeans=False).loss
    assert dtypes and set(dtypes) == {torch.bfloat16} and loss.dtype == torch.float32  # the loss stays float32
    fp32 = train_danet(store, small(objective="chimera", epochs=3, steps_per_epoch=4), tmp_path / "fp32.pt")
    bf16 = train_danet(store, small(objective="chimera", epochs=3, steps_per_epoch=4, precision="bf16"), tmp_path / "bf16.pt")
    torch.testing.assert_close(torch.tensor(bf16.losses), torch.tensor(fp32.losses), rtol=0.05, atol=0.0)
    assert bf16.losses[-1] < bf16.losses[0]


def test_loader_workers_mix_the_same_examples(store: FeatureStore, tmp_path: Path) -> None:
    inline = train_danet(store, small(epochs=1), tmp_path / "inline.pt")
    workers = train_danet(store, small(epochs=1, loader_workers=2), tmp_path / "workers.pt")
    assert workers.losses == inline.losses
