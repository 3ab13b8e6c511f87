"""The separator's training loop: it learns to separate (synthetic tones vs. noise), checkpoints, and resumes exactly.

Resume and checkpoint tests run the default architecture (``mask``, params.yaml); ``danet`` and
``chimera`` run where their behaviour differs (k-means epochs, anchored attractors, the mask head).
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from danet_music2vec import checkpoints
from danet_music2vec.dsp import StftConfig
from danet_music2vec.errors import CheckpointError
from danet_music2vec.features import FeatureStore, write_features
from danet_music2vec.params import SeparatorParams
from danet_music2vec.separation import AttractorMasks, HeadMasks, Separator
from danet_music2vec.separator_training import (
    EpochStats, build_network, learning_rate, make_mixers, train_separator, validation_batches,
)
from tests.conftest import separate_params, separator_params

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


def small(**overrides) -> SeparatorParams:
    """A tiny separator of params.yaml's architecture (``mask``) unless overridden; nested dicts merge."""
    base = dict(hidden=24, layers=1, epochs=2, batch_size=8, lr=5e-3, steps_per_epoch=2, val_fraction=0.34,
                val_examples=8, loss="linear_mse", seed=3, device="cpu",
                danet={"embedding_dim": 8}, chimera={"embedding_dim": 8},
                tcn={"channels": 16, "hidden": 32, "blocks": 3, "repeats": 2})  # fmt: skip
    for key, value in overrides.items():
        base[key] = base[key] | value if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return separator_params(**base)


def train(store: FeatureStore, cfg: SeparatorParams, path: Path, **kwargs):
    return train_separator(store, cfg, path, progress=False, **kwargs)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return make_store(tmp_path_factory.mktemp("features"))


@pytest.mark.parametrize(
    "architecture,attractor,policies",
    [("danet", "ideal", ("kmeans", "fixed")), ("danet", "anchored", ("anchored",)), ("chimera", "ideal", ("head",)),
     ("mask", "ideal", ("head",)), ("tcn", "ideal", ("head",))],
)
def test_short_training_separates_tones_from_noise(
    store: FeatureStore, tmp_path: Path, architecture: str, attractor: str, policies: tuple[str, ...]
) -> None:
    kmeans_epochs = 2 if (architecture, attractor) == ("danet", "ideal") else 0
    own = {"attractor": attractor, "kmeans_epochs": kmeans_epochs}
    cfg = small(architecture=architecture, hidden=32, epochs=8, steps_per_epoch=6, batch_size=8, train_snr_db=(-5.0, 5.0),
                danet=own, chimera=own)  # fmt: skip
    seen: list[EpochStats] = []
    result = train(store, cfg, tmp_path / "ck.pt", on_epoch=seen.append)
    phases = {"danet": ["ideal", "kmeans", "kmeans"] if attractor == "ideal" else ["anchored"] * 3,
              "chimera": ["ideal"] * 3, "mask": ["head"] * 3, "tcn": ["head"] * 3}[architecture]  # fmt: skip
    assert [s.epoch for s in seen] == list(range(1, 9)) and [s.attractors for s in seen][-3:] == phases
    assert all(np.isfinite(s.val_si_sdr) for s in seen)
    assert result.best_epoch == max(seen, key=lambda s: s.val_si_sdr).epoch
    assert result.chunks_per_s > 0
    state = checkpoints.export(tmp_path / "ck.pt", tmp_path / "model.pt", "separator")

    test = synth(seed=999)
    gains = []
    for policy in policies:  # the architecture decides the masks; DANet's attractors as separate.danet says
        sep = Separator.from_network(state, separate_params(device="cpu", danet={"attractor": policy if policy != "head" else "kmeans"}))
        assert isinstance(sep.policy, AttractorMasks if architecture == "danet" else HeadMasks)
        music, noise, _ = sep.separate(test.mixture, RATE)
        gains.append(sdr(test.music, music) - sdr(test.music, test.mixture))
        assert sdr(test.noise, noise) > sdr(test.noise, test.mixture) + 2.0
    # The mixture is ~0 dB SDR; the separated music is clearly better with every inference path.
    assert min(gains) > 4.0, gains


def test_exported_model_is_the_best_validation_epoch(store: FeatureStore, tmp_path: Path) -> None:
    result = train(store, small(epochs=4), tmp_path / "ck.pt")
    checkpoints.export(tmp_path / "ck.pt", tmp_path / "model.pt", "separator")
    exported, last = checkpoints.load(tmp_path / "model.pt", "separator"), checkpoints.load(tmp_path / "ck.pt", "separator")
    scores = [h.val_si_sdr for h in result.history]
    assert exported["best_epoch"] == result.best_epoch == 1 + int(np.argmax(scores))
    assert exported["best_val_si_sdr"] == pytest.approx(max(scores))
    assert "optimizer_state" not in exported
    for name, value in result.model.state_dict().items():  # the result carries the best weights too
        torch.testing.assert_close(exported["model_state"][name], value, rtol=0, atol=0)
    if result.best_epoch != 4:
        assert any(not torch.equal(exported["model_state"][k], v) for k, v in last["model_state"].items())


@pytest.mark.parametrize("architecture", ["mask", "danet"])
def test_killed_run_resumes_at_next_epoch_with_identical_result(store: FeatureStore, tmp_path: Path, architecture: str) -> None:
    # dropout: the RNG state must be restored too; danet: its k-means epoch and training attractors resume as well.
    cfg = small(architecture=architecture, layers=2, dropout=0.3, epochs=3, danet={"kmeans_epochs": 1})
    straight = train(store, cfg, tmp_path / "a.pt")

    class Killed(Exception):
        pass

    def kill_after_first(stats: EpochStats) -> None:
        if stats.epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train(store, cfg, tmp_path / "b.pt", on_epoch=kill_after_first)
    assert checkpoints.load(tmp_path / "b.pt", "separator")["epoch"] == 1
    resumed = train(store, cfg, tmp_path / "b.pt")
    assert resumed.start_epoch == 2 and resumed.resumed and [s.epoch for s in resumed.new_epochs] == [2, 3]
    assert [s.epoch for s in resumed.history] == [1, 2, 3] and resumed.history[0].loss == straight.history[0].loss
    assert resumed.losses == straight.losses
    if architecture == "danet":
        assert [s.attractors for s in resumed.history] == ["ideal", "ideal", "kmeans"]
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(resumed.train_attractors, straight.train_attractors, rtol=0, atol=0)
    a, b = checkpoints.load(tmp_path / "a.pt", "separator"), checkpoints.load(tmp_path / "b.pt", "separator")
    for group_a, group_b in zip(a["optimizer_state"]["state"].values(), b["optimizer_state"]["state"].values()):
        torch.testing.assert_close(group_a["exp_avg_sq"], group_b["exp_avg_sq"], rtol=0, atol=0)
    assert b["complete"] and b["epoch"] == 3


def test_cosine_schedule_falls_from_lr_to_zero_and_resumes_on_it(store: FeatureStore, tmp_path: Path) -> None:
    cfg = small(epochs=2, lr_schedule="cosine")
    rates = [learning_rate(cfg, epoch, step) for epoch in (1, 2) for step in range(cfg.steps_per_epoch)]
    assert rates[0] == cfg.lr and rates == sorted(rates, reverse=True) and len(set(rates)) == len(rates)
    assert rates[2] == pytest.approx(cfg.lr / 2)  # half-way through the 4 steps: cos(pi / 2)
    assert {learning_rate(small(), e, s) for e in (1, 2) for s in (0, 1)} == {small().lr}  # constant
    straight = train(store, cfg, tmp_path / "a.pt")
    state = checkpoints.load(tmp_path / "a.pt", "separator")
    assert state["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(rates[-1])  # the optimizer followed it
    with pytest.raises(_Stop):
        train(store, cfg, tmp_path / "b.pt", on_epoch=_stop_after_first)
    resumed = train(store, cfg, tmp_path / "b.pt")
    assert resumed.start_epoch == 2 and resumed.losses == straight.losses
    assert train(store, small(epochs=2), tmp_path / "a.pt").start_epoch == 1  # another schedule: from scratch


def _stop_after_first(stats: EpochStats) -> None:
    if stats.epoch == 1:
        raise _Stop


class _Stop(Exception):
    pass


def test_validation_holds_out_the_same_share_of_the_profile_and_of_each_pool(tmp_path: Path) -> None:
    clips = synth_clips(6)
    pool = pd.DataFrame([{"clip_id": f"separation/extra/p{i}", "kind": kind, "group": f"pool-{kind}{i}",
                          "path": f"{kind}:{20 + i}"} for kind in ("music", "noise") for i in range(6)])  # fmt: skip
    write_features(pd.concat([clips, pool], ignore_index=True), CFG, tmp_path, sample_rate=RATE, load=synth_load, progress=False)
    store = FeatureStore(tmp_path)
    cfg = small(val_fraction=0.34, extra_music_share=0.5)
    train_mixer, val = make_mixers(store, cfg, noises=1)
    # The profile's held-out tracks and recordings do not change when a pool is added.
    _, val_without = make_mixers(FeatureStore(make_store(tmp_path / "plain").root), cfg, noises=1)
    for kind in ("music", "noise"):
        held, trains = set(getattr(val, kind)["group"]), set(getattr(train_mixer, kind)["group"])
        pool_groups = set(pool.loc[pool["kind"] == kind, "group"])
        assert not held & trains
        assert len(held & pool_groups) == 2 and len(trains & pool_groups) == 4  # 0.34 of 6 pool groups held out
        assert held - pool_groups == set(getattr(val_without, kind)["group"])


def test_a_fixed_val_seed_holds_out_the_same_validation_set_for_every_training_seed(tmp_path: Path) -> None:
    store = make_store(tmp_path, n_music=12)

    def held_out(**overrides) -> tuple[set[str], torch.Tensor]:
        cfg = small(val_fraction=0.34, **overrides)
        _, val = make_mixers(store, cfg, noises=1)
        return set(val.music["group"]) | set(val.noise["group"]), validation_batches(val, cfg)[0][0]

    groups, batch = held_out(seed=0)
    fixed_groups, fixed_batch = held_out(seed=5, val_seed=0)
    assert fixed_groups == groups and torch.equal(fixed_batch, batch)  # the training seed moved nothing held out
    assert held_out(seed=5)[0] != groups  # without val_seed, the seed draws its own validation set


def test_the_model_lists_every_clip_it_learned_from_or_was_chosen_on(store: FeatureStore, tmp_path: Path) -> None:
    train(store, small(epochs=1), tmp_path / "c.pt")
    clips = pd.DataFrame(checkpoints.export(tmp_path / "c.pt", tmp_path / "m.pt", "separator")["training_clips"])
    assert sorted(clips["clip_id"]) == sorted(store.index["clip_id"])  # train + validation = the whole store
    assert set(clips["role"]) == {"train", "validation"} and set(clips.columns) == {"clip_id", "kind", "label", "sha256", "role"}


def test_finetuning_starts_from_the_given_network(store: FeatureStore, tmp_path: Path) -> None:
    cfg = small(epochs=1)
    trained = train(store, cfg, tmp_path / "a.pt")
    init = checkpoints.export(tmp_path / "a.pt", tmp_path / "a_model.pt", "separator")
    probe = make_mixers(store, cfg, noises=1)[1].fixed_batches(9, 8, 8)[0][0].abs()
    tuned = train(store, small(epochs=1, start="finetune"), tmp_path / "b.pt", init=init)
    with torch.inference_mode():  # one more epoch moved it, but from the trained weights, not a fresh network
        moved = (tuned.model(probe) - trained.model(probe)).abs().mean()
        fresh = (tuned.model(probe) - build_network(cfg, CFG.n_freq).eval()(probe)).abs().mean()
    assert tuned.losses[0] < trained.losses[0] and moved < fresh
    manifest = pd.DataFrame(checkpoints.load(tmp_path / "b.pt", "separator")["training_clips"])
    assert len(manifest) == 2 * len(store) and set(manifest["role"]) == {"train", "validation", "init:train", "init:validation"}


def test_more_epochs_continue_a_finished_run(store: FeatureStore, tmp_path: Path) -> None:
    first = train(store, small(epochs=1), tmp_path / "c.pt")
    again = train(store, small(epochs=1), tmp_path / "c.pt")
    assert again.start_epoch == 2 and again.new_epochs == [] and again.losses == first.losses  # nothing left to do
    assert again.chunks == 0 and again.chunks_per_s == first.chunks_per_s  # throughput of the run that trained
    more = train(store, small(epochs=2), tmp_path / "c.pt")
    assert more.start_epoch == 2 and len(more.losses) == 2 and more.losses[0] == first.losses[0]


def test_changed_params_or_data_start_from_scratch(store: FeatureStore, tmp_path: Path) -> None:
    train(store, small(epochs=1), tmp_path / "d.pt")
    assert train(store, small(epochs=1, lr=1e-3), tmp_path / "d.pt").start_epoch == 1
    other = make_store(tmp_path / "other", n_music=3, seed=5)
    assert train(other, small(epochs=1, lr=1e-3), tmp_path / "d.pt").start_epoch == 1
    assert train(store, small(epochs=1, lr=1e-3), tmp_path / "d.pt").start_epoch == 1
    # Another architecture, or another noise count, is another run too.
    assert train(store, small(epochs=1, lr=1e-3, architecture="chimera"), tmp_path / "d.pt").start_epoch == 1
    assert train(store, small(epochs=1, lr=1e-3, architecture="chimera"), tmp_path / "d.pt", noises=2).start_epoch == 1


def test_an_unused_architecture_group_does_not_restart_training(store: FeatureStore, tmp_path: Path) -> None:
    train(store, small(epochs=1), tmp_path / "u.pt")  # mask: the danet and chimera groups are not its params
    assert train(store, small(epochs=1, danet={"embedding_dim": 4}), tmp_path / "u.pt").start_epoch == 2


def test_checkpoint_round_trip(store: FeatureStore, tmp_path: Path) -> None:
    result = train(store, small(epochs=1), tmp_path / "e.pt")
    state = checkpoints.load(tmp_path / "e.pt", "separator")
    assert state["sources"] == ["music", "noise"] and state["stft"]["chunk_frames"] == 32
    assert state["params"]["lr"] == 5e-3 and state["losses"] == result.losses
    assert state["params"]["architecture"] == "mask" and "danet" not in state["params"]  # the params this network used
    sep = Separator.from_network(state, separate_params(device="cpu"))
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(sep.model.state_dict()[name], value)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        checkpoints.load(tmp_path / "junk.pt", "separator")


def test_unfinished_checkpoint_is_not_exported(store: FeatureStore, tmp_path: Path) -> None:
    def stop(stats: EpochStats) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(store, small(epochs=2), tmp_path / "f.pt", on_epoch=stop)
    with pytest.raises(CheckpointError, match=r"f.pt: training is not finished \(epoch 1\)"):
        checkpoints.export(tmp_path / "f.pt", tmp_path / "model.pt", "separator")
    assert not (tmp_path / "model.pt").exists()


def test_loader_workers_mix_the_same_examples(store: FeatureStore, tmp_path: Path) -> None:
    inline = train(store, small(epochs=1), tmp_path / "inline.pt")
    workers = train(store, small(epochs=1, loader_workers=2), tmp_path / "workers.pt")
    assert workers.losses == inline.losses


def test_the_plain_recipe_trains_and_separates_with_its_input_statistics_in_the_model(store: FeatureStore, tmp_path: Path) -> None:
    cfg = small(hidden=32, epochs=8, steps_per_epoch=6, input_norm="bin_log1p", loss="magnitude_mse", train_snr_db=(-5.0, 5.0))
    result = train(store, cfg, tmp_path / "ck.pt")
    encoder = result.model.encoder
    # Measured on training mixtures, not left at the identity.
    assert not torch.allclose(encoder.input_mean, torch.zeros_like(encoder.input_mean))
    assert (encoder.input_std > 0).all() and not torch.allclose(encoder.input_std, torch.ones_like(encoder.input_std))
    state = checkpoints.export(tmp_path / "ck.pt", tmp_path / "model.pt", "separator")
    torch.testing.assert_close(state["model_state"]["encoder.input_mean"], encoder.input_mean)
    test = synth(seed=999)
    music, _, _ = Separator.from_network(state, separate_params(device="cpu")).separate(test.mixture, RATE)
    assert sdr(test.music, music) > sdr(test.music, test.mixture) + 4.0


def test_a_spent_budget_stops_training_finishes_the_checkpoint_and_a_rerun_trains_nothing(store: FeatureStore, tmp_path: Path) -> None:
    cfg = small(epochs=50, budget_minutes=1e-6)  # spent by the first epoch
    result = train(store, cfg, tmp_path / "ck.pt")
    assert result.epochs == 1 and len(result.history) == 1
    checkpoints.export(tmp_path / "ck.pt", tmp_path / "model.pt", "separator")  # complete: exportable
    again = train(store, cfg, tmp_path / "ck.pt")
    assert again.start_epoch == 2 and again.new_epochs == [] and again.epochs == 1


def test_a_budget_lowered_below_what_was_spent_finishes_the_run_on_resume(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(_Stop):  # killed after epoch 1 of 5: the checkpoint is not finished
        train(store, small(epochs=5), tmp_path / "ck.pt", on_epoch=_stop_after_first)
    with pytest.raises(CheckpointError, match="not finished"):
        checkpoints.export(tmp_path / "ck.pt", tmp_path / "model.pt", "separator")
    result = train(store, small(epochs=5, budget_minutes=1e-6), tmp_path / "ck.pt")
    assert result.new_epochs == [] and result.epochs == 1
    checkpoints.export(tmp_path / "ck.pt", tmp_path / "model.pt", "separator")  # finished now: exportable


def test_progress_false_draws_no_bar(store: FeatureStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train(store, small(epochs=1), tmp_path / "quiet.pt")
    assert "separator 1/1" not in capsys.readouterr().err
    train_separator(store, small(epochs=1), tmp_path / "loud.pt", progress=True)
    assert "separator 1/1" in capsys.readouterr().err
