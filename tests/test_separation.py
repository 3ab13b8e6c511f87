"""Separator: seamless overlap-add, permutation resolution of k-means clusters, full-rate output."""

import numpy as np
import pytest
import torch
import yaml

from danet_music2vec import devices
from danet_music2vec.audio import resample
from danet_music2vec.dsp import StftConfig, stft
from danet_music2vec.errors import DeviceError
from danet_music2vec.models import DANet, MaskNetwork, kmeans
from danet_music2vec.params import ParamError, parse_params
from danet_music2vec.separation import (
    AttractorMasks, HeadMasks, apply_music_mask, Separator, chunk_starts, chunk_weight, cut_chunks, full_rate_config, resample_masks, resolve_order,
    smooth_fft_size,
)
from danet_music2vec.separation import separator as separator_module
from tests.conftest import REPO, separate_params

torch.set_num_threads(1)
CFG = StftConfig(sample_rate=8000, n_fft=64, hop=16, window="sqrt_hann", chunk_frames=20)
N_FREQ = CFG.n_freq


class AllMusic(DANet):
    """Test double: the music mask is 1 everywhere (what a perfect 'keep everything' model says)."""

    def masks_from(self, v: torch.Tensor, attractors: torch.Tensor, frames: int) -> torch.Tensor:
        masks = torch.zeros(v.shape[0], frames, self.n_freq, 2)
        masks[..., 0] = 1.0
        return masks


class Banded(DANet):
    """Test double: bins below ``split`` embed at +5*e0 (music), the rest at -5*e0 (noise)."""

    split = 2 * N_FREQ // 3  # music has more bins, so farthest-first k-means seeds cluster 0 on noise

    def embed(self, mag: torch.Tensor) -> torch.Tensor:
        v = torch.zeros(mag.shape[0], mag.shape[1], self.n_freq, self.embedding_dim)
        v[:, :, : self.split, 0] = 5.0
        v[:, :, self.split :, 0] = -5.0
        v[..., 1] = 0.01 * torch.arange(mag.shape[1]).reshape(1, -1, 1)  # not all identical
        return v.reshape(mag.shape[0], -1, self.embedding_dim)


def _wave(seconds: float, rate: int = 8000, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)


def settings(danet: dict | None = None, **overrides):
    """params.yaml's ``separate`` group on the CPU with ``overrides`` (``danet``: the attractor policy's keys)."""
    # The training-length chunks and fp32 these tests are written for, unless a test asks otherwise.
    overrides = {"chunk_frames": None, "precision": "fp32"} | overrides
    return separate_params(device="cpu", **overrides, **({"danet": danet} if danet else {}))


def _attractors() -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])  # music at +e0, noise at -e0


@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
@pytest.mark.parametrize("seconds", [0.05, 0.7, 1.33])
@pytest.mark.parametrize("attractor", ["fixed", "kmeans"])
def test_all_ones_mask_reconstructs_the_input(overlap: float, seconds: float, attractor: str) -> None:
    model = AllMusic(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    sep = Separator(model, CFG, _attractors(), settings(danet={"attractor": attractor}, overlap=overlap, batch_size=3))
    wave = _wave(seconds)
    music, noise, _ = sep.separate(wave, 8000)
    assert music.shape == wave.shape and music.dtype == np.float32
    np.testing.assert_allclose(music, wave, atol=1e-5)
    np.testing.assert_allclose(noise, 0.0, atol=1e-6)


def test_overlapped_masks_blend_without_seams() -> None:
    """A model whose mask depends on the chunk gives a smooth cross-fade, each frame a convex mix."""
    starts, padded = chunk_starts(frames=95, chunk=20, overlap=0.5)
    assert starts == [0, 10, 20, 30, 40, 50, 60, 70, 80] and padded == 100
    assert chunk_starts(frames=5, chunk=20, overlap=0.5) == ([0], 20)
    w = chunk_weight(20, 0.5)
    assert (w > 0).all() and torch.allclose(w, w.flip(0))

    class PerChunk(DANet):
        def masks_from(self, v, attractors, frames):
            level = v[:, :1, :1].reshape(-1, 1, 1)  # constant within a chunk, differs between chunks
            m = torch.sigmoid(level).expand(-1, frames, self.n_freq)
            return torch.stack([m, 1 - m], dim=-1)

    torch.manual_seed(0)
    sep = Separator(PerChunk(N_FREQ, hidden=4, layers=1, embedding_dim=3), CFG, _attractors(), settings(danet={"attractor": "fixed"}))
    spec = torch.randn(95, N_FREQ, dtype=torch.complex64)
    masks, _ = sep.masks(spec)
    torch.testing.assert_close(masks.sum(-1), torch.ones(95, N_FREQ))
    jumps = masks[1:, 0, 0] - masks[:-1, 0, 0]
    chunk_levels = torch.sigmoid(torch.stack([sep.model.embed(c[None].abs())[0, 0, 0] for c in cut_chunks(spec.abs(), CFG.chunk_frames, sep.overlap)[0]]))
    # No frame-to-frame jump bigger than a fraction of the difference between neighbouring chunks.
    assert jumps.abs().max() < 0.5 * (chunk_levels[1:] - chunk_levels[:-1]).abs().max() + 1e-6


def test_resolve_order_matches_cosine_similarity() -> None:
    ref = _attractors()
    centres = torch.stack([ref, ref.flip(0), ref * 3 + torch.tensor([0.0, 0.5, 0.0])])
    assert resolve_order(centres, ref).tolist() == [[0, 1], [1, 0], [0, 1]]


@pytest.mark.parametrize("scope", ["track", "chunk"])
def test_kmeans_clusters_returned_swapped_are_put_back_in_order(scope: str) -> None:
    model = Banded(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    mag = torch.ones(1, CFG.chunk_frames, N_FREQ)
    centres, _ = kmeans(model.embed(mag), model.active(mag), 2)
    assert centres[0, 0, 0] < 0  # k-means puts the noise cluster first: the order is swapped
    sep = Separator(model, CFG, _attractors(), settings(danet={"attractor": "kmeans", "kmeans_scope": scope, "kmeans_init": "farthest"},
                                                     overlap=0.5, batch_size=2))
    spec = torch.ones(50, N_FREQ, dtype=torch.complex64)  # flat spectrum: every bin active
    masks, order = sep.masks(spec)
    assert (masks[:, : Banded.split, 0] > 0.99).all()  # music bins go to the music output
    assert (masks[:, Banded.split :, 1] > 0.99).all()
    n_chunks = len(chunk_starts(50, CFG.chunk_frames, 0.5)[0])
    expected = 1 if scope == "track" else n_chunks
    assert order.swaps == order.decisions == expected
    assert sep.masks(spec)[1] == order  # each call counts its own decisions: the separator keeps no tally


def test_without_order_resolution_cluster_zero_is_music_as_the_original() -> None:
    model = Banded(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    sep = Separator(model, CFG, _attractors(), settings(danet={"attractor": "kmeans", "kmeans_init": "farthest", "resolve_order": False}))  # fmt: skip
    masks, order = sep.masks(torch.ones(50, N_FREQ, dtype=torch.complex64))
    assert (masks[:, : Banded.split, 1] > 0.99).all()  # k-means put noise first and nobody fixed it
    assert order.decisions == order.swaps == 0


def test_kmeans_seeded_with_training_attractors_keeps_the_order() -> None:
    model = Banded(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    sep = Separator(model, CFG, _attractors(), settings(danet={"attractor": "kmeans", "kmeans_init": "train"}))
    masks, order = sep.masks(torch.ones(50, N_FREQ, dtype=torch.complex64))
    assert (masks[:, : Banded.split, 0] > 0.99).all() and order.decisions == 1 and order.swaps == 0


def test_anchored_separator_uses_the_model_anchors() -> None:
    model = Banded(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    with torch.no_grad():
        model.anchors.copy_(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]))
    sep = Separator(model, CFG, torch.zeros(2, 3), settings(danet={"attractor": "anchored"}))
    masks, order = sep.masks(torch.ones(50, N_FREQ, dtype=torch.complex64))
    assert (masks[:, : Banded.split, 0] > 0.99).all() and (masks[:, Banded.split :, 1] > 0.99).all()
    assert order.decisions == 0


def test_long_tracks_recompute_embeddings_instead_of_caching(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = DANet(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    sep = Separator(model, CFG, _attractors(), settings(danet={"attractor": "kmeans"}, batch_size=2))
    spec = torch.randn(90, N_FREQ, dtype=torch.complex64)
    cached, _ = sep.masks(spec)
    monkeypatch.setattr("danet_music2vec.separation.policies.EMBEDDING_CACHE_BYTES", 0)
    torch.testing.assert_close(sep.masks(spec)[0], cached)


def test_fixed_attractors_need_no_permutation() -> None:
    sep = Separator(Banded(N_FREQ, hidden=4, layers=1, embedding_dim=3), CFG, _attractors(), settings(danet={"attractor": "fixed"}))
    masks, order = sep.masks(torch.ones(30, N_FREQ, dtype=torch.complex64))
    assert (masks[:, : Banded.split, 0] > 0.99).all() and order.decisions == 0


def test_full_output_rate_keeps_the_band_above_the_model_nyquist() -> None:
    rate = 22050
    t = np.arange(rate) / rate
    wave = (0.3 * np.sin(2 * np.pi * 6000 * t) + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    model = AllMusic(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    full = Separator(model, CFG, _attractors(), settings(danet={"attractor": "fixed"}, output_rate="full"))
    low = Separator(model, CFG, _attractors(), settings(danet={"attractor": "fixed"}, output_rate="stft"))
    music, noise, _ = full.separate(wave, rate)
    assert full.output_sample_rate(rate) == rate and music.shape == wave.shape
    np.testing.assert_allclose(music, wave, atol=1e-4)  # 6 kHz tone survives
    music_low = low.separate(wave, rate).music
    assert low.output_sample_rate(rate) == 8000 and music_low.shape == (8000,)


def test_full_rate_masks_interpolate_in_time_and_frequency() -> None:
    masks = torch.zeros(10, N_FREQ, 2)
    masks[:, : N_FREQ // 2, 0] = 1.0  # music below ~2 kHz
    masks[..., 1] = 1.0 - masks[..., 0]
    full_cfg = full_rate_config(CFG, 16000)
    out = resample_masks(masks, CFG, torch.Size([20, full_cfg.n_freq]), full_cfg)
    assert out.shape == (2, 20, full_cfg.n_freq)
    torch.testing.assert_close(out.sum(0), torch.ones(20, full_cfg.n_freq))
    freqs = torch.arange(full_cfg.n_freq) * 16000 / full_cfg.n_fft
    assert (out[0, :, freqs < 1500] > 0.99).all() and (out[0, :, freqs > 2500] < 0.01).all()


def _params_with(value: object, *path: str) -> None:
    """Validate params.yaml with ``separate.<path>`` set to ``value`` (the schema is where settings are checked)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    target = raw["separate"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    parse_params(raw)


def test_bad_options_name_the_param() -> None:
    for path, value in [(("danet", "attractor"), "oracle"), (("overlap",), 1.0), (("output_rate",), "48k"),
                        (("batch_size",), 0), (("danet", "kmeans_scope"), "album"), (("danet", "kmeans_init"), "x"),
                        (("mask_floor",), 1.0)]:  # fmt: skip
        with pytest.raises(ParamError, match="separate." + ".".join(path)):
            _params_with(value, *path)
    model = AllMusic(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    with pytest.raises(ValueError, match="train_attractors"):
        Separator(model, CFG, torch.zeros(3, 3), settings())


def test_mask_floor_keeps_a_share_of_the_mixture_in_the_music() -> None:
    model = Banded(N_FREQ, hidden=4, layers=1, embedding_dim=3)
    spec = torch.ones(50, N_FREQ, dtype=torch.complex64)
    plain = Separator(model, CFG, _attractors(), settings(danet={"attractor": "fixed"})).masks(spec)[0]
    floored = Separator(model, CFG, _attractors(), settings(danet={"attractor": "fixed"}, mask_floor=0.2)).masks(spec)[0]
    torch.testing.assert_close(floored[..., 0], 0.2 + 0.8 * plain[..., 0])
    torch.testing.assert_close(floored.sum(-1), torch.ones(50, N_FREQ))
    assert floored[..., 0].min() >= 0.2


class HeadOnly(DANet):
    """Test double: a mask head that says 'music' below ``split`` and 'noise' above it."""

    split = N_FREQ // 2

    def head_masks(self, mag: torch.Tensor, encoded: torch.Tensor | None = None) -> torch.Tensor:
        masks = torch.zeros(*mag.shape, 2)
        masks[..., : self.split, 0] = 1.0
        masks[..., self.split :, 1] = 1.0
        return masks


def test_head_masks_are_used_as_they_are_and_noise_is_the_rest() -> None:
    model = HeadOnly(N_FREQ, hidden=4, layers=1, embedding_dim=3, mask_head=True)
    sep = Separator(model, CFG, _attractors(), settings(overlap=0.5))
    assert isinstance(sep.policy, HeadMasks)  # chimera: the architecture uses its head
    masks, order = sep.masks(torch.ones(70, N_FREQ, dtype=torch.complex64))
    assert (masks[:, : HeadOnly.split, 0] == 1).all() and (masks[:, HeadOnly.split :, 0] == 0).all()
    assert order.decisions == 0  # nothing clustered, nothing to swap
    wave = _wave(1.0)
    for rate in ("stft", "full"):
        music, noise, _ = Separator(model, CFG, _attractors(), settings(output_rate=rate)).separate(wave, 8000)
        np.testing.assert_allclose(music + noise, wave, atol=1e-6)


def test_the_architecture_decides_the_masks() -> None:
    # danet: its attractors; chimera (DANet + head) and the mask network: the head.
    assert isinstance(Separator(DANet(N_FREQ, hidden=4, layers=1, embedding_dim=3), CFG, _attractors(), settings()).policy,
                      AttractorMasks)  # fmt: skip
    chimera = DANet(N_FREQ, hidden=4, layers=1, embedding_dim=3, mask_head=True)
    assert isinstance(Separator(chimera, CFG, _attractors(), settings()).policy, HeadMasks)
    mask = MaskNetwork(N_FREQ, hidden=4, layers=1)
    assert isinstance(Separator(mask, CFG, torch.zeros(2, 0), settings()).policy, HeadMasks)


def test_full_rate_fft_size_is_smooth() -> None:
    assert smooth_fft_size(706) == 720 and smooth_fft_size(256) == 256 and smooth_fft_size(255) == 256
    full = full_rate_config(StftConfig(), 22050)
    assert full.n_fft == 720 and full.hop == 176  # 706 = 2 x 353 would be the exact scale: 4x slower FFTs


def test_an_oracle_head_improves_the_sdr_of_a_synthetic_mixture() -> None:
    from danet_music2vec.metrics import separation_scores

    # Music: a 440 Hz tone; noise: white noise above 2.5 kHz. The head's split at 2 kHz is the oracle mask.
    rate, t = 8000, np.arange(16000) / 8000
    music = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    white = np.fft.rfft(np.random.default_rng(0).standard_normal(t.size))
    white[np.fft.rfftfreq(t.size, 1 / rate) < 2500] = 0
    noise = (0.3 * np.fft.irfft(white, t.size) / np.fft.irfft(white, t.size).std()).astype(np.float32)
    mixture = music + noise
    model = HeadOnly(N_FREQ, hidden=4, layers=1, embedding_dim=3, mask_head=True)
    est_music, est_noise, _ = Separator(model, CFG, _attractors(), settings(output_rate="stft")).separate(mixture, rate)
    scores = separation_scores(np.stack([music, noise]), np.stack([est_music, est_noise]), mixture)
    assert scores.nsdr_music > 10.0


class LowKept(MaskNetwork):
    """Test double: keeps the bins below a third of the band as music, whatever it hears."""

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        masks = torch.zeros(*mag.shape, 2)
        masks[..., : self.n_freq // 3, 0] = 1.0
        masks[..., 1] = 1.0 - masks[..., 0]
        return masks


def test_full_rate_blocks_give_the_whole_track_transform() -> None:
    rate = 22050
    audio = torch.from_numpy(np.stack([_wave(2.3, rate, seed=1), _wave(2.3, rate, seed=2)]))
    masks = torch.rand(int(2.3 * 8000) // CFG.hop + 1, N_FREQ, 1).expand(-1, -1, 2).clone()
    masks[..., 1] = 1.0 - masks[..., 0]
    whole = apply_music_mask(masks, CFG, audio, rate, block_seconds=10.0)  # one block
    blocked = apply_music_mask(masks, CFG, audio, rate, block_seconds=0.25)  # ten, each with its margins
    torch.testing.assert_close(blocked, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("output_rate", ["full", "stft"])
def test_stereo_comes_back_stereo_with_one_mask_for_both_channels(output_rate: str) -> None:
    rate = 16000
    left, right = _wave(1.0, rate, seed=3), 0.5 * _wave(1.0, rate, seed=4)
    sep = Separator(LowKept(N_FREQ, hidden=4, layers=1), CFG, torch.zeros(2, 0), settings(output_rate=output_rate))
    music, noise, _ = sep.separate(np.stack([left, right]), rate)
    out_rate = sep.output_sample_rate(rate)
    assert music.shape == noise.shape == (2, out_rate)
    mixture = np.stack([left, right])
    np.testing.assert_allclose(music + noise, mixture if output_rate == "full" else resample(mixture, rate, 8000), atol=1e-5)
    if output_rate == "full":  # the mask comes from the channels' mean and is applied to each channel alone
        masks = sep.masks(stft(torch.from_numpy(resample(mixture.mean(0), rate, 8000)), CFG))[0]
        for channel, wave in enumerate(mixture):
            alone = apply_music_mask(masks, CFG, torch.from_numpy(wave)[None], rate)[0].numpy()
            np.testing.assert_allclose(music[channel], alone, atol=1e-5)
    mono = sep.separate((left + right) / 2, rate).music
    np.testing.assert_allclose(music.mean(0), mono, atol=1e-5)  # linear: the channels' music averages to the mono music


class Counting(MaskNetwork):
    """Test double: records the chunk shapes it is given; a mask of 0.7 everywhere."""

    def head_masks(self, mag: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(mag.shape))
        return torch.stack([torch.full(mag.shape, 0.7), torch.full(mag.shape, 0.3)], dim=-1)


@pytest.mark.parametrize("chunk_frames, expected", [(None, CFG.chunk_frames), (40, 40), (10_000, 51)])
def test_inference_chunks_are_as_long_as_asked_and_never_longer_than_the_track(chunk_frames, expected) -> None:
    model = Counting(N_FREQ, hidden=4, layers=1)
    model.seen = []
    sep = Separator(model, CFG, torch.zeros(2, 0), settings(chunk_frames=chunk_frames, overlap=0.25))
    masks, _ = sep.masks(torch.ones(51, N_FREQ, dtype=torch.complex64))  # 51 frames
    assert {shape[1] for shape in model.seen} == {expected}
    torch.testing.assert_close(masks[..., 0], torch.full((51, N_FREQ), 0.7))


def test_long_chunks_are_batched_within_the_frame_bound_and_separate_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long file is not run 16 chunks of 2600 frames at once (2.1 GB for 10 minutes): batches hold at most
    BATCH_FRAMES frames, and the masks do not depend on how the chunks were batched."""
    model = Counting(N_FREQ, hidden=4, layers=1)
    model.seen = []
    sep = Separator(model, CFG, torch.zeros(2, 0), settings(chunk_frames=40, overlap=0.0, batch_size=16))
    spec = torch.ones(400, N_FREQ, dtype=torch.complex64)  # 10 chunks
    unbounded, _ = sep.masks(spec)
    assert [shape[0] for shape in model.seen] == [10]
    monkeypatch.setattr(separator_module, "BATCH_FRAMES", 120)
    model.seen = []
    bounded, _ = sep.masks(spec)
    assert [shape[0] for shape in model.seen] == [3, 3, 3, 1]
    torch.testing.assert_close(bounded, unbounded, rtol=0, atol=0)


def test_bf16_inference_separates_as_fp32_within_bf16_precision() -> None:
    torch.manual_seed(0)
    model = MaskNetwork(N_FREQ, hidden=16, layers=2)
    wave = _wave(2.0)
    full = Separator(model, CFG, torch.zeros(2, 0), settings(precision="fp32")).separate(wave, 8000).music
    if not devices.bf16_is_native(torch.device("cpu")):  # this CPU cannot: a clear error (precision auto is fp32 here)
        with pytest.raises(DeviceError, match="precision bf16 needs a CPU with bf16 units"):
            Separator(model, CFG, torch.zeros(2, 0), settings(precision="bf16")).separate(wave, 8000)
        return
    half = Separator(model, CFG, torch.zeros(2, 0), settings(precision="bf16")).separate(wave, 8000).music
    assert half.dtype == np.float32 and half.shape == full.shape
    # bf16 keeps 8 bits of mantissa: the masks (and so the music) agree to about 1%.
    assert np.abs(half - full).max() < 0.02 * np.abs(full).max()


def test_int8_inference_keeps_the_masks_and_leaves_the_given_network_alone() -> None:
    torch.manual_seed(0)
    model = MaskNetwork(N_FREQ, hidden=16, layers=2)
    full = Separator(model, CFG, [], settings(precision="fp32"))
    quantized = Separator(model, CFG, [], settings(precision="int8"))
    assert quantized.precision == "int8"
    assert isinstance(quantized.model.encoder.blstm, torch.ao.nn.quantized.dynamic.LSTM)
    assert type(model.encoder.blstm) is torch.nn.LSTM and full.model is model  # quantized a copy
    spec = stft(torch.from_numpy(_wave(2.0)), CFG)
    # int8 weights move a sigmoid mask by a few thousandths (docs/NETWORKS.md measures GNSDR: +0.003 dB).
    torch.testing.assert_close(quantized.masks(spec)[0], full.masks(spec)[0], atol=0.02, rtol=0)
    music = quantized.separate(_wave(2.0), 8000).music
    assert music.shape == (16000,) and music.dtype == np.float32


def test_int8_inference_is_for_the_cpu_only() -> None:
    with pytest.raises(DeviceError, match="precision int8 .* runs on the CPU only"):
        devices.resolve_precision(torch.device("cuda"), "int8")
    assert devices.resolve_precision(torch.device("cpu"), "int8") == "int8"


def test_a_separator_file_written_before_the_inference_chunk_and_precision_keys_loads_as_it_was_scored(tmp_path) -> None:
    from danet_music2vec import checkpoints
    from tests.factories import separator_file

    path = separator_file(tmp_path / "separator.pt", settings=settings())
    state = checkpoints.load(path, "separator")
    state["inference"] = {k: v for k, v in state["inference"].items() if k not in ("chunk_frames", "precision")}
    checkpoints.save(path, "separator", state)
    sep = Separator.load(path)
    assert sep.precision == "fp32" and sep.chunk_frames == sep.cfg.chunk_frames


def test_a_separator_says_which_network_it_holds(tmp_path) -> None:
    from danet_music2vec import checkpoints
    from danet_music2vec.separation.separator import describe_origin
    from tests.factories import separator_file

    state = checkpoints.load(separator_file(tmp_path / "separator.pt", settings=settings()), "separator")
    assert describe_origin(state).startswith("a separator trained by the pipeline (mask, ")
    shipped = state | {"card": {"architecture": "mask", "commit": "0123456789abcdef"}}
    assert describe_origin(shipped).startswith("the shipped separator (mask, ") and "commit 0123456" in describe_origin(shipped)
    assert Separator.from_network(shipped, settings()).origin == describe_origin(shipped)


def test_auto_precision_is_bf16_only_where_the_device_computes_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    model = MaskNetwork(N_FREQ, hidden=4, layers=1)
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(devices, "bf16_is_native", lambda device, native=native: native)
        monkeypatch.setattr("danet_music2vec.separation.separator.resolve_precision", devices.resolve_precision)
        assert Separator(model, CFG, torch.zeros(2, 0), settings(precision="auto")).precision == expected
    assert Separator(model, CFG, torch.zeros(2, 0), settings(precision="fp32")).precision == "fp32"


@pytest.mark.parametrize("output_rate", ["full", "stft"])
def test_mono_at_the_model_rate_is_masked_on_the_network_stft_as_the_general_path_would(output_rate: str) -> None:
    torch.manual_seed(0)
    sep = Separator(MaskNetwork(N_FREQ, hidden=4, layers=1), CFG, torch.zeros(2, 0), settings(output_rate=output_rate))
    wave = _wave(1.3, CFG.sample_rate, seed=5)
    mono = sep.separate(wave, CFG.sample_rate).music  # the network's own STFT, masked as it is
    both = sep.separate(np.stack([wave, wave]), CFG.sample_rate).music  # a second transform (and interpolation)
    assert mono.shape == wave.shape
    np.testing.assert_allclose(both[0], mono, atol=1e-5)
    np.testing.assert_allclose(both[1], mono, atol=1e-5)
