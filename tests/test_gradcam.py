"""tlcourse.measure.gradcam (Grad-CAM, gradient saliency) against captum, and tlcourse.measure.probes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from tlcourse import data
from tlcourse.core.lookup import UnknownNameError
from tlcourse.measure.gradcam import class_scores, grad_cam, gradient_saliency, plot_heatmaps
from tlcourse.measure.probes import linear_probe, pooled_stage_features, standardized
from tlcourse.models.efficientnet import LITE_MEAN, LITE_STD
from tlcourse.transfer import extract_features, freeze
from tlcourse.transfer.backbones import load_backbone
from tlcourse.transfer.features import Features

captum_attr = pytest.importorskip("captum.attr")
ANT, BEE = 310, 309  # ImageNet classes "ant, emmet, pismire" and "bee"


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        )  # fmt: skip
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def _small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    model = SmallCNN()
    with torch.no_grad():  # batch norms with statistics that are not the identity
        model(torch.randn(16, 3, 16, 16))
    return model.eval()


def _captum_cam(model: nn.Module, layer: nn.Module, images: torch.Tensor, target) -> torch.Tensor:
    cam = captum_attr.LayerGradCam(model, layer).attribute(images, target=target, relu_attributions=True)
    return captum_attr.LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), interpolate_mode="bilinear")[:, 0]


@pytest.fixture(scope="module")
def lite0_and_photos(shared_data_root: Path) -> tuple[nn.Module, torch.Tensor]:
    """Pretrained Lite0 (ImageNet head) and two real validation photos: an ant and a bee."""
    backbone = load_backbone("efficientnet_lite0")
    bundle = data.load("hymenoptera", shared_data_root, transform=backbone.transform, per_class=1, eval_per_class=1,
                       download=False, num_workers=0)  # fmt: skip
    images, targets = data.dataset_tensors(bundle.val)
    assert targets.tolist() == [0, 1]  # ants, bees
    return backbone.model.eval(), images


def test_grad_cam_equals_captum_on_a_small_cnn() -> None:
    model = _small_cnn()
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for target in (2, [0, 1, 2, 1]):
        ours = grad_cam(model, images, "features.4", target)
        theirs = _captum_cam(model, model.features[4], images, target)
        assert ours.shape == (4, 16, 16)
        assert ours.max() > 0
        assert (ours - theirs).abs().max() < 1e-6
    small = grad_cam(model, images, "features.6", 0, upsample=False, relu=False)
    assert small.shape == (4, 8, 8) and small.min() < 0  # before the ReLU, evidence against the class too


def test_grad_cam_equals_captum_on_pretrained_lite0_and_real_photos(lite0_and_photos) -> None:
    model, images = lite0_and_photos
    for layer in ("features.head", "features.stage6"):
        ours = grad_cam(model, images, layer, [ANT, BEE])
        theirs = _captum_cam(model, model.get_submodule(layer), images, [ANT, BEE])
        assert ours.shape == (2, 224, 224)
        assert ours.amax(dim=(1, 2)).min() > 0  # every map has some positive evidence
        assert (ours - theirs).abs().max() < 1e-5, layer


def test_gradient_saliency_equals_captum_saliency() -> None:
    model = _small_cnn()
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    ours = gradient_saliency(model, images, [1, 0, 2])
    theirs = captum_attr.Saliency(model).attribute(images, target=[1, 0, 2], abs=True).amax(dim=1)
    assert ours.shape == (3, 16, 16)
    assert (ours - theirs).abs().max() < 1e-7


def test_the_map_depends_on_the_class_asked_for(lite0_and_photos) -> None:
    model, images = lite0_and_photos
    ant, bee = grad_cam(model, images, "features.head", ANT), grad_cam(model, images, "features.head", BEE)
    normalised = lambda m: m / m.amax(dim=(1, 2), keepdim=True)
    assert (normalised(ant) - normalised(bee)).abs().amax(dim=(1, 2)).min() > 0.1
    # and the network's evidence for "ant" is larger on the ant photo than on the bee photo, and vice versa
    assert ant[0].sum() > ant[1].sum() and bee[1].sum() > bee[0].sum()


def test_grad_cam_leaves_the_model_as_it_was() -> None:
    model = _small_cnn()
    freeze(model, 1)  # the first convolution frozen, the rest trainable
    model.train()
    model.features[1].eval()  # one layer's own flag
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    images = torch.randn(2, 3, 16, 16)
    first = grad_cam(model, images, "features.4", 1)
    gradient_saliency(model, images, 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # incl. batch-norm statistics
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [m.training for m in model.modules()] == modes
    assert not images.requires_grad
    # computed in eval mode: the same maps whatever mode the model was in, and with every parameter frozen
    freeze(model)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    assert torch.allclose(grad_cam(model, images, "features.4", 1), first)
    with torch.no_grad():  # a caller's no_grad does not prevent the maps
        assert torch.allclose(grad_cam(model, images, "features.4", 1), first)


def test_wrong_layer_names_and_targets_are_explained() -> None:
    model = _small_cnn()
    with pytest.raises(UnknownNameError, match="features.4"):
        grad_cam(model, torch.randn(1, 3, 16, 16), "features.44", 0)
    with pytest.raises(ValueError, match="2 classes for 3 images"):
        class_scores(torch.randn(3, 5), [0, 1])
    assert class_scores(torch.eye(3), 1).tolist() == [0.0, 1.0, 0.0]


def test_plot_heatmaps_draws_one_panel_per_image() -> None:
    images = torch.rand(3, 3, 16, 16)
    fig = plot_heatmaps(images, torch.rand(3, 16, 16), ["a", "b", "c"], mean=LITE_MEAN, std=LITE_STD, ncols=2,
                        title_colors=["black", "red", "black"])  # fmt: skip
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and [ax.get_title() for ax in visible] == ["a", "b", "c"]
    assert all(len(ax.images) == 2 for ax in visible)  # the photo and its heat map


def test_pooled_stage_features_match_extract_features() -> None:
    model = _small_cnn().train()
    images, targets = torch.randn(10, 3, 16, 16), torch.arange(10) % 3
    loader = data.tensor_loader(images, targets, batch_size=4)
    pooled = pooled_stage_features(model, loader, ["features.2", "features.6"], device="cpu")
    assert model.training and all(m.training for m in model.modules())  # eval for the pass only
    with torch.no_grad():  # the same numbers as a plain contiguous forward pass
        reference = model.eval().features[:3](images.contiguous()).mean(dim=(2, 3))
    assert torch.allclose(pooled["features.2"].features, reference, atol=1e-5)
    assert pooled["features.2"].features.shape == (10, 8) and pooled["features.6"].features.shape == (10, 16)
    assert torch.equal(pooled["features.6"].targets, targets)
    classifier_input = extract_features(model, loader, layer="classifier", device="cpu")
    assert torch.allclose(pooled["features.6"].features, classifier_input.features, atol=1e-6)
    with pytest.raises(UnknownNameError):
        pooled_stage_features(model, loader, ["features.9"])


def test_linear_probe_reads_a_separable_feature_and_not_noise() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 5, generator=g) * 100 + 500  # badly scaled features: standardisation handles it
    x[:, 0] += 1000 * y
    train, test = Features(x[:100], y[:100]), Features(x[100:], y[100:])
    fitted, _ = standardized(train, test)
    assert fitted.features.mean(0).abs().max() < 1e-4 and (fitted.features.std(0) - 1).abs().max() < 1e-4
    accuracies = linear_probe(train, test, 2, seeds=(0, 1, 2), per_class=20)
    assert len(accuracies) == 3 and min(accuracies) > 0.9
    noise = Features(torch.randn(100, 5, generator=g), y[100:])
    assert max(linear_probe(Features(torch.randn(100, 5, generator=g), y[:100]), noise, 2, seeds=(0, 1))) < 0.75
