"""The mask network (architecture ``mask``): shapes, masks summing to one, no embedding head, rebuilt from its config."""

import pytest
import torch

from danet_music2vec.models import MaskNetwork, separator_network
from danet_music2vec.models.mask_network import MaskHead
from tests.factories import magnitudes

torch.set_num_threads(1)


@pytest.fixture
def model() -> MaskNetwork:
    torch.manual_seed(0)
    return MaskNetwork(n_freq=17, hidden=8, layers=2)


def test_masks_have_shape_and_sum_to_one(model: MaskNetwork) -> None:
    masks = model(magnitudes())
    assert isinstance(masks, torch.Tensor) and masks.shape == (3, 10, 17, 2)
    torch.testing.assert_close(masks.sum(-1), torch.ones(3, 10, 17))
    assert (masks >= 0).all()
    torch.testing.assert_close(model.head_masks(magnitudes()), masks)  # the separator's common inference call


def test_it_is_the_plain_mask_network(model: MaskNetwork) -> None:
    assert model.architecture == model.config["architecture"] == "mask"
    assert not model.has_embedding and model.has_mask_head
    assert not hasattr(model, "embed_layer") and not hasattr(model, "anchors")
    with pytest.raises(ValueError, match="frames, 17"):
        model(torch.rand(2, 10, 16))


def test_separator_network_rebuilds_it_from_its_config(model: MaskNetwork) -> None:
    rebuilt = separator_network(model.config)
    rebuilt.load_state_dict(model.state_dict())
    assert isinstance(rebuilt, MaskNetwork) and rebuilt.config == model.config
    model.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt(magnitudes()), model(magnitudes()))
    with pytest.raises(ValueError, match="architecture='clustering'"):
        separator_network(model.config | {"architecture": "clustering"})


def test_bin_log1p_input_is_standardised_by_the_stored_statistics() -> None:
    torch.manual_seed(0)
    model = MaskNetwork(n_freq=17, hidden=8, layers=1, input_norm="bin_log1p")
    mag = magnitudes()
    torch.testing.assert_close(model.encoder.features(mag), torch.log1p(mag))  # identity until the statistics are set
    mean, std = torch.linspace(0.1, 0.5, 17), torch.linspace(0.5, 2.0, 17)
    model.encoder.set_input_stats(mean, std)
    torch.testing.assert_close(model.encoder.features(mag), (torch.log1p(mag) - mean) / std)
    # The statistics are part of the weights: a rebuilt network computes the same masks.
    rebuilt = separator_network(model.config)
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.eval()(mag), model.eval()(mag))
    with pytest.raises(ValueError, match="input_norm"):
        MaskNetwork(n_freq=17, hidden=8, layers=1, input_norm="global")
    with pytest.raises(ValueError, match="bin_log1p"):
        MaskNetwork(n_freq=17, hidden=8, layers=1).encoder.set_input_stats(mean, std)


def test_chunk_db_input_ignores_the_recordings_level() -> None:
    model = MaskNetwork(n_freq=17, hidden=8, layers=1)
    torch.testing.assert_close(model.encoder.features(magnitudes() * 10.0), model.encoder.features(magnitudes()))


@pytest.mark.parametrize("n_sources", [2, 3])
def test_the_head_masks_are_the_softmax_of_its_logits(n_sources: int) -> None:
    torch.manual_seed(0)
    head = MaskHead(6, 5, n_sources)
    features = 10.0 * torch.randn(2, 7, 6)  # large logits: masks near 0 and 1 keep their precision
    logits = head.linear(features).reshape(2, 7, 5, n_sources)
    torch.testing.assert_close(head(features), logits.softmax(-1), atol=1e-6, rtol=1e-5)
