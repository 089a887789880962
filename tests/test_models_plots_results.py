"""LeNet-5, the shared conv-norm-activation block and name lookups, the error-analysis metrics, the plots and the results file."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.figure import Figure

from tlcourse.core.lookup import UnknownNameError
from tlcourse.course.results import load_results, save_results
from tlcourse.measure import plots
from tlcourse.measure.activations import capture_activations
from tlcourse.measure.metrics import confusion_matrix, per_class_accuracy, worst_mistakes
from tlcourse.models import (
    ConvBNAct,
    ConvNormAct,
    GoogLeNet,
    LeNet5,
    ResNet,
    ResNetConfig,
    ViTBaselineCNN,
    efficientnet_lite,
    lenet5,
    resnet,
    small_alexnet,
    small_googlenet,
    small_vgg,
    vit,
)
from tlcourse.training import History


@pytest.mark.parametrize("variant", ["classic", "modern"])
def test_lenet5_shapes_and_parameter_count(variant: str) -> None:
    model = lenet5(variant)
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    assert sum(p.numel() for p in model.parameters()) == 61_706
    maps = capture_activations(model, torch.zeros(1, 1, 32, 32), ["c1", "s2", "c3", "s4", "c5", "f6"])
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "c1": (1, 6, 28, 28), "s2": (1, 6, 14, 14), "c3": (1, 16, 10, 10),
        "s4": (1, 16, 5, 5), "c5": (1, 120, 1, 1), "f6": (1, 84),
    }


def test_lenet5_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="classic, modern"):
        lenet5("postmodern")
    with pytest.raises(ValueError, match="relu"):
        LeNet5(activation="gelu")  # type: ignore[arg-type]


def test_every_cnn_is_built_from_the_one_conv_norm_act_block() -> None:
    block = ConvNormAct(4, 8, 3)
    assert list(dict(block.named_children())) == ["conv", "bn", "act"] and block.conv.bias is None
    assert list(dict(ConvNormAct(4, 8, 3, stride=2, padding="same").named_children())) == ["pad", "conv", "bn", "act"]
    linear = ConvNormAct(4, 8, 1, batch_norm=False, activation=None)
    assert list(dict(linear.named_children())) == ["conv"] and linear.conv.bias is not None
    mobile = ConvBNAct(4, 8, 3)
    assert isinstance(mobile.act, torch.nn.ReLU6) and mobile.bn.eps == 1e-3 and mobile.bn.momentum == 0.01
    for model in (small_alexnet(), small_vgg(), small_googlenet(), ViTBaselineCNN(), efficientnet_lite("lite0")):
        assert any(isinstance(m, ConvNormAct) for m in model.modules()), type(model).__name__
    with pytest.raises(UnknownNameError, match="same, symmetric"):
        ConvNormAct(4, 8, 3, padding="valid")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "valid", "hint"),
    [
        (lambda: lenet5("modren"), "classic, modern", "modern"),
        (lambda: LeNet5(activation="gelu"), "tanh, relu, sigmoid", "relu"),  # type: ignore[arg-type]
        (lambda: small_alexnet(activation="tahn"), "relu, tanh, sigmoid", "tanh"),  # type: ignore[arg-type]
        (lambda: small_vgg("vgg12"), "vgg11, vgg13, vgg16, vgg19", None),
        (lambda: GoogLeNet(stages=("3a", "9z")), "3a, 3b, 4a", None),
        (lambda: resnet("resnet19"), "resnet18, resnet34, resnet50", None),
        (lambda: ResNet(ResNetConfig("basic", (1,), (8,), stem="cifr")), "imagenet, cifar", "cifar"),  # type: ignore[arg-type]
        (lambda: efficientnet_lite("lite9"), "lite0, lite1, lite2, lite3, lite4", None),
        (lambda: vit("tiyn"), "tiny, vit_b_16", "tiny"),
    ],
)
def test_unknown_names_list_the_valid_ones(build, valid: str, hint: str | None) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnknownNameError, match="Valid names") as caught:
        build()
    assert valid in str(caught.value) and isinstance(caught.value, ValueError) and isinstance(caught.value, KeyError)
    if hint:
        assert f"Did you mean {hint!r}?" in str(caught.value)


def test_capture_activations_names_the_valid_layers() -> None:
    with pytest.raises(KeyError, match="c1"):
        capture_activations(lenet5(), torch.zeros(1, 1, 32, 32), ["c9"])


def test_confusion_matrix_and_mistakes() -> None:
    targets = torch.tensor([0, 0, 1, 1, 2])
    probabilities = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.0, 0.4, 0.6], [0.1, 0.1, 0.8]])
    matrix = confusion_matrix(targets, probabilities.argmax(1), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert per_class_accuracy(matrix).tolist() == [0.5, 0.5, 1.0]
    assert worst_mistakes(targets, probabilities, k=5) == [(1, 0, 1, pytest.approx(0.7)), (3, 1, 2, pytest.approx(0.6))]


def test_every_plot_returns_a_figure() -> None:
    history = History.from_dict(
        {
            "records": [
                {"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5, "val_loss": 1.1 / e, "val_acc": 0.4, "lr": 0.1,
                 "seconds": 1.0, "images_per_sec": 100.0, "peak_gpu_mem_mb": None}
                for e in (1, 2, 3)
            ],
            "device": "cpu",
            "stopped_early": False,
            "best_epoch": 3,
        }
    )
    model = lenet5()
    figures = [
        plots.plot_history(history),
        plots.show_images(torch.rand(5, 1, 32, 32), [0, 1, 2, 3, 4], [str(i) for i in range(10)], predictions=[0, 1, 2, 3, 9]),
        plots.show_images(torch.rand(4, 3, 16, 16), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2)),
        plots.plot_filters(model.c1),
        plots.plot_feature_maps(torch.rand(1, 6, 28, 28)),
        plots.plot_confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), ["a", "b"], normalize=True),
    ]
    assert all(isinstance(f, Figure) for f in figures)
    assert len(figures[0].axes) == 2 and len(figures[0].axes[0].lines) >= 2  # train and validation curves
    # two runs in one figure: per panel, a dashed train and a solid validation line per run, one colour per run
    both = plots.plot_histories({"classic": history, "modern": history})
    lines = both.axes[1].lines
    assert len(both.axes) == 2 and len(lines) == 4
    assert [line.get_linestyle() for line in lines] == ["--", "-", "--", "-"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert "modern, validation" in [t.get_text() for t in both.axes[1].get_legend().get_texts()]
    wrong_title = figures[1].axes[4].title
    assert wrong_title.get_text() == "9 (true 4)" and wrong_title.get_color() == "red"
    assert sum(ax.get_visible() for ax in figures[3].axes) == 6  # six C1 filters


def test_results_are_written_as_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.json"
    record = save_results(path, "99_test", {"acc": torch.tensor(0.5), "shape": (1, 2), "bad": float("nan"), "where": tmp_path})
    on_disk = json.loads(path.read_text())
    assert on_disk == record
    assert load_results(path) == {"acc": 0.5, "shape": [1, 2], "bad": None, "where": str(tmp_path)}
    assert save_results(None, "99_test", {"acc": 1})["results"] == {"acc": 1}
