"""The convolutional mask network (architecture ``tcn``): shapes, masks summing to one, a centred receptive field,
the BLSTM's input features, rebuilt from its config."""

from functools import partial

import pytest
import torch

from danet_music2vec.models import MaskNetwork, TcnMaskNetwork, separator_network
from tests.factories import magnitudes

torch.set_num_threads(1)


_mag = partial(magnitudes, frames=40)


@pytest.fixture
def model() -> TcnMaskNetwork:
    torch.manual_seed(0)
    return TcnMaskNetwork(n_freq=17, channels=8, hidden=16, kernel=3, blocks=3, repeats=2).eval()


def test_masks_have_shape_and_sum_to_one(model: TcnMaskNetwork) -> None:
    masks = model(_mag())
    assert masks.shape == (3, 40, 17, 2)
    torch.testing.assert_close(masks.sum(-1), torch.ones(3, 40, 17))
    assert (masks >= 0).all()
    torch.testing.assert_close(model.head_masks(_mag()), masks)  # the separator's common inference call
    assert model(_mag(frames=7)).shape == (3, 7, 17, 2)  # any length: a track shorter than the receptive field too
    assert model.architecture == model.config["architecture"] == "tcn"
    assert not model.has_embedding and model.has_mask_head


def test_an_output_frame_hears_its_receptive_field_on_both_sides_and_no_further() -> None:
    # No normalisation over the whole chunk may leak: without the global layer norms, only the convolutions
    # carry a change from one frame to another.
    torch.manual_seed(0)
    model = TcnMaskNetwork(n_freq=5, channels=4, hidden=8, kernel=3, blocks=2, repeats=1, input_norm="bin_log1p").eval()
    for module in model.modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.forward = lambda x: x
    assert model.encoder.receptive_field == 7  # 1 + (3 - 1) * (1 + 2)
    mag = _mag(batch=1, frames=30, freq=5)
    changed = mag.clone()
    changed[0, 15] += 1.0
    moved = (model(changed) - model(mag)).abs().amax(dim=(0, 2, 3)) > 0
    assert moved.nonzero().flatten().tolist() == list(range(12, 19))  # frames 15 - 3 .. 15 + 3: non-causal, centred


def test_it_takes_the_blstm_networks_input_features() -> None:
    tcn = TcnMaskNetwork(n_freq=17, channels=8, hidden=16, blocks=2, repeats=1, input_norm="bin_log1p")
    blstm = MaskNetwork(n_freq=17, hidden=8, layers=1, input_norm="bin_log1p")
    mean, std = torch.linspace(0.1, 0.5, 17), torch.linspace(1.0, 2.0, 17)
    for network in (tcn, blstm):
        network.encoder.set_input_stats(mean, std)  # what the training loop calls for bin_log1p
    torch.testing.assert_close(tcn.encoder.features(_mag()), blstm.encoder.features(_mag()))
    assert {"encoder.input_mean", "encoder.input_std"} <= set(tcn.state_dict())  # the statistics travel with the weights
    with pytest.raises(ValueError, match="frames, 17"):
        tcn(torch.rand(2, 10, 16))


def test_separator_network_rebuilds_it_from_its_config(model: TcnMaskNetwork) -> None:
    rebuilt = separator_network(model.config)
    rebuilt.load_state_dict(model.state_dict())
    assert isinstance(rebuilt, TcnMaskNetwork) and rebuilt.config == model.config
    torch.testing.assert_close(rebuilt.eval()(_mag()), model(_mag()), rtol=0, atol=0)


def test_an_even_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="kernel=4: a non-causal TCN needs an odd kernel"):
        TcnMaskNetwork(n_freq=17, kernel=4)
