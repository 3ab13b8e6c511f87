"""Whole-track separation: the :class:`Separator` (chunks, overlap-add, output rate), the architectures' mask
policies (:mod:`.policies`) and the transfer of masks to the input's own rate (:mod:`.full_rate`)."""

from danet_music2vec.separation.full_rate import apply_music_mask, full_rate_config, resample_masks, smooth_fft_size
from danet_music2vec.separation.policies import AttractorMasks, HeadMasks, OrderCount, resolve_order
from danet_music2vec.separation.separator import Separation, Separator, chunk_starts, chunk_weight, cut_chunks, timed_separate

__all__ = [
    "AttractorMasks", "apply_music_mask", "HeadMasks", "OrderCount", "Separation", "Separator", "chunk_starts", "chunk_weight", "cut_chunks",
    "full_rate_config", "resample_masks", "resolve_order", "smooth_fft_size", "timed_separate",
]
