"""Lesson 11: domain adaptation mnist5k -> digits (AdaBN, Deep CORAL, DANN, few labels); tlcourse.transfer.domain directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import LessonRunner
from torch import nn

from tlcourse.data.tensors import tensor_loader
from tlcourse.models.vit import ViTBaselineCNN
from tlcourse.transfer.domain import (
    AdversarialAlignment,
    CoralAlignment,
    adapt_bn,
    alignment,
    coral_loss,
    covariance,
    dann_schedule,
    domain_accuracy,
    fit_domain,
    grad_reverse,
)
from tlcourse.transfer.heads import head_name

LESSON = "11_domain_adaptation"


def test_smoke_run_measures_the_shift_and_what_each_remedy_recovers(smoke_lesson: LessonRunner) -> None:
    r = smoke_lesson.results(LESSON)
    assert r["smoke"] is True and r["source"] == "mnist5k" and r["target"] == "digits"
    assert r["target_train_images"] == 1438 and r["target_test_images"] == 359  # digits: 1,797 images in all
    assert r["source_train_images"] == 3500 + 500 and r["source_test_images"] == 1000
    assert r["feature_dim"] == 64
    m = r["methods"]
    n_seeds = len(r["seeds"])
    assert n_seeds >= 3 and all(len(c["accs"]) == n_seeds for c in m.values())
    # The margins below were measured over 3 seeds in smoke mode (2 epochs): source-only 0.18 +- 0.01 on the
    # digits (0.95 on MNIST itself), AdaBN 0.46 +- 0.07, CORAL 0.47 +- 0.03, DANN 0.45 +- 0.05, upper bound 0.99.
    assert r["source_acc_on_source"]["mean"] > 0.9
    assert 0.12 < m["source_only"]["mean"] < 0.4  # above chance (0.1), poor (full mode: 0.27 +- 0.06 over 4 seeds)
    assert m["source_only"]["mean"] < m["upper_bound"]["mean"] - 0.4  # far below the bound
    assert m["upper_bound"]["mean"] > 0.9
    for method in ("adabn", "coral", "dann"):
        assert m[method]["mean"] > m["source_only"]["mean"] + 0.15, (method, m[method], m["source_only"])
        assert m[method]["mean"] < m["upper_bound"]["mean"] - 0.2, (method, m[method])  # none without labels reaches it
        assert 0.0 < r["recovered_share"][method] < 1.0
    # AdaBN helps on every seed, not only on average (weights are the same network's: a paired comparison)
    assert all(a > s + 0.1 for a, s in zip(m["adabn"]["accs"], m["source_only"]["accs"]))
    # a few labels: more is better (monotone up to noise), fine-tuning beats scratch, one label per class beats no label
    fine, scratch = r["few_label"]["fine_tune"], r["few_label"]["scratch"]
    ks = [str(k) for k in r["labels_per_class"]]
    assert ks == ["1", "5", "10"]
    assert fine["10"]["mean"] > fine["1"]["mean"] + 0.1
    assert all(fine[b]["mean"] > fine[a]["mean"] - 0.03 for a, b in zip(ks, ks[1:]))
    assert fine["1"]["mean"] > m["source_only"]["mean"] + 0.2
    # one label per class: the source network is the far better start (0.68 vs 0.37 in smoke, 0.79 vs 0.60 in full
    # mode); with 10 per class scratch catches up in full mode (0.95 both), so that is not asserted
    assert fine["1"]["mean"] > scratch["1"]["mean"] + 0.1
    unsupervised = ("adabn", "coral", "dann", "coral_adabn", "dann_adabn")
    assert fine["1"]["mean"] > max(m[k]["mean"] for k in unsupervised) + 0.05  # one label per class beats them all
    # AdaBN's curve: with 10 images already far above source-only
    curve = r["adabn_by_images"]
    assert [c["images"] for c in curve][-1] == 1438 and curve[0]["images"] == 10
    assert curve[0]["mean"] > m["source_only"]["mean"] + 0.1
    # a linear probe tells the domains apart from source-only features (0.5 would be indistinguishable)
    assert r["domain_accuracy"]["source_only"]["mean"] > 0.9
    assert all(0.4 <= c["mean"] <= 1.0 for c in r["domain_accuracy"].values())
    # the recorded alignment losses: CORAL's is a small non-negative number, DANN's a cross-entropy near log 2
    for key, losses in r["alignment_loss"].items():
        assert len(losses) == r["epochs"]
        if key.startswith("coral"):
            assert all(0 <= v < 1 for v in losses)
        else:
            assert all(0.3 < v < 1.0 for v in losses)


# ---------------------------------------------------------------- tlcourse.transfer.domain directly


def test_coral_loss_is_the_scaled_covariance_distance() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 6, generator=g, dtype=torch.float64)
    b = torch.randn(40, 6, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    assert torch.allclose(covariance(a), torch.as_tensor(np.cov(a.numpy(), rowvar=False)))
    direct = np.sum((np.cov(a.numpy(), rowvar=False) - np.cov(b.numpy(), rowvar=False)) ** 2) / (4 * 6**2)
    assert float(coral_loss(a, b)) == pytest.approx(direct, rel=1e-5)
    assert float(coral_loss(a, a)) == 0.0  # identical batches
    assert float(coral_loss(a, a + 3.0)) == pytest.approx(0.0, abs=1e-6)  # a shift of the mean: CORAL does not see it
    assert float(coral_loss(a, 2.0 * a)) > 0.1  # a change of scale: it does
    assert float(coral_loss(a, b)) > 0 and float(coral_loss(a, b)) == pytest.approx(float(coral_loss(b, a)))
    with pytest.raises(ValueError):
        coral_loss(a, b[:, :5])
    with pytest.raises(ValueError):
        covariance(a[:1])


def test_gradient_reversal_flips_and_scales_the_gradient_only() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)  # the identity going forward
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.5 * torch.arange(3.0).expand(4, 3))
    assert dann_schedule(0.0) == 0.0 and 0.99 < dann_schedule(1.0) < 1.0
    assert all(dann_schedule(p) < dann_schedule(p + 0.1) for p in np.linspace(0, 0.9, 10))


def test_adversarial_alignment_trains_the_discriminator_against_the_features() -> None:
    torch.manual_seed(0)
    features = torch.randn(8, 5, requires_grad=True)
    align = AdversarialAlignment(5, hidden=7, schedule=False)
    loss = align(features[:4], features[4:])
    loss.backward()
    reference = features.detach().clone().requires_grad_(True)
    plain = nn.functional.binary_cross_entropy_with_logits(
        align.discriminator(reference).squeeze(1), torch.tensor([0.0] * 4 + [1.0] * 4))
    plain.backward()
    assert torch.allclose(loss, plain)
    assert torch.allclose(features.grad, -reference.grad)  # the features get the discriminator's gradient reversed
    assert all(p.grad is not None for p in align.discriminator.parameters())
    assert isinstance(alignment("coral", 5), CoralAlignment) and isinstance(alignment("dann", 5), AdversarialAlignment)
    with pytest.raises(KeyError, match="coral"):
        alignment("mmd", 5)


def _net() -> nn.Module:
    return ViTBaselineCNN(stages=((4, 1), (8, 1)))


def test_adapt_bn_recomputes_the_statistics_and_leaves_the_rest() -> None:
    torch.manual_seed(0)
    net = _net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images = 3.0 + 2.0 * torch.randn(64, 1, 12, 12)
    adapt_bn(net, images, batch_size=16, device="cpu")
    bn = net[0].bn
    with torch.no_grad():
        conv_out = net[0].conv(images)
    assert torch.allclose(bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)  # the mean over all images
    assert bn.momentum == 0.1 and not net.training and not bn.training  # settings and modes restored
    after = net.state_dict()
    for name, value in before.items():
        changed = not torch.equal(value, after[name])
        assert changed == name.endswith(("running_mean", "running_var", "num_batches_tracked")), name
    with pytest.raises(ValueError, match="batch norm"):
        adapt_bn(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.zeros(2, 4))


def test_fit_domain_trains_on_paired_batches_and_records_each_epoch() -> None:
    torch.manual_seed(0)
    xs, ys = torch.randn(48, 1, 12, 12), torch.randint(0, 10, (48,))
    xt = torch.randn(20, 1, 12, 12) + 1.0
    source = tensor_loader(xs, ys, batch_size=16, shuffle=True)
    target = tensor_loader(xt, torch.zeros(20, dtype=torch.long), batch_size=16, shuffle=True)
    for method in ("coral", "dann"):
        net = _net()
        start = [p.clone() for p in net.parameters()]
        history = fit_domain(net, source, target, method=method, epochs=2, device="cpu")
        assert len(history) == 2 and len(history.alignment_loss) == 2 and history.method == method
        assert all(0 <= r.train_acc <= 1 and r.train_loss > 0 for r in history)
        assert all(not torch.equal(a, b) for a, b in zip(start, net.parameters()))
        assert history.to_dict()["alignment_loss"] == history.alignment_loss
    # the hook that captured the features is gone afterwards
    assert not dict(net.named_modules())[head_name(net)]._forward_pre_hooks


def test_domain_accuracy_tells_apart_shifted_features_only() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 8, generator=g), torch.randn(150, 8, generator=g)
    assert domain_accuracy(a, b + 2.0) > 0.95
    assert 0.35 < domain_accuracy(a, b) < 0.65
    with pytest.raises(ValueError):
        domain_accuracy(a[:2], b)
