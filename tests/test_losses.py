"""Separation targets and losses: ideal masks, zero loss at the ideal mask, PSA, SI-SDR, permutation invariance."""

import pytest
import torch

from danet_music2vec.dsp import StftConfig, istft, stft
from danet_music2vec.losses import mask_target_loss, ideal_binary_assignment, ideal_masks, mask_loss, si_sdr


def _sources() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    real = torch.randn(2, 3, 8, 5, generator=g)
    imag = torch.randn(2, 3, 8, 5, generator=g)
    return torch.complex(real, imag)


@pytest.mark.parametrize("kind", ["ratio", "wiener", "binary"])
def test_ideal_masks_sum_to_one(kind: str) -> None:
    masks = ideal_masks(_sources(), kind)
    assert masks.shape == (3, 8, 5, 2)
    torch.testing.assert_close(masks.sum(-1), torch.ones(3, 8, 5))


def test_ideal_mask_values() -> None:
    sources = torch.tensor([3.0, 1.0]).reshape(2, 1, 1, 1)
    assert ideal_masks(sources, "ratio").flatten().tolist() == [0.75, 0.25]
    assert ideal_masks(sources, "wiener").flatten().tolist() == pytest.approx([0.9, 0.1])
    assert ideal_masks(sources, "binary").flatten().tolist() == [1.0, 0.0]
    assert ideal_binary_assignment(sources).flatten().tolist() == [1.0, 0.0]
    silent = torch.zeros(2, 1, 1, 1)
    assert ideal_masks(silent, "ratio").flatten().tolist() == [0.5, 0.5]


@pytest.mark.parametrize("kind", ["linear_mse", "log_mse"])
def test_loss_is_zero_at_the_ideal_mask_and_positive_elsewhere(kind: str) -> None:
    sources = _sources()
    mag = sources.sum(0).abs()
    target = ideal_masks(sources, "ratio")
    loss, order = mask_target_loss(mag, target, target.clone(), kind)
    assert float(loss) == pytest.approx(0.0, abs=1e-12)
    assert order.tolist() == [[0, 1]] * 3
    worse, _ = mask_target_loss(mag, target, torch.full_like(target, 0.5), kind)
    assert float(worse) > 1e-4


def test_linear_loss_is_the_paper_objective() -> None:
    """mean over bins and sources of (|X| (M - M_hat))^2."""
    mag = torch.tensor([[[2.0]]])
    target = torch.tensor([[[[1.0, 0.0]]]])
    estimate = torch.tensor([[[[0.5, 0.5]]]])
    loss, _ = mask_target_loss(mag, target, estimate, "linear_mse")
    assert float(loss) == pytest.approx(((2 * 0.5) ** 2 + (2 * 0.5) ** 2) / 2)


def test_permutation_invariant_loss_undoes_a_swap() -> None:
    sources = _sources()
    mag = sources.sum(0).abs()
    target = ideal_masks(sources, "ratio")
    swapped = target.flip(-1)
    fixed_order, _ = mask_target_loss(mag, target, swapped, "linear_mse")
    loss, order = mask_target_loss(mag, target, swapped, "linear_mse", permutation_invariant=True)
    assert float(fixed_order) > 1e-3
    assert float(loss) == pytest.approx(0.0, abs=1e-12)
    assert order.tolist() == [[1, 0]] * 3


def test_unknown_kinds_name_the_argument() -> None:
    with pytest.raises(ValueError, match="ideal mask kind='soft'"):
        ideal_masks(_sources(), "soft")
    target = ideal_masks(_sources())
    with pytest.raises(ValueError, match="loss kind='l1'"):
        mask_target_loss(target[..., 0], target, target, "l1")


def test_psa_loss_is_zero_at_the_truncated_phase_sensitive_mask() -> None:
    sources = _sources()
    mix = sources.sum(0)
    cos = torch.cos(sources.angle() - mix.angle())
    best = (sources.abs() * cos / mix.abs()).clamp(0.0, 1.0).movedim(0, -1)
    loss, _ = mask_loss(mix, sources, best, "psa")
    assert float(loss) == pytest.approx(0.0, abs=1e-10)
    assert float(mask_loss(mix, sources, torch.full_like(best, 0.5), "psa")[0]) > 1e-3
    swapped, order = mask_loss(mix, sources, best.flip(-1), "psa", permutation_invariant=True)
    assert float(swapped) == pytest.approx(0.0, abs=1e-10) and order.tolist() == [[1, 0]] * 3


def test_magnitude_mse_is_the_squared_error_of_the_masked_mixture_against_each_source_magnitude() -> None:
    sources = _sources()
    mix = sources.sum(0)
    masks = torch.full((*mix.shape, 2), 0.5)
    expected = (0.5 * mix.abs().unsqueeze(0) - sources.abs()).square().mean()
    loss, order = mask_loss(mix, sources, masks, "magnitude_mse")
    assert float(loss) == pytest.approx(float(expected), rel=1e-6) and order.tolist() == [[0, 1]] * 3
    # Where one source is silent, its mask of 1 for the other reaches zero loss.
    solo = torch.stack([sources[0], torch.zeros_like(sources[0])])
    perfect = torch.stack([torch.ones_like(mix.real), torch.zeros_like(mix.real)], dim=-1)
    assert float(mask_loss(solo[0], solo, perfect, "magnitude_mse")[0]) == pytest.approx(0.0, abs=1e-12)


def test_si_sdr_loss_rewards_the_exact_source_and_ignores_a_silent_one() -> None:
    cfg = StftConfig(sample_rate=8000, n_fft=8, hop=2)
    music = torch.complex(torch.randn(2, 12, 5), torch.randn(2, 12, 5))
    music = stft(istft(music, cfg, 22), cfg)[:, :12]  # a consistent STFT: it is some waveform's
    sources = torch.stack([music, torch.zeros_like(music)])  # the noise is silent: it has no SI-SDR
    perfect = torch.stack([torch.ones(2, 12, 5), torch.zeros(2, 12, 5)], dim=-1)
    loss, _ = mask_loss(music, sources, perfect, "si_sdr", stft_cfg=cfg)
    half, _ = mask_loss(music, sources, torch.full_like(perfect, 0.5), "si_sdr", stft_cfg=cfg)
    assert float(loss) < -60.0 and float(half) < -60.0  # SI-SDR is blind to scale
    wrong, _ = mask_loss(music, sources, perfect.flip(-1), "si_sdr", stft_cfg=cfg)
    assert float(wrong) > 0.0
    with pytest.raises(ValueError, match="STFT"):
        mask_loss(music, sources, perfect, "si_sdr")


def test_si_sdr_is_scale_invariant_and_known_for_a_known_error() -> None:
    ref = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    noise = noise - (noise @ (ref - ref.mean())) / ((ref - ref.mean()) @ (ref - ref.mean())) * (ref - ref.mean())
    noise = noise - noise.mean()
    noise = noise * (ref - ref.mean()).norm() / noise.norm() / 10.0  # orthogonal, 20 dB down
    assert float(si_sdr(3.0 * (ref + noise), ref)) == pytest.approx(20.0, abs=1e-3)
