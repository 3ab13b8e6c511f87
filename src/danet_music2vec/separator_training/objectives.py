"""What each separator architecture trains on one batch, and how a model is scored on validation.

``mask``: the mask head's masks against the sources (``separator.loss``). ``danet``: the
paper's DANet: attractors from the ideal binary mask over active bins (epochs
``1 .. epochs - kmeans_epochs``), from k-means in the last ``kmeans_epochs`` (as at
inference, with a permutation-invariant loss), or from trained anchors (``attractor:
anchored``). ``chimera``: the DANet loss and the mask head's loss, weighted
``(1 - head_weight)`` and ``head_weight`` (Chimera++).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from danet_music2vec.devices import autocast
from danet_music2vec.distributed import World
from danet_music2vec.dsp import StftConfig, istft
from danet_music2vec.losses import ideal_binary_assignment, mask_loss, si_sdr
from danet_music2vec.params import SeparatorParams


class StepOutput(NamedTuple):
    loss: torch.Tensor
    attractors: torch.Tensor | None  # (B, C, K) in source order, None for the mask network
    present: torch.Tensor | None  # (B, C): 1 where the source had active bins (its attractor means something)


def epoch_attractors(cfg: SeparatorParams, epoch: int) -> str:
    """Where epoch ``epoch``'s masks come from: ``head`` (mask network), ``kmeans``, ``ideal`` or ``anchored``."""
    if cfg.embedding is None:
        return "head"
    return "kmeans" if epoch > cfg.epochs - cfg.embedding.kmeans_epochs else cfg.embedding.attractor


def inference_masks(cfg: SeparatorParams) -> str:
    """How the trained model's music mask is formed at inference: the head, the anchors or k-means."""
    if cfg.architecture != "danet":
        return "head"
    return "anchored" if cfg.danet.attractor == "anchored" else "kmeans"


def training_step(model: torch.nn.Module, music: torch.Tensor, noise: torch.Tensor, cfg: SeparatorParams,
                  stft_cfg: StftConfig, use_kmeans: bool) -> StepOutput:  # fmt: skip
    """The architecture's objective on one batch of complex ``(B, T, F)`` sources."""
    mix = music + noise
    sources = torch.stack([music, noise])
    mag = mix.abs()

    def loss_of(masks: torch.Tensor, permutation_invariant: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_loss(mix, sources, masks, cfg.loss, cfg.ideal_mask, stft_cfg, permutation_invariant)

    # bf16 autocast covers the network only; masks and losses (inverse STFTs, SI-SDR) stay in float32.
    if cfg.embedding is None:
        with autocast(mix.device, cfg.precision):
            masks = model(mag)
        return StepOutput(loss_of(masks.float())[0], None, None)

    def forward(**kwargs: Any) -> Any:
        with autocast(mix.device, cfg.precision):
            out = model(mag, return_details=True, **kwargs)
        return out._replace(**{k: getattr(out, k).float() for k in ("masks", "head_masks", "attractors")
                               if getattr(out, k) is not None})  # fmt: skip

    assignment = None
    if cfg.embedding.attractor == "anchored":
        out = forward(attractor_source="anchored")
    elif use_kmeans:
        out = forward(attractor_source="kmeans")
    else:
        assignment = ideal_binary_assignment(sources)
        out = forward(attractor_source="ideal", ideal_assignment=assignment)
    loss, order = loss_of(out.masks, permutation_invariant=use_kmeans)
    if cfg.architecture == "chimera":
        loss = (1.0 - cfg.chimera.head_weight) * loss + cfg.chimera.head_weight * loss_of(out.head_masks)[0]
    with torch.no_grad():
        a = out.attractors.gather(1, order.unsqueeze(-1).expand(-1, -1, out.attractors.shape[-1]))
        if assignment is None:
            present = torch.ones(a.shape[:2], device=a.device)
        else:
            # A source with no active bin in the chunk has no attractor (it is 0): skip it.
            present = ((assignment.reshape(a.shape[0], -1, a.shape[1]) * out.active.unsqueeze(-1)).sum(1) > 0).to(a.dtype)
    return StepOutput(loss, a, present)


def validate(
    model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], cfg: SeparatorParams, stft_cfg: StftConfig,
    world: World | None = None,
) -> tuple[float, float]:
    """``(loss, music SI-SDR in dB)`` of the inference path on fixed validation batches.

    The SI-SDR is loss-agnostic, so it also picks the best epoch when ``separator.loss``
    changes. k-means clusters are matched to the sources by the better order, as the
    permutation-invariant loss does. Each rank of ``world`` scores every ``size``-th
    batch; the sums are added up over the ranks.
    """
    world = world or World()
    device = world.device
    source = inference_masks(cfg)
    model.eval()
    loss_sum = sdr_sum = 0.0
    n = n_sdr = 0
    with torch.no_grad():
        for music, noise in batches[world.rank :: world.size]:
            music, noise = music.to(device), noise.to(device)
            mix = music + noise
            sources = torch.stack([music, noise])
            masks = model(mix.abs()) if cfg.embedding is None else model(mix.abs(), attractor_source=source)
            loss, order = mask_loss(mix, sources, masks, cfg.loss, cfg.ideal_mask, stft_cfg,
                                    permutation_invariant=source == "kmeans")  # fmt: skip
            music_mask = masks.gather(-1, order[:, :1].reshape(-1, 1, 1, 1).expand(*masks.shape[:-1], 1))[..., 0]
            length = (mix.shape[1] - 1) * stft_cfg.hop
            reference = istft(music, stft_cfg, length)
            estimate = istft(music_mask * mix, stft_cfg, length)
            audible = reference.square().mean(-1) > 1e-10
            loss_sum += float(loss) * music.shape[0]
            n += music.shape[0]
            sdr_sum += float(si_sdr(estimate, reference)[audible].sum())
            n_sdr += int(audible.sum())
    model.train()
    loss_sum, n, sdr_sum, n_sdr = world.sum([loss_sum, n, sdr_sum, n_sdr])
    return loss_sum / max(n, 1), sdr_sum / n_sdr if n_sdr else float("nan")
