"""DANet module: shapes, masks summing to one, thresholded ideal attractors, batched k-means."""

import pytest
import torch

from danet_music2vec.models import separator_network
from danet_music2vec.models.danet import DANet, active_bins, kmeans
from tests.factories import magnitudes

torch.set_num_threads(1)


@pytest.fixture
def model() -> DANet:
    torch.manual_seed(0)
    return DANet(n_freq=17, hidden=8, layers=2, embedding_dim=4)


@pytest.mark.parametrize("source", ["ideal", "kmeans", "anchored", "given"])
def test_masks_have_shape_and_sum_to_one(model: DANet, source: str) -> None:
    mag = magnitudes()
    assignment = torch.nn.functional.one_hot((torch.rand(3, 10, 17) > 0.5).long(), 2).float()
    out = model(mag, attractor_source=source, ideal_assignment=assignment, attractors=torch.randn(2, 4), return_details=True)
    assert out.masks.shape == (3, 10, 17, 2)
    assert out.embeddings.shape == (3, 10 * 17, 4)
    assert out.attractors.shape == (3, 2, 4)
    torch.testing.assert_close(out.masks.sum(-1), torch.ones(3, 10, 17))
    assert (out.masks >= 0).all()


def test_default_forward_returns_mask_tensor(model: DANet) -> None:
    masks = model(magnitudes())
    assert isinstance(masks, torch.Tensor) and masks.shape == (3, 10, 17, 2)


def test_active_bins_threshold_is_relative_to_chunk_max() -> None:
    mag = torch.ones(2, 2, 3)
    mag[0, 0, 0] = 1e-3  # -60 dB below max: inactive at 40 dB
    mag[0, 0, 1] = 0.1  # -20 dB: active
    mag[1] *= 1e-4  # a quiet chunk is judged against its own max: all active
    act = active_bins(mag, threshold_db=40.0)
    assert act.shape == (2, 6)
    assert act[0].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert act[1].tolist() == [1.0] * 6
    assert active_bins(torch.zeros(1, 2, 3), 40.0).sum() == 0  # silence (padding) has no active bin
    assert active_bins(mag, threshold_db=None)[0].tolist() == [1.0] * 6  # no threshold (the original): every bin
    assert active_bins(torch.zeros(1, 2, 3), None).sum() == 0


def test_ideal_attractors_ignore_inactive_bins() -> None:
    v = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [100.0, 100.0]]])
    y = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    active = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # last bin is below the threshold
    a = DANet.ideal_attractors(v, y, active)
    torch.testing.assert_close(a, torch.tensor([[[2.0, 0.0], [0.0, 2.0]]]))


def test_forward_ideal_uses_threshold(model: DANet) -> None:
    mag = magnitudes(batch=1)
    mag[0, :, :5] = 1e-6  # quiet bins: excluded from the attractors
    assignment = torch.zeros(1, 10, 17, 2)
    assignment[..., 0] = 1.0
    assignment[0, :, :5] = torch.tensor([0.0, 1.0])  # only quiet bins belong to source 1
    out = model(mag, attractor_source="ideal", ideal_assignment=assignment, return_details=True)
    assert out.active[0].reshape(10, 17)[:, :5].sum() == 0
    torch.testing.assert_close(out.attractors[0, 1], torch.zeros(4))  # no active bin -> empty attractor
    expected = out.embeddings[0].reshape(10, 17, 4)[:, 5:].reshape(-1, 4).mean(0)
    torch.testing.assert_close(out.attractors[0, 0], expected)


def test_kmeans_finds_two_clusters_deterministically() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 3, generator=g) * 0.1 + torch.tensor([2.0, 0.0, 0.0])
    b = torch.randn(70, 3, generator=g) * 0.1 + torch.tensor([-2.0, 1.0, 0.0])
    points = torch.cat([a, b])[torch.randperm(120, generator=g)].unsqueeze(0).repeat(2, 1, 1)
    weights = torch.ones(2, 120)
    centres, labels = kmeans(points, weights, k=2)
    again, _ = kmeans(points, weights, k=2)
    assert torch.equal(centres, again)
    found = sorted(centres[0].tolist(), key=lambda c: c[0])
    torch.testing.assert_close(torch.tensor(found), torch.tensor([[-2.0, 1.0, 0.0], [2.0, 0.0, 0.0]]), atol=0.05, rtol=0)
    assert labels.shape == (2, 120) and len(set(labels[0].tolist())) == 2


def test_kmeans_ignores_zero_weight_points() -> None:
    points = torch.tensor([[[0.0], [0.1], [10.0], [10.1], [1000.0]]])
    weights = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])  # the outlier is inactive
    centres, labels = kmeans(points, weights, k=2)
    assert sorted(round(c, 2) for c in centres[0, :, 0].tolist()) == [0.05, 10.05]
    assert labels[0, 4] == labels[0, 2]  # still labelled, by its nearest centre


def test_kmeans_attractors_carry_gradient(model: DANet) -> None:
    # The music mask alone: masks sum to one over sources, so their total has no gradient.
    model(magnitudes(), attractor_source="kmeans")[..., 0].sum().backward()
    assert model.embed_layer.weight.grad is not None and model.embed_layer.weight.grad.abs().sum() > 0


def test_anchored_attractors_follow_the_anchors(model: DANet) -> None:
    mag = magnitudes()
    out = model(mag, attractor_source="anchored", return_details=True)
    out.masks[..., 0].sum().backward()
    assert model.anchors.grad is not None and model.anchors.grad.abs().sum() > 0
    with torch.no_grad():
        model.anchors.copy_(model.anchors.flip(0))  # swapping the anchors swaps the sources
        swapped = model(mag, attractor_source="anchored")
    torch.testing.assert_close(swapped, out.masks.detach().flip(-1))


def test_bad_arguments_raise(model: DANet) -> None:
    with pytest.raises(ValueError, match="attractor_source"):
        model(magnitudes(), attractor_source="oracle")
    with pytest.raises(ValueError, match="ideal_assignment"):
        model(magnitudes(), attractor_source="ideal")
    with pytest.raises(ValueError, match="frames, 17"):
        model(torch.rand(2, 10, 16))


def test_two_source_masks_equal_the_softmax_of_the_logits(model: DANet) -> None:
    v = torch.randn(2, 5 * model.n_freq, model.embedding_dim, generator=torch.Generator().manual_seed(3))
    attractors = torch.randn(2, 2, model.embedding_dim, generator=torch.Generator().manual_seed(4))
    expected = (v @ attractors.transpose(1, 2)).softmax(-1).reshape(2, 5, model.n_freq, 2)
    torch.testing.assert_close(model.masks_from(v, attractors, 5), expected)


def test_chimera_model_gives_head_masks_next_to_attractor_masks() -> None:
    torch.manual_seed(0)
    model = DANet(n_freq=17, hidden=8, layers=1, embedding_dim=4, mask_head=True)
    assert model.architecture == model.config["architecture"] == "chimera"
    out = model(magnitudes(), attractor_source="kmeans", return_details=True)
    assert out.masks.shape == out.head_masks.shape == (3, 10, 17, 2)
    torch.testing.assert_close(out.head_masks.sum(-1), torch.ones(3, 10, 17))
    default = model(magnitudes())  # with a head, inference defaults to it: nothing to cluster
    torch.testing.assert_close(default, out.head_masks)
    torch.testing.assert_close(model.head_masks(magnitudes()), out.head_masks)
    assert not torch.allclose(out.masks, out.head_masks)


def test_danet_without_a_mask_head_refuses_head_masks(model: DANet) -> None:
    assert model.architecture == "danet" and model.mask_head is None
    with pytest.raises(ValueError, match="needs a model with a mask head"):
        model(magnitudes(), attractor_source="head")
    with pytest.raises(ValueError, match="no mask head"):
        model.head_masks(magnitudes())


@pytest.mark.parametrize("mask_head", [False, True])
def test_separator_network_rebuilds_a_danet_from_its_config(mask_head: bool) -> None:
    original = DANet(n_freq=17, hidden=8, layers=1, embedding_dim=4, mask_head=mask_head)
    rebuilt = separator_network(original.config)
    rebuilt.load_state_dict(original.state_dict())
    assert isinstance(rebuilt, DANet) and rebuilt.config == original.config
    torch.testing.assert_close(rebuilt(magnitudes(), attractor_source="anchored"), original(magnitudes(), attractor_source="anchored"))
