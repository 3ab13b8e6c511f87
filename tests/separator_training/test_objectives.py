"""What each separator architecture trains on a batch, and the separator params that choose it."""

from pathlib import Path

import pytest
import torch

from danet_music2vec.features import FeatureStore
from danet_music2vec.losses import ideal_binary_assignment, mask_loss
from danet_music2vec.devices import bf16_is_native
from danet_music2vec.errors import DeviceError
from danet_music2vec.models import DANet, MaskNetwork
from danet_music2vec.params import ParamError
from danet_music2vec.separator_training import (
    build_network, epoch_attractors, inference_masks, make_mixers, step_seeds, training_step,
)
from tests.conftest import parsed_params
from tests.separator_training.test_loop import make_store, small, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return make_store(tmp_path_factory.mktemp("features"))


def first_batch(store: FeatureStore, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    return make_mixers(store, cfg, noises=1)[0].batch(step_seeds(cfg, 1)[0])


def test_architecture_picks_the_network_and_the_masks(store: FeatureStore) -> None:
    n_freq = store.config.n_freq
    assert isinstance(build_network(small(), n_freq), MaskNetwork)  # params.yaml's default
    danet, chimera = build_network(small(architecture="danet"), n_freq), build_network(small(architecture="chimera"), n_freq)
    assert isinstance(danet, DANet) and not danet.has_mask_head and danet.embedding_dim == 8
    assert isinstance(chimera, DANet) and chimera.has_mask_head
    assert [epoch_attractors(small(epochs=3), e) for e in (1, 2, 3)] == ["head"] * 3
    assert [epoch_attractors(small(architecture="danet", epochs=3, danet={"kmeans_epochs": 2}), e)
            for e in (1, 2, 3)] == ["ideal", "kmeans", "kmeans"]  # fmt: skip
    assert epoch_attractors(small(architecture="danet", danet={"attractor": "anchored"}), 1) == "anchored"
    assert inference_masks(small()) == inference_masks(small(architecture="chimera")) == "head"
    assert inference_masks(small(architecture="danet")) == "kmeans"
    assert inference_masks(small(architecture="danet", danet={"attractor": "anchored"})) == "anchored"


@pytest.mark.parametrize("head_weight", [0.25, 0.75])
def test_chimera_weighs_the_attractor_and_head_losses(store: FeatureStore, head_weight: float) -> None:
    cfg = small(architecture="chimera", chimera={"head_weight": head_weight})
    torch.manual_seed(0)
    model = build_network(cfg, store.config.n_freq)
    music, noise = first_batch(store, cfg)
    out = training_step(model, music, noise, cfg, store.config, use_kmeans=False)
    mix, sources = music + noise, torch.stack([music, noise])
    details = model(mix.abs(), attractor_source="ideal", ideal_assignment=ideal_binary_assignment(sources), return_details=True)
    attractor_loss = mask_loss(mix, sources, details.masks, cfg.loss, cfg.ideal_mask, store.config)[0]
    head_loss = mask_loss(mix, sources, details.head_masks, cfg.loss, cfg.ideal_mask, store.config)[0]
    torch.testing.assert_close(out.loss, (1 - head_weight) * attractor_loss + head_weight * head_loss)
    assert out.attractors.shape == (8, 2, 8) and out.present.shape == (8, 2)
    plain = training_step(model, music, noise, small(), store.config, use_kmeans=False)  # no embedding head: no attractors
    assert plain.attractors is None and plain.present is None


def test_bf16_precision_runs_the_network_in_bfloat16_and_trains_alike(store: FeatureStore, tmp_path: Path) -> None:
    cfg = small(architecture="chimera", precision="bf16")
    model = build_network(cfg, store.config.n_freq)
    if not bf16_is_native(torch.device("cpu")):  # this CPU cannot: a clear error before any step
        with pytest.raises(DeviceError, match="precision bf16 needs a CPU with bf16 units"):
            training_step(model, *first_batch(store, cfg), cfg, store.config, use_kmeans=False)
        return
    dtypes = []
    for layer in (m for m in model.modules() if isinstance(m, torch.nn.Linear)):
        layer.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    music, noise = first_batch(store, cfg)
    loss = training_step(model, music, noise, cfg, store.config, use_kmeans=False).loss
    assert dtypes and set(dtypes) == {torch.bfloat16} and loss.dtype == torch.float32  # the loss stays float32
    fp32 = train(store, small(architecture="chimera", epochs=3, steps_per_epoch=4), tmp_path / "fp32.pt")
    bf16 = train(store, small(architecture="chimera", epochs=3, steps_per_epoch=4, precision="bf16"), tmp_path / "bf16.pt")
    torch.testing.assert_close(torch.tensor(bf16.losses), torch.tensor(fp32.losses), rtol=0.05, atol=0.0)
    assert bf16.losses[-1] < bf16.losses[0]


def test_separator_params_validate_and_name_the_key() -> None:
    cfg = parsed_params(separator={"hidden": 64, "train_snr_db": [-3, 3], "lr": 1e-3, "architecture": "chimera",
                                   "chimera": {"head_weight": 0.25}}, noises=2)  # fmt: skip
    assert cfg.noises == 2
    cfg = cfg.separator
    assert cfg.hidden == 64 and cfg.train_snr_db == (-3.0, 3.0) and cfg.lr == 1e-3
    assert cfg.embedding is cfg.chimera and cfg.chimera.head_weight == 0.25
    assert parsed_params(separator={"architecture": "mask"}).separator.embedding is None
    assert parsed_params(separator={"train_snr_db": None}).separator.train_snr_db is None  # native levels
    for bad, key in [({"hiden": 3}, "separator.hiden"), ({"loss": "l1"}, "separator.loss"),
                     ({"ideal_mask": "soft"}, "separator.ideal_mask"),
                     ({"architecture": "danet", "epochs": 2, "danet": {"kmeans_epochs": 3}}, "danet.kmeans_epochs"),
                     ({"train_snr_db": [5, -5]}, "separator.train_snr_db"), ({"device": "tpu"}, "separator.device"),
                     ({"layers": 0}, "separator.layers"), ({"danet": {"attractor": "oracle"}}, "separator.danet.attractor"),
                     ({"danet": {"attractor": "anchored", "kmeans_epochs": 1}}, "kmeans_epochs"),
                     ({"architecture": "dc"}, "separator.architecture"),
                     ({"chimera": {"head_weight": 1.0}}, "separator.chimera.head_weight"),
                     ({"val_fraction": 1.0}, "separator.val_fraction"), ({"steps_per_epoch": 0}, "separator.steps_per_epoch"),
                     ({"max_gain_db": 0}, "separator.max_gain_db"), ({"chunks_per_epoch": 5}, "separator.chunks_per_epoch"),
                     ({"precision": "fp16"}, "separator.precision"), ({"nproc": 0}, "separator.nproc"),
                     ({"loader_workers": -1}, "separator.loader_workers"), ({"lr_schedule": "step"}, "separator.lr_schedule"),
                     ({"train_eq_db": 0}, "separator.train_eq_db")]:  # fmt: skip
        with pytest.raises(ParamError, match=key):
            parsed_params(separator=bad)
    with pytest.raises(ParamError, match="noises"):
        parsed_params(noises=3)


def test_anchored_separation_needs_an_anchored_model() -> None:
    with pytest.raises(ParamError, match="separator.danet.attractor: anchored"):
        parsed_params(separator={"architecture": "danet"}, separate={"danet": {"attractor": "anchored"}})
    anchored = parsed_params(separator={"architecture": "danet", "danet": {"attractor": "anchored"}},
                             separate={"danet": {"attractor": "anchored"}})
    assert anchored.separate.danet.attractor == "anchored"
