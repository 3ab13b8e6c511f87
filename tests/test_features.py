import numpy as np
import pandas as pd
import torch

from danet_music2vec.dsp import StftConfig, istft, stft
from danet_music2vec.features import ChunkDataset, FeatureStore, source_chunks, write_features
from tests.data.test_mixing import plan


def test_stft_round_trip_is_exact():
    cfg = StftConfig()
    wave = torch.randn(2, 8000)
    assert torch.allclose(istft(stft(wave, cfg), cfg, 8000), wave, atol=1e-5)
    assert stft(wave, cfg).shape == (2, 8000 // 64 + 1, 129)


def test_features_round_trip_through_shards(tmp_path):
    mixtures = plan(tmp_path)
    train = mixtures[mixtures["split"] == "train"]
    cfg = StftConfig(chunk_frames=20)
    stats = write_features(train, cfg, tmp_path / "features", shard_chunks=7, progress=False)
    store = FeatureStore(tmp_path / "features")
    assert store.config == cfg
    assert stats["chunks"] == len(store) == 4 * ((2 * 8000 // 64 + 1) // 20)
    assert store.index.groupby("shard").size().max() <= 7  # a shard never exceeds its bound
    first = train.iloc[0]
    from danet_music2vec.data.mixing import render_mixture

    rendered = render_mixture(first)
    music, noise = source_chunks(rendered.music, rendered.noise, 8000, cfg)
    ds = ChunkDataset(store, max_cached_shards=1)
    for i in store.index.index[store.index["mixture_id"] == first.mixture_id]:
        m, n = ds[i]
        k = store.index.loc[i, "start_frame"] // 20
        assert torch.allclose(m, music[k], rtol=2e-3, atol=1e-3) and torch.allclose(n, noise[k], rtol=2e-3, atol=1e-3)


def test_shard_grouped_order_is_a_permutation_that_keeps_shards_together(tmp_path):
    mixtures = plan(tmp_path)
    write_features(mixtures[mixtures["split"] == "train"], StftConfig(chunk_frames=20), tmp_path / "f", 5, progress=False)
    ds = ChunkDataset(FeatureStore(tmp_path / "f"))
    order = ds.shard_grouped_order(torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(len(ds)))
    shards = [ds.shards[i] for i in order]
    changes = sum(a != b for a, b in zip(shards, shards[1:]))
    assert changes == len(set(shards)) - 1
