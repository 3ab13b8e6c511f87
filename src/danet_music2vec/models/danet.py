"""Deep Attractor Network (Chen, Luo & Mesgarani, ICASSP 2017), for music vs. noise.

A BLSTM stack maps the mixture's log-magnitude spectrogram to one K-dimensional
embedding per time-frequency bin, ``V`` shaped ``(B, T*F, K)``. Each source has an
*attractor* in that space; a bin's mask for source ``c`` is the softmax over sources
of ``V @ A_c``, so the masks of all sources sum to one in every bin.

Where the attractors come from (``attractor_source``):

- ``"ideal"`` (training, as in the paper and its official code): the mean embedding of
  the bins that the ideal binary mask assigns to each source, ``A = (Y^T V) / sum(Y)``,
  counting only *active* bins, i.e. bins within ``threshold_db`` of the chunk's
  loudest bin. Silent bins have arbitrary embeddings and would drag the attractors.
- ``"kmeans"`` (inference, and the last ``kmeans_epochs`` training epochs):
  k-means with ``n_sources`` clusters over the active bins' embeddings. Cluster order is
  arbitrary; whoever uses these masks must resolve which cluster is which source
  (training: permutation-invariant loss; inference: :class:`~danet_music2vec.separation.Separator`).
- ``"anchored"`` (the anchored DANet of the same authors' journal version, Luo, Chen &
  Mesgarani, IEEE/ACM TASLP 2018): trainable anchor points, one per source, softly
  assign every active bin (``softmax(V @ anchors)``); the attractors are the
  assignment-weighted mean embeddings. Training and inference then estimate the
  attractors the same way, and since the sources have fixed identities here (music,
  noise) the anchors are ordered: no clustering and no permutation to resolve.
- ``"given"``: attractors passed in by the caller, ``(C, K)`` or ``(B, C, K)``
  (fixed attractors from training, or track-level k-means centres).

With ``mask_head=True`` a mask-inference head (:class:`~danet_music2vec.models.mask_network.MaskHead`)
sits on the same BLSTM, Chimera++ style (architecture ``chimera``): training weighs the
two objectives and inference uses the head (``attractor_source="head"``). The BLSTM and
its input features are :class:`~danet_music2vec.models.encoder.BlstmEncoder`'s.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from danet_music2vec.models.encoder import BlstmEncoder, InputNorm
from danet_music2vec.models.mask_network import MaskHead

ATTRACTOR_SOURCES = ("ideal", "kmeans", "anchored", "given", "head")
_TINY = 1e-8


class DanetOutput(NamedTuple):
    """Everything :meth:`DANet.forward` computes, for training and diagnostics."""

    masks: torch.Tensor | None  # (B, T, F, C) from the attractors, sums to one over C (None without embedding head)
    embeddings: torch.Tensor | None  # (B, T*F, K)
    attractors: torch.Tensor | None  # (B, C, K)
    active: torch.Tensor  # (B, T*F) float 0/1: bins within threshold_db of the chunk max
    head_masks: torch.Tensor | None = None  # (B, T, F, C) from the mask-inference head


def active_bins(mag: torch.Tensor, threshold_db: float | None) -> torch.Tensor:
    """``(B, T, F)`` magnitude -> ``(B, T*F)`` float weights: 1 where within ``threshold_db`` of the chunk max.

    ``threshold_db=None`` (the original work: no threshold) counts every non-zero bin.
    """
    flat = mag.reshape(mag.shape[0], -1)
    # `> _TINY` keeps an all-silent chunk (padding) from counting every bin as active.
    audible = flat > _TINY
    if threshold_db is None:
        return audible.to(mag.dtype)
    floor = flat.amax(dim=1, keepdim=True) * 10.0 ** (-threshold_db / 20.0)
    return ((flat >= floor) & audible).to(mag.dtype)


def kmeans(
    points: torch.Tensor,
    weights: torch.Tensor,
    k: int,
    iters: int = 10,
    init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched weighted Lloyd k-means: ``points (B, N, D)``, ``weights (B, N)`` -> ``(centres (B, k, D), labels (B, N))``.

    Deterministic: unless ``init`` ``(B, k, D)`` is given, the first centre is the
    weighted point farthest from the weighted mean, each next one the point farthest
    from its nearest chosen centre (farthest-first traversal over weighted points).
    Points with weight 0 do not move the centres but still get a label. A batch item
    with no weight at all is clustered over all of its points. Runs without autograd.
    """
    with torch.no_grad():
        points = points.detach()
        w = weights.detach().to(points.dtype)
        empty = w.sum(dim=1, keepdim=True) <= 0
        w = torch.where(empty, torch.ones_like(w), w)
        valid = w > 0
        if init is None:
            mean = (w.unsqueeze(-1) * points).sum(1) / w.sum(1, keepdim=True)
            dist = (points - mean.unsqueeze(1)).square().sum(-1)
            dist = dist.masked_fill(~valid, -1.0)
            centres = [points[torch.arange(points.shape[0]), dist.argmax(1)]]
            nearest = torch.full_like(dist, float("inf"))
            for _ in range(1, k):
                d = (points - centres[-1].unsqueeze(1)).square().sum(-1)
                nearest = torch.minimum(nearest, d)
                pick = nearest.masked_fill(~valid, -1.0).argmax(1)
                centres.append(points[torch.arange(points.shape[0]), pick])
            centre = torch.stack(centres, dim=1)
        else:
            centre = init.detach().to(points.dtype).expand(points.shape[0], -1, -1).clone()
        previous = None
        for _ in range(iters):
            labels = _nearest(points, centre)
            if previous is not None and torch.equal(labels, previous):
                break  # converged: the centres would not move again
            previous = labels
            member = torch.zeros(*labels.shape, k, dtype=points.dtype, device=points.device)
            member.scatter_(2, labels.unsqueeze(-1), w.unsqueeze(-1))  # (B, N, k): the point's weight in its cluster
            mass = member.sum(1)  # (B, k)
            updated = member.transpose(1, 2) @ points / mass.clamp_min(_TINY).unsqueeze(-1)
            # An empty cluster keeps its previous centre instead of collapsing to 0.
            centre = torch.where((mass > 0).unsqueeze(-1), updated, centre)
        labels = _nearest(points, centre)
    return centre, labels


def _nearest(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre ``(B, N)``: argmin of |c|^2 - 2 x.c (|x|^2 is the same for every centre).

    One matrix product instead of ``torch.cdist``: the k-means of a 30 s track ran 3x faster.
    """
    return (centres.square().sum(-1).unsqueeze(1) - 2.0 * points @ centres.transpose(1, 2)).argmin(-1)


class DANet(nn.Module):
    """BLSTM embeddings + attractors + softmax masks (and, for Chimera++, a mask head). Pure ``nn.Module``: no file I/O.

    ``forward(mag)`` alone (the head's masks when the model has one, else k-means
    attractors; masks as a tensor) is the signature the MLflow model logs; training
    passes ``attractor_source="ideal"`` and ``return_details=True``.
    """

    has_embedding = True

    def __init__(
        self,
        n_freq: int,
        hidden: int = 300,
        layers: int = 4,
        embedding_dim: int = 20,
        n_sources: int = 2,
        dropout: float = 0.0,
        threshold_db: float | None = 40.0,
        floor_db: float = 80.0,
        kmeans_iters: int = 10,
        mask_head: bool = False,
        input_norm: InputNorm = "chunk_db",
    ) -> None:
        super().__init__()
        if n_sources < 2:
            raise ValueError(f"DANet needs n_sources >= 2, got {n_sources}")
        self.architecture = "chimera" if mask_head else "danet"
        self.config: dict[str, Any] = {
            "architecture": self.architecture,
            "n_freq": n_freq,
            "hidden": hidden,
            "layers": layers,
            "embedding_dim": embedding_dim,
            "n_sources": n_sources,
            "dropout": dropout,
            "threshold_db": threshold_db,
            "floor_db": floor_db,
            "kmeans_iters": kmeans_iters,
            "mask_head": mask_head,
            "input_norm": input_norm,
        }
        self.n_freq, self.embedding_dim, self.n_sources = n_freq, embedding_dim, n_sources
        self.threshold_db, self.kmeans_iters = threshold_db, kmeans_iters
        self.has_mask_head = mask_head
        self.encoder = BlstmEncoder(n_freq, hidden, layers, dropout, floor_db, input_norm)
        # tanh on the embedding layer as in the official code: bounded embeddings keep
        # the softmax over V.A from saturating early in training.
        self.embed_layer = nn.Linear(self.encoder.out_features, n_freq * embedding_dim)
        # Used only by attractor_source="anchored"; present in every DANet so checkpoints have the same keys.
        self.anchors = nn.Parameter(torch.randn(n_sources, embedding_dim, generator=torch.Generator().manual_seed(0)))
        self.mask_head = MaskHead(self.encoder.out_features, n_freq, n_sources) if mask_head else None

    def embed(self, mag: torch.Tensor, encoded: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, F)`` magnitude (or its encoder output) -> embeddings ``(B, T*F, K)``."""
        out = self.encoder(mag) if encoded is None else encoded
        v = torch.tanh(self.embed_layer(out))  # (B, T, F*K)
        return v.reshape(mag.shape[0], -1, self.embedding_dim)

    def head_masks(self, mag: torch.Tensor, encoded: torch.Tensor | None = None) -> torch.Tensor:
        """Masks ``(B, T, F, C)`` of the mask-inference head."""
        if self.mask_head is None:
            raise ValueError("this DANet has no mask head (architecture danet); use its attractors")
        return self.mask_head(self.encoder(mag) if encoded is None else encoded)

    def active(self, mag: torch.Tensor) -> torch.Tensor:
        """``(B, T*F)`` 0/1 weights of the bins above the energy threshold."""
        return active_bins(mag, self.threshold_db)

    @staticmethod
    def ideal_attractors(v: torch.Tensor, assignment: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """``A = (Y^T V) / sum(Y)`` over active bins: ``v (B, N, K)``, ``assignment (B, N, C)``, ``active (B, N)`` -> ``(B, C, K)``."""
        y = assignment * active.unsqueeze(-1)
        return (y.transpose(1, 2) @ v) / (y.sum(1).unsqueeze(-1) + _TINY)

    def kmeans_attractors(self, v: torch.Tensor, active: torch.Tensor, init: torch.Tensor | None = None) -> torch.Tensor:
        """Attractors from k-means over the active bins (cluster order arbitrary).

        Assignments are found without gradients; the attractors are then the mean of
        the assigned embeddings *with* gradients, so the last training epochs still
        train the embedding network through them.
        """
        _, labels = kmeans(v, active, self.n_sources, iters=self.kmeans_iters, init=init)
        assignment = F.one_hot(labels, self.n_sources).to(v.dtype)
        return self.ideal_attractors(v, assignment, active)

    def anchored_attractors(self, v: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Attractors from the anchors' soft assignment of the active bins, in source order: ``(B, C, K)``."""
        assignment = (v @ self.anchors.t()).softmax(-1)
        return self.ideal_attractors(v, assignment, active)

    def masks_from(self, v: torch.Tensor, attractors: torch.Tensor, frames: int) -> torch.Tensor:
        """Softmax masks ``(B, T, F, C)`` from embeddings and attractors ``(B, C, K)``."""
        if attractors.shape[1] == 2:
            # softmax over two logits is the sigmoid of their difference: one product instead of two, no max/exp/sum.
            music = torch.sigmoid(v @ (attractors[:, 0] - attractors[:, 1]).unsqueeze(-1))  # (B, T*F, 1)
            return torch.cat([music, 1.0 - music], dim=-1).reshape(v.shape[0], frames, self.n_freq, 2)
        logits = v @ attractors.transpose(1, 2)  # (B, T*F, C)
        return logits.softmax(-1).reshape(v.shape[0], frames, self.n_freq, -1)

    def forward(
        self,
        mag: torch.Tensor,
        attractor_source: str | None = None,
        ideal_assignment: torch.Tensor | None = None,
        attractors: torch.Tensor | None = None,
        return_details: bool = False,
    ) -> torch.Tensor | DanetOutput:
        """Masks ``(B, T, F, C)`` for magnitude ``mag (B, T, F)``.

        ``ideal_assignment``: ``(B, T, F, C)`` (or ``(B, T*F, C)``) source membership for
        ``attractor_source="ideal"`` (the ideal binary mask); ``attractors``: ``(C, K)`` or
        ``(B, C, K)`` for ``"given"``. ``None``: the head's masks if the model has a mask
        head, else k-means. With a mask head, its masks are always in the details.
        """
        if attractor_source is None:
            attractor_source = "head" if self.has_mask_head else "kmeans"
        encoded = self.encoder(mag)
        active = self.active(mag)
        head = self.mask_head(encoded) if self.mask_head is not None else None
        if attractor_source == "head":
            if head is None:
                raise ValueError("attractor_source='head' needs a model with a mask head")
            return DanetOutput(None, None, None, active, head) if return_details else head
        v = self.embed(mag, encoded)
        if attractor_source == "ideal":
            if ideal_assignment is None:
                raise ValueError("attractor_source='ideal' needs ideal_assignment (the ideal binary mask)")
            a = self.ideal_attractors(v, ideal_assignment.reshape(v.shape[0], -1, self.n_sources).to(v.dtype), active)
        elif attractor_source == "kmeans":
            a = self.kmeans_attractors(v, active)
        elif attractor_source == "anchored":
            a = self.anchored_attractors(v, active)
        elif attractor_source == "given":
            if attractors is None:
                raise ValueError("attractor_source='given' needs attractors shaped (C, K) or (B, C, K)")
            a = attractors.to(v.dtype)
            a = a.expand(v.shape[0], -1, -1) if a.dim() == 2 else a
        else:
            raise ValueError(f"attractor_source={attractor_source!r}; use one of {', '.join(ATTRACTOR_SOURCES)}")
        masks = self.masks_from(v, a, mag.shape[1])
        return DanetOutput(masks, v, a, active, head) if return_details else masks
