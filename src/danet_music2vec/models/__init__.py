"""Pure ``nn.Module`` models (no file I/O): the separator networks and music2vec.

The separator's ``architecture`` picks its network: ``mask`` the BLSTM mask network,
``chimera`` DANet with a mask-inference head (Chimera++), ``danet`` the paper's Deep
Attractor Network, ``tcn`` Conv-TasNet's temporal convolution network with the mask head.
Every network's ``config`` holds its ``architecture`` and constructor arguments, so
:func:`separator_network` rebuilds it from plain data (checkpoints).
"""

from typing import Any

from torch import nn

from danet_music2vec.models.danet import DANet, DanetOutput, active_bins, kmeans
from danet_music2vec.models.mask_network import MaskHead, MaskNetwork
from danet_music2vec.models.tcn import TcnMaskNetwork

ARCHITECTURES = ("mask", "chimera", "danet", "tcn")


def separator_network(config: dict[str, Any]) -> nn.Module:
    """The separator network that ``config`` (a network's ``.config``) describes, freshly initialised."""
    kwargs = {k: v for k, v in config.items() if k != "architecture"}
    architecture = config.get("architecture")
    if architecture == "mask":
        return MaskNetwork(**kwargs)
    if architecture in ("chimera", "danet"):
        return DANet(**kwargs)
    if architecture == "tcn":
        return TcnMaskNetwork(**kwargs)
    raise ValueError(f"architecture={architecture!r}; use one of {', '.join(ARCHITECTURES)}")


__all__ = ["ARCHITECTURES", "DANet", "DanetOutput", "MaskHead", "MaskNetwork", "TcnMaskNetwork", "active_bins", "kmeans", "separator_network"]
