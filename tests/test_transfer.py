"""tlcourse.transfer and tlcourse.transfer.backbones: freezing, heads, layer-wise rates, feature cache, fine_tune."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlcourse import transfer
from tlcourse.core.device import seed_everything
from tlcourse.models.efficientnet import efficientnet_lite0
from tlcourse.models.resnet import resnet18
from tlcourse.training import evaluate, fit
from tlcourse.transfer.backbones import BackboneUnavailableError, load_backbone


class SmallNet(nn.Module):
    """conv stage -> batch norm stage -> pooled features -> classifier, like a tiny CNN backbone."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _problem(n: int = 96, seed: int = 0) -> TensorDataset:
    """Three classes told apart by which colour channel is brightest."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.5
    x[torch.arange(n), y] += 1.0
    return TensorDataset(x, y)


def test_stages_of_our_networks_end_with_their_heads() -> None:
    lite = [s.name for s in transfer.stages(efficientnet_lite0())]
    assert lite == ["features.stem"] + [f"features.stage{i}" for i in range(1, 8)] + ["features.head", "classifier"]
    res = [s.name for s in transfer.stages(resnet18())]
    assert res == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
    model = efficientnet_lite0()
    owned = [n for s in transfer.stages(model) for n in s.parameter_names]
    assert sorted(owned) == sorted(n for n, _ in model.named_parameters())  # every parameter once


def test_frozen_parameters_do_not_move_and_trainable_ones_do() -> None:
    seed_everything(0)
    model = SmallNet()
    transfer.freeze(model, 1)  # features.0: the first convolution
    report = transfer.trainable_report(model)
    assert report.stages[0].trainable == 0 and report.stages[1].trainable == report.stages[1].total
    assert "features.0.weight" not in report.trainable_names and "classifier.1.weight" in report.trainable_names
    transfer.freeze(model, names=["features.1"])  # the batch norm, by name
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    bn_mean = model.features[1].running_mean.clone()
    fit(model, DataLoader(_problem(), batch_size=32), epochs=1, lr=1e-2, progress=False, device="cpu")
    for name, p in model.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == (not name.startswith(("features.0.", "features.1."))), name
    assert torch.equal(model.features[1].running_mean, bn_mean)  # frozen batch norm keeps its statistics
    transfer.unfreeze(model)
    assert transfer.trainable_report(model).trainable == transfer.trainable_report(model).total
    with pytest.raises(ValueError, match="no parameter matches"):
        transfer.freeze(model, names="backbone")


def test_default_freeze_leaves_only_the_head_of_lite0() -> None:
    model = efficientnet_lite0()
    transfer.freeze(model)
    assert transfer.trainable_report(model).trainable_names == ["classifier.1.weight", "classifier.1.bias"]


def test_parameter_groups_carry_layerwise_learning_rates() -> None:
    assert transfer.stage_lrs(3, 1e-2, decay=0.5) == pytest.approx([2.5e-3, 5e-3, 1e-2])
    assert transfer.stage_lrs(5, 1e-2, spread=100) == pytest.approx([1e-4, 10 ** -3.5, 1e-3, 10 ** -2.5, 1e-2])
    model = efficientnet_lite0()
    groups = transfer.param_groups(model, 1e-3, spread=100)
    assert [g["name"] for g in groups][-1] == "classifier" and len(groups) == 10
    assert groups[-1]["lr"] == pytest.approx(1e-3) and groups[0]["lr"] == pytest.approx(1e-5)
    optimizer = torch.optim.AdamW(groups)
    assert [g["lr"] for g in optimizer.param_groups] == [g["lr"] for g in groups]
    transfer.freeze(model, 3)  # frozen stages are left out; the others keep their rates
    frozen_groups = transfer.param_groups(model, 1e-3, spread=100)
    assert [g["name"] for g in frozen_groups] == [g["name"] for g in groups][3:]
    assert [g["lr"] for g in frozen_groups] == pytest.approx([g["lr"] for g in groups][3:])


def test_replace_head_finds_the_final_linear_layer() -> None:
    import torchvision

    for model, name in [
        (efficientnet_lite0(), "classifier.1"),
        (resnet18(), "fc"),
        (torchvision.models.vit_b_16(), "heads.head"),
        (torchvision.models.mobilenet_v3_small(), "classifier.3"),
    ]:
        assert transfer.head_name(model) == name
        in_features = model.get_submodule(name).in_features
        transfer.replace_head(model, 5)
        assert isinstance(model.get_submodule(name), nn.Linear)
        assert model.get_submodule(name).in_features == in_features
    assert resnet18().fc.out_features == 1000
    out = transfer.replace_head(resnet18(), 7).eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)


def test_feature_cache_returns_the_backbones_features(tmp_path: Path) -> None:
    seed_everything(0)
    model = SmallNet()
    data = _problem(40)
    features = transfer.extract_features(model, DataLoader(data, batch_size=16), device="cpu", cache_file=tmp_path / "f.pt")
    model.eval()
    with torch.no_grad():
        expected = torch.flatten(model.pool(model.features(data.tensors[0])), 1)
    assert features.features.shape == (40, 16) and torch.equal(features.targets, data.tensors[1])
    torch.testing.assert_close(features.features, expected)
    again = transfer.extract_features(SmallNet(), DataLoader(data, batch_size=16), cache_file=tmp_path / "f.pt")
    assert again.from_disk and torch.equal(again.features, features.features)
    # the head trained on cached features gives the network's logits when put back
    head = nn.Linear(16, 3)
    transfer.replace_head(model, head)
    with torch.no_grad():
        torch.testing.assert_close(model(data.tensors[0]), head(features.features))
    assert transfer.feature_cache_key("lite0", "val", "t") != transfer.feature_cache_key("lite0", "val", "u")


def test_fine_tune_improves_on_the_untrained_head() -> None:
    seed_everything(0)
    model = SmallNet()
    train, val = DataLoader(_problem(96, 0), batch_size=16, shuffle=True), DataLoader(_problem(96, 1), batch_size=48)
    before = evaluate(model, val, device="cpu").accuracy
    result = transfer.fine_tune(model, train, val, head_epochs=2, epochs=4, lr=1e-2, device="cpu")
    assert result.head_history is not None and result.history is not None
    assert len(result.head_history) == 2 and len(result.history) == 4
    assert result.head_lrs == [pytest.approx(2e-2)]  # only the head trained first
    assert result.lrs[-1] == pytest.approx(1e-2) and result.lrs[0] == pytest.approx(1e-4)
    assert result.history.last.val_acc > max(before, 0.6), (before, result.history["val_acc"])
    assert transfer.trainable_report(model).trainable == transfer.trainable_report(model).total


def test_offline_torchvision_backbone_raises_a_clear_error(offline: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(BackboneUnavailableError) as info:
        load_backbone("resnet18")
    message = str(info.value)
    assert "resnet18" in message and str(tmp_path) in message and "efficientnet_lite0" in message
    lite = load_backbone("efficientnet_lite0", num_classes=2)
    assert lite.feature_dim == 1280 and lite.model.classifier[1].out_features == 2
    with pytest.raises(KeyError):
        load_backbone("alexnet")


def test_train_head_is_seeded_meets_min_steps_and_leaves_the_global_generator_alone() -> None:
    g = torch.Generator().manual_seed(1)
    y = torch.arange(40) % 2
    x = torch.randn(40, 6, generator=g) + 2.0 * y[:, None]
    train, val = transfer.Features(x[:24], y[:24]), transfer.Features(x[24:], y[24:])
    torch.manual_seed(123)
    expected_next = torch.rand(2)
    torch.manual_seed(123)
    head, history = transfer.train_head(train, val, 2, epochs=1, lr=0.05, min_steps=30, batch_size=8, seed=4,
                                        device="cpu")  # fmt: skip
    assert torch.equal(torch.rand(2), expected_next)  # the caller's random stream is untouched
    assert isinstance(head, nn.Linear) and head.weight.shape == (2, 6)
    assert len(history) == 10  # 3 steps an epoch: 30 steps need 10 epochs
    assert history.last.val_acc >= 0.8
    again, _ = transfer.train_head(train, val, 2, epochs=1, lr=0.05, min_steps=30, batch_size=8, seed=4, device="cpu")
    assert torch.equal(again.weight, head.weight)


def test_freeze_bn_stats_keeps_running_statistics_while_the_batch_norm_still_trains() -> None:
    model = SmallNet()
    bn = model.features[1]
    mean, weight = bn.running_mean.clone(), bn.weight.detach().clone()
    handles = transfer.freeze_bn_stats(model)
    fit(model, DataLoader(_problem(), batch_size=16), epochs=1, lr=1e-2, device="cpu", progress=False)
    assert torch.equal(bn.running_mean, mean)  # statistics kept ...
    assert not torch.equal(bn.weight.detach(), weight)  # ... while the affine parameters trained
    for handle in handles:
        handle.remove()
    fit(model, DataLoader(_problem(), batch_size=16), epochs=1, lr=1e-2, device="cpu", progress=False)
    assert not torch.equal(bn.running_mean, mean)
    transfer.freeze_bn_stats(model)  # pinned again after the hooks were removed
    mean = bn.running_mean.clone()
    fit(model, DataLoader(_problem(), batch_size=16), epochs=1, lr=1e-2, device="cpu", progress=False)
    assert torch.equal(bn.running_mean, mean)


def test_fine_tune_takes_a_schedule_name_and_refuses_a_scheduler_object() -> None:
    model = SmallNet()
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(TypeError, match="schedule's name"):
        transfer.fine_tune(model, DataLoader(_problem(), batch_size=16), epochs=1,
                           scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1))  # fmt: skip
    with pytest.raises(KeyError, match="Did you mean 'cosine'"):
        transfer.fine_tune(model, DataLoader(_problem(), batch_size=16), epochs=1, head_epochs=0, scheduler="cosin")


def test_extract_features_restores_each_layers_mode() -> None:
    model = SmallNet().train()
    model.features[1].eval()
    flags = [m.training for m in model.modules()]
    transfer.extract_features(model, DataLoader(_problem(8), batch_size=4), device="cpu")
    assert [m.training for m in model.modules()] == flags


def test_unknown_backbone_lists_the_valid_names_and_the_closest() -> None:
    with pytest.raises(KeyError, match=r"Unknown backbone 'resnet19'.*resnet18.*Did you mean 'resnet18'"):
        load_backbone("resnet19")
