"""Pure ``nn.Module`` models (no file I/O): DANet for separation, music2vec for genre classification."""

from danet_music2vec.models.danet import DANet, DanetOutput, active_bins, kmeans

__all__ = ["DANet", "DanetOutput", "active_bins", "kmeans"]
