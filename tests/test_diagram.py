"""Layer graphs derived from the course's models (tlcourse.measure.graph) and their diagrams (tlcourse.measure.diagram)."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import FancyBboxPatch

from tlcourse.measure.diagram import KIND_COLOURS, draw_layer_graph
from tlcourse.measure.graph import KINDS, layer_graph
from tlcourse.measure.profile import count_parameters
from tlcourse.models import lenet5
from tlcourse.models.alexnet_vgg import small_alexnet, small_vgg
from tlcourse.models.inception import GOOGLENET_INCEPTIONS, Inception, small_googlenet
from tlcourse.models.mobilenet import MBConv
from tlcourse.models.resnet import BasicBlock, Bottleneck, resnet_small
from tlcourse.models.vit import EncoderBlock, vit


def boxes(fig) -> int:
    return sum(isinstance(p, FancyBboxPatch) for ax in fig.axes for p in ax.patches)


def test_lenet5_graph_is_the_papers_figure_2() -> None:
    graph = layer_graph(lenet5("classic"), (1, 1, 32, 32))
    assert graph.sequence() == [
        ("input", (1, 32, 32)),
        ("c1", (6, 28, 28)), ("act1", (6, 28, 28)), ("s2", (6, 14, 14)),
        ("c3", (16, 10, 10)), ("act3", (16, 10, 10)), ("s4", (16, 5, 5)),
        ("c5", (120, 1, 1)), ("act5", (120, 1, 1)), ("flatten", (120,)),
        ("f6", (84,)), ("act6", (84,)), ("output", (10,)),
    ]
    kinds = [node.kind for node in graph.nodes]
    assert kinds == ["input", "conv", "act", "pool", "conv", "act", "pool", "conv", "act", "other", "linear", "act", "linear"]
    assert [graph[n].parameters for n in ("c1", "c3", "c5", "f6", "output")] == [156, 2416, 48120, 10164, 850]
    assert sum(node.parameters for node in graph.nodes) == 61_706
    assert all(node.inputs == (previous.name,) for previous, node in zip(graph.nodes, graph.nodes[1:]))
    assert graph.skips() == []
    assert set(kinds) <= set(KINDS) and set(KINDS) <= set(KIND_COLOURS)


def test_inception_module_has_four_parallel_branches_into_one_concatenation() -> None:
    graph = layer_graph(Inception(192, GOOGLENET_INCEPTIONS["3a"]), (1, 192, 28, 28))
    assert graph.successors("input") == ["branch1", "branch2.0", "branch3.0", "branch4.0"]
    concat = graph.nodes[-1]
    assert concat.kind == "merge" and concat.label == "concat"
    assert concat.inputs == ("branch1", "branch2.1", "branch3.1", "branch4.1")
    assert [graph[i].shape[0] for i in concat.inputs] == [64, 128, 32, 32]
    assert concat.shape == (256, 28, 28)
    assert "5x5" in graph["branch3.1"].label and graph["branch4.0"].kind == "pool"


def test_residual_blocks_show_their_shortcut() -> None:
    basic = layer_graph(BasicBlock(64, 64), (1, 64, 16, 16))
    assert basic.skips() == [("input", "add", ())]  # identity
    assert basic["add"].inputs == ("bn2", "input")
    bottleneck = layer_graph(Bottleneck(64, 128, stride=2), (1, 64, 16, 16))
    assert bottleneck.skips() == [("input", "add", ("downsample.0", "downsample.1"))]  # projection
    assert bottleneck["add"].shape == (512, 8, 8)
    plain = layer_graph(BasicBlock(64, 64, residual=False), (1, 64, 16, 16))
    assert plain.skips() == [] and all(node.kind != "merge" for node in plain.nodes)
    mbconv = layer_graph(MBConv(24, 24, se_ratio=0.25), (1, 24, 16, 16))
    assert mbconv.skips() == [("input", "add", ())]
    assert [n.name for n in mbconv.nodes] == ["input", "expand", "depthwise", "se", "project", "add"]
    assert layer_graph(MBConv(16, 24, stride=2), (1, 16, 16, 16)).skips() == []
    encoder = layer_graph(EncoderBlock(64, 4, 2.0), (1, 50, 64))
    assert [(fork, merge) for fork, merge, _ in encoder.skips()] == [("input", "add"), ("add", "add_1")]


def test_networks_at_block_level() -> None:
    resnet = layer_graph(resnet_small(20, in_channels=1), (1, 1, 32, 32), leaves=[BasicBlock])
    blocks = [node for node in resnet.nodes if node.label.endswith("BasicBlock")]
    assert len(blocks) == 9 and [b.shape for b in blocks][::3] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    googlenet = layer_graph(small_googlenet(10, 1, 0.125), (1, 1, 32, 32), leaves=[Inception])
    assert sum(node.label.endswith("Inception") for node in googlenet.nodes) == 5
    transformer = layer_graph(vit("tiny"), (1, 1, 28, 28), leaves=[EncoderBlock])
    names = [node.name for node in transformer.nodes]
    assert names[:2] == ["input", "patch_embed"] and {"cls_token", "pos_embedding"} <= set(names)
    assert transformer["blocks.3"].shape == (50, 64) and transformer.nodes[-1].shape == (10,)
    assert transformer["blocks.0"].kind == "attention"
    with pytest.raises(ValueError, match="layer9"):
        layer_graph(resnet_small(20), (1, 3, 32, 32), leaves=["layer9"])


def test_tracing_leaves_modes_and_random_generators_alone() -> None:
    model = small_alexnet(10, 1, width=0.125, batch_norm=True).train()
    model.features[0].eval()
    before = torch.get_rng_state()
    graph = layer_graph(model, (1, 1, 32, 32))
    assert torch.equal(before, torch.get_rng_state())
    assert model.training and not model.features[0].training and model.features[2].training
    assert sum(node.parameters for node in graph.nodes) == count_parameters(model)


@pytest.mark.parametrize(
    ("build", "shape", "leaves"),
    [
        (lambda: lenet5("modern"), (1, 1, 32, 32), []),
        (lambda: Inception(192, GOOGLENET_INCEPTIONS["3a"]), (1, 192, 28, 28), []),
        (lambda: Bottleneck(64, 64), (1, 64, 56, 56), []),
        (lambda: small_vgg("vgg11", 10, 1, width=0.125), (1, 1, 32, 32), []),  # wraps into two columns
        (lambda: vit("tiny"), (1, 1, 28, 28), [EncoderBlock]),
    ],
)
def test_figure_has_one_box_per_node_and_draws_fast(build, shape, leaves) -> None:
    start = time.perf_counter()
    graph = layer_graph(build(), shape, leaves=leaves)
    fig = draw_layer_graph(graph, title="test", max_rows=12)
    fig.canvas.draw()
    seconds = time.perf_counter() - start
    assert boxes(fig) == len(graph)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert all(node.label in texts for node in graph.nodes)
    plt.close(fig)
    assert seconds < 2.0


def test_lenet_figure_labels_shapes_and_parameters() -> None:
    fig = draw_layer_graph(layer_graph(lenet5("modern"), (1, 1, 32, 32)))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "6@28x28, 156 params" in texts and "16@5x5" in texts and "10, 850 params" in texts
    assert boxes(fig) == 13
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["input", "conv", "pool", "act", "linear"]
    plt.close(fig)
