"""music2vec network: shapes, SoundNet input scaling, frame arithmetic, pretrained-layer loading."""

import pytest
import torch

from danet_music2vec.models.music2vec import SOUNDNET_INPUT_SCALE, Music2Vec

torch.set_num_threads(1)


@pytest.mark.parametrize("n_samples", [22050, 3 * 22050, 66150 + 137])
def test_output_shape_for_several_lengths(n_samples: int) -> None:
    model = Music2Vec(4, channels=(16, 32, 64, 128, 256), lstm_hidden=32).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, n_samples) * 0.1)
        vectors = model.embed(torch.randn(2, n_samples) * 0.1)
        frames = model.frames(torch.randn(2, n_samples) * 0.1)
    assert logits.shape == (2, 4)
    assert vectors.shape == (2, 32)
    assert frames.shape == (2, model.n_frames(n_samples), 256)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("channels", [(8,), (8, 8, 8), (4, 4, 4, 4, 4, 4, 4)])
def test_n_frames_matches_the_network_for_every_depth(channels: tuple[int, ...]) -> None:
    model = Music2Vec(3, channels=channels, lstm_hidden=8).eval()
    for n in (model.min_samples(), model.min_samples() + 1000, 50_000):
        with torch.no_grad():
            assert model.frames(torch.zeros(1, n)).shape[1] == model.n_frames(n) >= 1


def test_accepts_channel_dimension_and_rejects_too_short_input() -> None:
    model = Music2Vec(2, channels=(8, 8, 8), lstm_hidden=8).eval()
    x = torch.randn(3, 8000) * 0.1
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.unsqueeze(1)))
    with pytest.raises(ValueError, match="too short.*at least"):
        model(torch.zeros(1, model.min_samples() - 1))
    with pytest.raises(ValueError, match="mono"):
        model(torch.zeros(1, 2, 8000))


def test_waveform_is_scaled_to_soundnet_range_before_the_first_conv() -> None:
    assert SOUNDNET_INPUT_SCALE == 256.0
    model = Music2Vec(2, channels=(8, 8), lstm_hidden=8).eval()
    seen = {}
    model.convs[0].conv.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0].clone()))
    x = torch.rand(1, 4000) * 2 - 1  # full-scale [-1, 1] audio
    with torch.no_grad():
        model(x)
    assert torch.allclose(seen["x"][:, 0], x * 256.0)
    assert seen["x"].abs().max() > 200  # SoundNet's [-256, 256] range, not [-1, 1]


def test_load_soundnet_state_copies_only_matching_conv_layers() -> None:
    model = Music2Vec(5, channels=(16, 32, 48), lstm_hidden=8)
    # The PyTorch SoundNet8 port's layout: Conv2d kernels (out, in, k, 1) in conv{i}.0, BN in conv{i}.1.
    state = {}
    for i, (cin, cout, k) in enumerate([(1, 16, 64), (16, 32, 32), (32, 64, 16)], start=1):
        state[f"conv{i}.0.weight"] = torch.full((cout, cin, k, 1), float(i))
        state[f"conv{i}.0.bias"] = torch.full((cout,), float(i))
        for name in ("weight", "bias", "running_mean", "running_var"):
            state[f"conv{i}.1.{name}"] = torch.full((cout,), float(i) + 0.5)
    state["conv8.weight"] = torch.zeros(1000, 1024, 8, 1)  # SoundNet's own classifier: ignored
    head_before = model.head.weight.clone()
    loaded = model.load_soundnet_state(state)
    assert loaded == [1, 2]  # layer 3 is 48 wide here, SoundNet's is 64: skipped
    assert torch.all(model.convs[0].conv.weight == 1.0) and torch.all(model.convs[1].bn.running_var == 2.5)
    assert not torch.all(model.convs[2].conv.weight == 3.0)
    assert torch.equal(model.head.weight, head_before)
