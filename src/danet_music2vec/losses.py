"""The separator's training targets and losses (every architecture).

Ideal masks come from the true sources' magnitudes (``separator.ideal_mask``):

- ``ratio``: ``|S_c| / sum_j |S_j|`` (the magnitude IRM, same as the oracle baseline);
- ``wiener``: ``|S_c|^2 / sum_j |S_j|^2`` (the "Wiener-filter like mask" of the
  paper's official code);
- ``binary``: 1 for the loudest source in the bin, else 0.

Every kind sums to one over sources; bins where all sources are silent get ``1/C``.

Loss (``separator.loss``):

- ``linear_mse`` (the paper, eq. 4, and its official code): squared error between the
  ideal and the estimated *masked mixture* on LINEAR magnitude,
  ``|X| * (M_ideal - M_est)``, averaged over bins and sources (so the value does not
  depend on the chunk size);
- ``log_mse`` (what the original work did, kept for the ablation): the same squared
  error between ``log(|X|*M + eps)`` of both, with ``eps`` 80 dB below the chunk's
  loudest bin so that silent bins cannot dominate through ``log 0``.

- ``psa``: the truncated phase-sensitive approximation (Erdogan et al. 2015) on the
  stored complex STFTs: ``|X| * M_est`` against ``|S| cos(angle S - angle X)`` clipped to
  ``[0, |X|]``: the best a real-valued mask can do, phase errors included;
- ``magnitude_mse``: the magnitude spectrum approximation, ``|X| * M_est`` against ``|S|``
  itself (no ideal mask in between: a bin where the sources' phases cancel asks for a mask
  above one, which the softmax cannot give, so the mask learns the best it can);
- ``si_sdr``: minus the scale-invariant SDR (Le Roux et al. 2019) of each source, the
  masked mixture taken back to the waveform through the inverse STFT: the measure the
  separation is judged by, trained end to end.

All take ``masks`` shaped ``(B, T, F, C)`` (:func:`mask_loss`); with
``permutation_invariant=True`` the loss of each chunk is the minimum over source orders
of the estimate (needed when the attractors come from k-means, whose cluster order is
arbitrary).
"""

from __future__ import annotations

import itertools

import torch

from danet_music2vec.dsp import StftConfig, istft

MASK_KINDS = ("ratio", "wiener", "binary")
# Losses on an ideal mask target (mask_target_loss) and on the sources themselves (mask_loss).
MASK_TARGET_LOSSES = ("linear_mse", "log_mse")
LOSS_KINDS = MASK_TARGET_LOSSES + ("psa", "magnitude_mse", "si_sdr")
_TINY = 1e-8


def ideal_masks(sources: torch.Tensor, kind: str = "ratio") -> torch.Tensor:
    """``sources`` complex or magnitude ``(C, B, T, F)`` -> masks ``(B, T, F, C)`` summing to one over C."""
    mag = sources.abs()
    n = mag.shape[0]
    if kind == "ratio":
        power = mag
    elif kind == "wiener":
        power = mag.square()
    elif kind == "binary":
        # argmax over a trailing contiguous dim: reducing over dim 0 is ~10x slower on CPU.
        power = torch.nn.functional.one_hot(mag.movedim(0, -1).contiguous().argmax(-1), n).movedim(-1, 0).to(mag.dtype)
    else:
        raise ValueError(f"ideal mask kind={kind!r}; use one of {', '.join(MASK_KINDS)}")
    total = power.sum(0, keepdim=True)
    masks = torch.where(total > _TINY, power / total.clamp_min(_TINY), torch.full_like(power, 1.0 / n))
    return masks.movedim(0, -1)


def ideal_binary_assignment(sources: torch.Tensor) -> torch.Tensor:
    """One-hot ``(B, T, F, C)`` of the loudest source per bin: the paper's ``Y`` for ideal attractors."""
    return ideal_masks(sources, "binary")


def _per_chunk(mix_mag: torch.Tensor, target: torch.Tensor, estimate: torch.Tensor, kind: str) -> torch.Tensor:
    """Loss per chunk ``(B,)`` for masks ``(B, T, F, C)``."""
    mag = mix_mag.unsqueeze(-1)
    if kind == "linear_mse":
        err = mag * (target - estimate)
    elif kind == "log_mse":
        eps = mix_mag.amax(dim=(1, 2), keepdim=True).unsqueeze(-1).clamp_min(_TINY) * 1e-4
        err = torch.log(mag * target + eps) - torch.log(mag * estimate + eps)
    else:
        raise ValueError(f"loss kind={kind!r}; use one of {', '.join(LOSS_KINDS)}")
    return err.square().mean(dim=(1, 2, 3))


def mask_target_loss(
    mix_mag: torch.Tensor,
    target_masks: torch.Tensor,
    estimated_masks: torch.Tensor,
    kind: str = "linear_mse",
    permutation_invariant: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss over the batch and, per chunk, the source order of the estimate that was used.

    ``mix_mag`` ``(B, T, F)``; masks ``(B, T, F, C)``. Returns ``(loss, order)`` where
    ``order`` ``(B, C)`` maps target source ``c`` to estimate channel ``order[:, c]``
    (the identity unless ``permutation_invariant``).
    """
    if target_masks.shape != estimated_masks.shape:
        raise ValueError(f"mask shapes differ: target {tuple(target_masks.shape)} vs estimate {tuple(estimated_masks.shape)}")
    n = target_masks.shape[-1]
    perms = list(itertools.permutations(range(n))) if permutation_invariant else [tuple(range(n))]
    losses = torch.stack([_per_chunk(mix_mag, target_masks, estimated_masks[..., list(p)], kind) for p in perms])
    best, idx = losses.min(0)
    order = torch.tensor(perms, device=idx.device)[idx]
    return best.mean(), order


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR in dB over the last axis (zero-mean signals); shapes ``(..., samples)``."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.square().sum(-1, keepdim=True) + _TINY)
    target = scale * reference
    # As asteroid's: an all-zero estimate scores 10 log10(_TINY) = -80 dB, not a neutral 0 dB.
    return 10.0 * torch.log10(target.square().sum(-1) / ((estimate - target).square().sum(-1) + _TINY) + _TINY)


def si_sdr_loss(estimate: torch.Tensor, reference: torch.Tensor, permutation_invariant: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative SI-SDR of waveforms ``estimate`` against ``reference``, both ``(B, C, samples)``, averaged over the
    audible sources of each example and over the batch; returns ``(loss, order)`` as :func:`mask_target_loss`.

    The ``si_sdr`` loss of the mask networks (through the inverse STFT) and of time-domain networks alike.
    """
    n = reference.shape[1]
    perms = list(itertools.permutations(range(n))) if permutation_invariant else [tuple(range(n))]
    # A silent source (a chunk of digital silence) has no SI-SDR: it does not count.
    audible = (reference.square().mean(-1) > _TINY).to(reference.dtype)  # (B, C)
    per_perm = []
    for p in perms:
        value = si_sdr(estimate[:, list(p)], reference)
        per_perm.append(-(value * audible).sum(-1) / audible.sum(-1).clamp_min(1.0))
    return _best_order(torch.stack(per_perm), perms)


def _best_order(per_perm: torch.Tensor, perms: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    best, idx = per_perm.min(0)
    return best.mean(), torch.tensor(perms, device=idx.device)[idx]


def mask_loss(
    mix: torch.Tensor,
    sources: torch.Tensor,
    masks: torch.Tensor,
    kind: str,
    mask_kind: str = "ratio",
    stft_cfg: StftConfig | None = None,
    permutation_invariant: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of estimated ``masks (B, T, F, C)`` for complex mixture ``mix (B, T, F)`` and sources ``(C, B, T, F)``.

    Returns ``(loss, order)`` as :func:`mask_target_loss`. ``mask_kind`` is the ideal mask of
    the mask-target losses; ``stft_cfg`` is needed by ``si_sdr`` (the inverse STFT).
    """
    if kind in MASK_TARGET_LOSSES:
        return mask_target_loss(mix.abs(), ideal_masks(sources, mask_kind), masks, kind, permutation_invariant)
    n = masks.shape[-1]
    perms = list(itertools.permutations(range(n))) if permutation_invariant else [tuple(range(n))]
    if kind in ("psa", "magnitude_mse"):
        mag = mix.abs()
        if kind == "psa":
            cos = torch.cos(sources.angle() - mix.angle().unsqueeze(0))
            target = torch.minimum(torch.clamp(sources.abs() * cos, min=0.0), mag.unsqueeze(0)).movedim(0, -1)
        else:
            target = sources.abs().movedim(0, -1)
        per_perm = torch.stack([(mag.unsqueeze(-1) * masks[..., list(p)] - target).square().mean(dim=(1, 2, 3)) for p in perms])
        return _best_order(per_perm, perms)
    if kind == "si_sdr":
        if stft_cfg is None:
            raise ValueError("the si_sdr loss needs the STFT settings (stft_cfg) for the inverse STFT")
        length = (mix.shape[1] - 1) * stft_cfg.hop
        reference = istft(sources.movedim(0, 1), stft_cfg, length)  # (B, C, L)
        estimate = istft(masks.movedim(-1, 1) * mix.unsqueeze(1), stft_cfg, length)  # (B, C, L)
        return si_sdr_loss(estimate, reference, permutation_invariant)
    raise ValueError(f"loss kind={kind!r}; use one of {', '.join(LOSS_KINDS)}")
