# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Inception: going wider, and the 1x1 bottleneck
#
# VGG went deeper by stacking 3x3 convolutions, and paid with 138 million parameters. In the same 2014
# ImageNet challenge, **GoogLeNet** (Christian Szegedy and colleagues at Google, *Going Deeper with
# Convolutions*) won with 22 layers and **6.6 million** parameters, 20 times fewer. Its building block,
# the **Inception module**, looks at the same input through several window sizes at once, and it is
# affordable only because of one cheap trick: **1x1 convolutions that shrink the channels first**.
#
# **In this lesson you will**
#
# 1. build the Inception module from four small branches (1x1, 3x3, 5x5, pooling) concatenated;
# 2. measure what the 1x1 bottleneck saves, in FLOPs and parameters, in GoogLeNet's module 3a
#    (192 channels at 28x28);
# 3. assemble a small GoogLeNet from a configuration and train it on 32x32 images;
# 4. factorise its convolutions as Inception v2/v3 did (two 3x3 for a 5x5, $1 \times n$ then $n \times 1$, a cheaper
#    grid reduction), with costs and receptive fields computed, and see what label smoothing and a
#    batch-normalised auxiliary classifier change;
# 5. follow Xception's argument from the Inception module to the depthwise separable convolution of lesson 05.

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
DATASET = "auto"  # "fashion_mnist" or "cifar10" when online, "mnist5k" bundled offline, or "auto"
EPOCHS = None  # None means 6 on mnist5k and 5 on the full datasets, 3 in smoke mode
WIDTH = None  # fraction of the paper's filters, None means 0.25 and 0.125 in smoke mode
TRAIN_PER_CLASS = None  # None means every training image, 40 per class in smoke mode
FACTOR_CHANNELS = 64  # channels in and out of the factorised convolutions compared below
FACTOR_SIZE = 28  # side of their feature map
LABEL_SMOOTHING = 0.1  # epsilon of the label-smoothing example (the paper's value)

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torchvision
from IPython.display import Markdown, display

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.plots import plot_history
from tlcourse.measure.profile import count_flops, count_parameters, format_trace, trace_shapes
from tlcourse.measure.receptive_field import empirical_receptive_field, receptive_field
from tlcourse.measure.tables import markdown_table
from tlcourse.models.inception import (
    GOOGLENET_INCEPTIONS,
    AuxClassifier,
    FactorizedConv,
    FactorizedInception,
    GroupedInception,
    Inception,
    XceptionBlock,
    grid_reduction_alternatives,
    small_googlenet,
)
from tlcourse.training import evaluate, fit

lesson_start = time.perf_counter()
if SMOKE:
    torch.set_num_threads(1)  # these tiny models run faster, and steadier, on one thread
seed_everything(SEED)
device = get_device(DEVICE)
print("device:", describe_device(device))

# %% [markdown]
# ## The idea: several window sizes at once
#
# Which filter size should a layer use? Small windows see texture, large ones see parts. The Inception
# module declines to choose: it runs four branches **in parallel on the same input** and concatenates
# their outputs along the channel axis.
#
# ```
#                      input (192 @ 28x28)
#       ┌───────────────┬──────┴────────┬─────────────────┐
#    1x1 conv       1x1 conv         1x1 conv         3x3 max pool
#    (64)           (96)             (16)             (stride 1)
#       │               │                │                 │
#       │           3x3 conv         5x5 conv          1x1 conv
#       │           (128)            (32)              (32)
#       └───────────────┴──────┬─────────┴─────────────────┘
#                concatenate: 64 + 128 + 32 + 32 = 256 @ 28x28
# ```
#
# Every branch keeps the 28x28 size ("same" padding, pooling at stride 1), so the outputs stack. The
# first row of 1x1 convolutions is the **bottleneck**: a 1x1 convolution mixes channels at each pixel
# and, with fewer filters than input channels, compresses 192 channels to 96 or 16 before the expensive
# 3x3 and 5x5 windows slide over them. Without it (the paper's "naive" module) the 3x3 and 5x5 act on all
# 192 channels and the pooling branch passes all 192 channels through. The module's code, from
# `tlcourse/models/inception.py`:

# %%
import inspect

print(inspect.getsource(Inception.__init__))

# %% [markdown]
# ## Measuring the bottleneck
#
# Module 3a with the paper's filters (table 1 of the paper, `GOOGLENET_INCEPTIONS["3a"]`), without batch
# normalisation (as in 2014), on one 192 @ 28x28 input: FLOPs (a multiply-add counts as 2) and parameters
# of each branch, with and without the 1x1 reductions.

# %%
spec = GOOGLENET_INCEPTIONS["3a"]
shape = (1, 192, 28, 28)
print(spec)
modules = {"with 1x1 reductions": Inception(192, spec, reduce=True, batch_norm=False),
           "naive (no reductions)": Inception(192, spec, reduce=False, batch_norm=False)}
branch_names = ["1x1", "3x3", "5x5", "pool"]
x = torch.randn(shape)
bottleneck = {}
for name, module in modules.items():
    per_branch = [count_flops(getattr(module, f"branch{i}"), x) for i in range(1, 5)]
    bottleneck[name] = {
        "flops": count_flops(module, x),
        "parameters": count_parameters(module),
        "out_channels": module(x).shape[1],
        "branch_flops": dict(zip(branch_names, per_branch)),
        "branch_parameters": {b: count_parameters(getattr(module, f"branch{i}")) for i, b in enumerate(branch_names, 1)},
    }
print(f"{'module 3a':<24}{'MFLOPs':>8}{'parameters':>12}{'out channels':>14}")
for name, r in bottleneck.items():
    print(f"{name:<24}{r['flops'] / 1e6:>8.0f}{r['parameters']:>12,}{r['out_channels']:>14}")
with_red, naive = bottleneck["with 1x1 reductions"], bottleneck["naive (no reductions)"]
flops_ratio = naive["flops"] / with_red["flops"]
params_ratio = naive["parameters"] / with_red["parameters"]
print(f"the reductions cut FLOPs {flops_ratio:.2f}x and parameters {params_ratio:.2f}x")
five = naive["branch_flops"]["5x5"] / with_red["branch_flops"]["5x5"]
print(f"the 5x5 branch alone: {naive['branch_flops']['5x5'] / 1e6:.0f} -> {with_red['branch_flops']['5x5'] / 1e6:.0f} MFLOPs ({five:.1f}x)")

fig, ax = plt.subplots(figsize=(7, 3.5))
width = 0.38
positions = range(len(branch_names))
for offset, (name, r) in zip((-width / 2, width / 2), bottleneck.items()):
    ax.bar([p + offset for p in positions], [r["branch_flops"][b] / 1e6 for b in branch_names], width, label=name)
ax.set_xticks(list(positions), branch_names)
ax.set(ylabel="MFLOPs", title="Inception 3a at 192 @ 28x28: FLOPs per branch")
ax.legend();

# %%
display(Markdown(
    f"The 5x5 branch shows the trick best: 5x5 windows over 192 channels cost 32 · 192 · 25 = 153,600 "
    f"multiply-adds per pixel; first squeezing to 16 channels costs 16 · 192 + 32 · 16 · 25 = 15,872, about "
    f"ten times fewer (the ratio of the 5x5 bars above, counted: **{five:.1f}x**). The whole module is "
    f"**{flops_ratio:.2f}x** cheaper in FLOPs and has **{params_ratio:.2f}x** fewer parameters, and the saving "
    f"compounds: the naive module's output has {naive['out_channels']} channels instead of "
    f"{with_red['out_channels']} (the pooling branch passes all 192 through), so the *next* module would be "
    f"more expensive still, and widths would grow module after module."
))

# %% [markdown]
# A detail worth knowing if you read torchvision's code: its `GoogLeNet` uses a **3x3** convolution in
# the branch the paper calls 5x5 (a deviation kept so that its pretrained weights keep loading), so its
# module 3a has slightly fewer parameters than the paper's:

# %%
with torch.device("meta"):
    tv_googlenet = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    ours_3a_bn = Inception(192, spec)  # with batch normalisation, like torchvision's
tv_3a = tv_googlenet.inception3a
print(f"torchvision inception3a: {count_parameters(tv_3a):,} parameters, '5x5' branch kernel {tv_3a.branch3[1].conv.kernel_size}")
print(f"ours (paper, 5x5, with batch norm): {count_parameters(ours_3a_bn):,} parameters")
print(f"full torchvision GoogLeNet: {count_parameters(tv_googlenet):,} parameters, "
      f"{count_flops(tv_googlenet, (1, 3, 224, 224)) / 1e9:.2f} GFLOPs at 224x224")

# %% [markdown]
# ## A small GoogLeNet
#
# `GoogLeNet` assembles a network from a list of module names and pools: a stem of 3x3 convolutions,
# Inception modules whose filters come from the paper's table (times `WIDTH`), global average pooling
# instead of big fully connected layers (another GoogLeNet idea that saves parameters), and one linear
# layer. Each module uses batch normalisation (torchvision's GoogLeNet does too; the 2014 original did
# not). The paper's two auxiliary classifiers, which helped the deep network train, are left out.

# %%
# "auto": Fashion-MNIST when it is available, else the bundled mnist5k digits (`data.load_small_images??`)
bundle = data.load_small_images(DATASET, smoke=SMOKE, seed=SEED, per_class=TRAIN_PER_CLASS)
DATASET, in_channels = bundle.name, bundle.info.channels
EPOCHS = 3 if SMOKE else (EPOCHS or (6 if DATASET == "mnist5k" else 5))
WIDTH = WIDTH or (0.125 if SMOKE else 0.25)
print(bundle.note)
print(f"this run: {len(bundle.train)} train / {len(bundle.val)} val / {len(bundle.test)} test images of "
      f"{in_channels}x32x32, {EPOCHS} epochs, width {WIDTH} of the paper's filters")

seed_everything(SEED)
model = small_googlenet(len(bundle.classes), in_channels, width=WIDTH)
print(format_trace(trace_shapes(model, (1, in_channels, 32, 32), depth=2)))
parameters = count_parameters(model)
flops = count_flops(model, (1, in_channels, 32, 32))
print(f"{parameters:,} parameters, {flops / 1e6:.1f} MFLOPs per image")

# %% [markdown]
# Drawn from the modules (`tlcourse.measure.graph.layer_graph`, `tlcourse.measure.diagram.draw_layer_graph`): module
# 3a with the paper's filters, its four branches side by side into the concatenation, then the small GoogLeNet
# with each Inception module as one box.

# %%
from tlcourse.measure.diagram import draw_layer_graph
from tlcourse.measure.graph import layer_graph

draw_layer_graph(layer_graph(modules["with 1x1 reductions"], (1, 192, 28, 28)), title="Inception 3a (paper's filters)")
draw_layer_graph(layer_graph(model, (1, in_channels, 32, 32), leaves=[Inception]), title=f"small GoogLeNet, width {WIDTH}");

# %%
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
history = fit(model, bundle.train_loader, bundle.val_loader, epochs=EPOCHS, optimizer=optimizer,
              scheduler="onecycle", device=device, progress=False)
test = evaluate(model, bundle.test_loader, device=device)
chance = 1 / len(bundle.classes)
print(f"small GoogLeNet on {DATASET}: test accuracy {test.accuracy:.3f} on {test.n} images (chance {chance:.2f}), "
      f"trained in {history.total_seconds:.1f} s")
plot_history(history, title=f"Small GoogLeNet on {DATASET}");

# %% [markdown]
# In smoke mode the network sees 400 images for three epochs, so it is well above chance but far from
# good; the full lesson trains on every image. Compare with lesson 02's small AlexNet and VGG at the
# same `WIDTH`: the Inception network has fewer parameters for the same compute, because global average
# pooling replaces their big fully connected head.
#
# ## Inception v2 and v3: factorising the convolutions
#
# A year later the same group (Szegedy, Vanhoucke, Ioffe, Shlens and Wojna, *Rethinking the Inception
# Architecture for Computer Vision*, 2015) made the modules cheaper again, without shrinking what each
# output pixel sees. Their main tool is **factorisation**: replace one big convolution by a chain of small
# ones with the same receptive field.
#
# * **Two 3x3 for a 5x5** (lesson 02's VGG argument, applied inside the module). A 5x5 output pixel sees a
#   5x5 window; so does a pixel after two stacked 3x3. With C channels in and out, per output pixel the
#   5x5 costs $25C^2$ multiply-adds and the pair $2 \cdot 9C^2$: a ratio of $18/25$ (the paper's "28%
#   reduction").
# * **Asymmetric**: an $n \times n$ convolution becomes a $1 \times n$ followed by an $n \times 1$: $2n$
#   instead of $n^2$ weights per channel pair, a ratio of $2/n$: $6/9$ for a 3x3 (the paper's "33%
#   cheaper"), $2/7$ for a 7x7. The paper uses $n = 7$ on its medium (17x17) grids, where it found this
#   works well, and notes that factorising a 3x3 into two 2x2 would save only 11%.
#
# `FactorizedConv` builds each variant from our `ConvNormAct` blocks (every factor keeps a ReLU: the paper
# found that better than a linear first factor). We count the cost of each on one
# `FACTOR_CHANNELS` @ `FACTOR_SIZE` x `FACTOR_SIZE` map and check the receptive fields twice: with the
# recurrence of `receptive_field` and empirically, from the gradient of one output pixel
# (`empirical_receptive_field`).

# %%
print(inspect.getsource(FactorizedConv.__init__).split('"""')[-1])
C, S = FACTOR_CHANNELS, FACTOR_SIZE
factor_shape = (1, C, S, S)
pairs = [(5, "stacked"), (3, "asymmetric"), (7, "asymmetric"), (7, "stacked")]
factorizations = []
for k, kind in pairs:
    full, cheap = FactorizedConv(C, C, k, "none", batch_norm=False), FactorizedConv(C, C, k, kind, batch_norm=False)
    kernels = [(conv.kernel_size[0], conv.kernel_size[1]) for conv in cheap.modules() if isinstance(conv, torch.nn.Conv2d)]
    factorizations.append({
        "kernel": k, "factorization": kind, "layers": [f"{a}x{b}" for a, b in kernels],
        "flops_full": count_flops(full, factor_shape), "flops_factorized": count_flops(cheap, factor_shape),
        "params_full": count_parameters(full), "params_factorized": count_parameters(cheap),
        "predicted_ratio": sum(a * b for a, b in kernels) / k**2,
        "receptive_field_rule": receptive_field([a for a, _ in kernels]),  # rows; the columns are alike
        "receptive_field_full": empirical_receptive_field(full, (C, 3 * k, 3 * k), seed=SEED),
        "receptive_field_factorized": empirical_receptive_field(cheap, (C, 3 * k, 3 * k), seed=SEED),
        "same_output_shape": full(torch.randn(factor_shape)).shape == cheap(torch.randn(factor_shape)).shape,
    })
for r in factorizations:
    r["flops_ratio"] = r["flops_factorized"] / r["flops_full"]
    r["params_ratio"] = r["params_factorized"] / r["params_full"]
print(format_trace(trace_shapes(FactorizedConv(C, C, 7, "asymmetric"), factor_shape, depth=2)))

display(Markdown(markdown_table(
    ["replaced", "by", "MFLOPs before → after", "parameters before → after", "FLOPs ratio", "formula",
     "receptive field (rule / measured before / after)"],
    [[f"{r['kernel']}x{r['kernel']}", " + ".join(r["layers"]), f"{r['flops_full'] / 1e6:.1f} → {r['flops_factorized'] / 1e6:.1f}",
      f"{r['params_full']:,} → {r['params_factorized']:,}", f"**{r['flops_ratio']:.3f}**", f"{r['predicted_ratio']:.3f}",
      f"{r['receptive_field_rule']} / {r['receptive_field_full']} / {r['receptive_field_factorized']}"] for r in factorizations],
    align="llrrrrl",
)))

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
names = [f"{r['kernel']}x{r['kernel']} → {' + '.join(r['layers'])}" for r in factorizations]
ax.barh(names, [r["flops_ratio"] for r in factorizations], label="counted (count_flops)")
ax.scatter([r["predicted_ratio"] for r in factorizations], names, color="black", zorder=3, label="sum of kernel areas / k²")
ax.axvline(1, color="grey", lw=0.8)
ax.set(xlabel="factorised / full FLOPs", title=f"Same receptive field, fewer FLOPs ({C} → {C} channels)")
ax.invert_yaxis()
ax.legend(loc="lower right");

# %%
five_three = factorizations[0]
three_asym = factorizations[1]
display(Markdown(
    f"Counted, two 3x3 cost **{five_three['flops_ratio']:.3f}** of a 5x5 ({five_three['flops_ratio'] * 25:.1f}/25) and "
    f"1x3 + 3x1 cost **{three_asym['flops_ratio']:.3f}** of a 3x3 ({three_asym['flops_ratio'] * 9:.1f}/9), in FLOPs and in "
    f"parameters alike: the ratios are pure arithmetic, independent of the map size (biases and batch norm "
    f"are not counted). Every output pixel still sees the same window: "
    f"{', '.join(str(r['receptive_field_factorized']) for r in factorizations)} pixels measured after "
    f"factorising against {', '.join(str(r['receptive_field_full']) for r in factorizations)} before. "
    f"What is lost is generality: a stack of small kernels can express fewer functions than one big kernel "
    f"(without the ReLU between them, a 1 x n then n x 1 pair can only express kernels of limited rank) — the paper's "
    f"bet, won on ImageNet, is that the depth and width bought with the savings matter more."
))

# %% [markdown]
# ### The factorised modules
#
# `FactorizedInception` is the module of the paper's figures 5 and 6: the 5x5 branch becomes two 3x3
# (figure 5); with `asymmetric=True` every n x n becomes $1 \times n$ then $n \times 1$ (figure 6). Applied to module 3a
# with the same filters (the factorised pairs keep the reduced channels inside and produce the branch's
# output channels at the end):

# %%
module_rows = {}
for name, module in {
    "v1 (GoogLeNet, 5x5)": Inception(192, spec, batch_norm=False),
    "figure 5: 5x5 -> two 3x3": FactorizedInception(192, spec, kernel_size=3, batch_norm=False),
    "figure 6: every 3x3 -> 1x3 + 3x1": FactorizedInception(192, spec, kernel_size=3, asymmetric=True, batch_norm=False),
}.items():
    module_rows[name] = {
        "flops": count_flops(module, x), "parameters": count_parameters(module), "out_channels": module(x).shape[1],
        "branch_flops": dict(zip(branch_names, [count_flops(getattr(module, f"branch{i}"), x) for i in range(1, 5)])),
    }
v1_flops = module_rows["v1 (GoogLeNet, 5x5)"]["flops"]
display(Markdown(markdown_table(
    ["module 3a (192 @ 28x28)", "MFLOPs", "parameters", "out channels", "MFLOPs of the 3x3 / 5x5 branches", "vs v1"],
    [[name, f"{r['flops'] / 1e6:.0f}", f"{r['parameters']:,}", r["out_channels"],
      f"{r['branch_flops']['3x3'] / 1e6:.0f} / {r['branch_flops']['5x5'] / 1e6:.0f}", f"{r['flops'] / v1_flops:.2f}"]
     for name, r in module_rows.items()],
    align="lrrrlr",
)))
print(format_trace(trace_shapes(FactorizedInception(192, spec, kernel_size=3, asymmetric=True), x, depth=2)))
draw_layer_graph(layer_graph(FactorizedInception(192, spec, kernel_size=3, asymmetric=True), x),
                 title="Inception v3 module (figure 6): every 3x3 as 1x3 + 3x1")

# %%
fig5 = module_rows["figure 5: 5x5 -> two 3x3"]
fig6 = module_rows["figure 6: every 3x3 -> 1x3 + 3x1"]
display(Markdown(
    f"In module 3a the 5x5 branch was already thin (16 channels after its reduction), so replacing it by two 3x3 "
    f"saves little of the whole: the module costs **{fig5['flops'] / v1_flops:.2f}** of v1. Most of 3a's "
    f"multiply-adds sit in the 3x3 branch ({module_rows['v1 (GoogLeNet, 5x5)']['branch_flops']['3x3'] / v1_flops:.0%} "
    f"of them), and factorising it asymmetrically brings the module to **{fig6['flops'] / v1_flops:.2f}** of v1, with "
    f"the same {fig6['out_channels']} output channels. Inception v3 spends such savings on more modules and wider ones."
))

# %% [markdown]
# ### Reducing the grid without a bottleneck
#
# Between the stages GoogLeNet halves the grid with a max pool. To keep the information, the channels must
# grow when the grid shrinks, say from k channels at d x d to 2k at d/2 x d/2. The two obvious orders are
# either expensive (convolve on the large grid, then pool) or squeeze the representation through k channels
# on the small grid before widening it (pool, then convolve), which the paper calls a *representational
# bottleneck*. Its answer (figure 10): a stride-2 convolution and a stride-2 pool **side by side**, their
# outputs concatenated (`GridReduction`). Costs for k = `FACTOR_CHANNELS` at d = `FACTOR_SIZE`:

# %%
grid_rows = {}
for name, module in grid_reduction_alternatives(C, 2 * C, batch_norm=False).items():
    out = module(torch.randn(factor_shape))
    grid_rows[name] = {"flops": count_flops(module, factor_shape), "parameters": count_parameters(module),
                       "output_shape": list(out.shape[1:])}
expensive = grid_rows["conv then pool"]["flops"]
for name, r in grid_rows.items():
    print(f"{name:<16} output {r['output_shape']}  {r['flops'] / 1e6:6.1f} MFLOPs ({r['flops'] / expensive:.3f} of conv then pool), "
          f"{r['parameters']:,} parameters")
display(Markdown(
    f"All three produce {grid_rows['parallel (v3)']['output_shape'][0]} channels at "
    f"{grid_rows['parallel (v3)']['output_shape'][1]}x{grid_rows['parallel (v3)']['output_shape'][2]}. "
    f"Pooling first costs {grid_rows['pool then conv']['flops'] / expensive:.2f} of convolving first "
    f"(the convolution runs on a quarter of the pixels); the parallel reduction costs "
    f"{grid_rows['parallel (v3)']['flops'] / expensive:.3f}, half as much again, because half of its output channels "
    f"come from the pool for free — and its convolution still sees the full-resolution input, where pooling first "
    f"would leave it only the pooled map."
))

# %% [markdown]
# ### The auxiliary classifier, batch-normalised
#
# GoogLeNet attached two small classifiers to intermediate modules (4a and 4d) and added their losses to
# the main one with weight 0.3, to push gradient into the lower layers. The v3 paper found that they do
# not speed up early training; they help at the end, as regularisers, and more so when the fully connected
# layer of the side classifier is batch-normalised too ("BN-auxiliary"). `AuxClassifier` follows GoogLeNet's
# recipe (average pool to 4x4, a 1x1 convolution to 128 channels, a 1,024-unit fully connected layer, dropout
# 70%, a linear layer), with `batch_norm_fc` for the v3 change. On module 4d's output (528 @ 14x14 in the paper):

# %%
aux = AuxClassifier(528, num_classes=1000)
print(format_trace(trace_shapes(aux, (2, 528, 14, 14))))
aux_parameters = count_parameters(aux)
aux_plain_parameters = count_parameters(AuxClassifier(528, num_classes=1000, batch_norm_fc=False))
display(Markdown(
    f"The side classifier alone has {aux_parameters / 1e6:.2f} million parameters (almost all in its fully connected "
    f"layers); batch-normalising its 1,024 units changes that by {aux_parameters - aux_plain_parameters:+,} "
    f"(a scale and a shift per unit, the bias dropped). It is used only while training: at test time the "
    f"network answers with its main head, and the side classifier can be deleted."
))

# %% [markdown]
# ### Label smoothing
#
# The other regulariser of the v3 paper acts on the targets. Cross-entropy against a one-hot target keeps
# rewarding a larger gap between the correct logit and the others, without end: the network becomes
# over-confident. **Label smoothing** mixes the one-hot target with the uniform distribution over the K classes,
#
# $$q'(k) = (1 - \varepsilon)\,\delta_{k,y} + \frac{\varepsilon}{K},$$
#
# (the paper used ε = 0.1 on ImageNet's K = 1,000 classes and reports a gain of about 0.2% in top-1 and top-5
# error). In PyTorch it is one argument, `nn.CrossEntropyLoss(label_smoothing=ε)`. On three made-up
# predictions over ten classes, what changes?

# %%
K = 10
logits = torch.zeros(3, K)
logits[0, 0] = 8.0  # confident and right
logits[1, 0] = 2.0  # unsure but right
logits[2, 1] = 8.0  # confident and wrong
labels = torch.zeros(3, dtype=torch.long)
plain = torch.nn.CrossEntropyLoss(reduction="none")(logits, labels)
smooth = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=LABEL_SMOOTHING)(logits, labels)
log_p = logits.log_softmax(1)
by_hand = (1 - LABEL_SMOOTHING) * plain + LABEL_SMOOTHING * (-log_p.mean(1))  # the mixed target, written out
assert torch.allclose(smooth, by_hand)
for name, a, b in zip(["confident, right", "unsure, right", "confident, wrong"], plain, smooth):
    print(f"{name:<18} loss {a:.3f} -> {b:.3f} with label_smoothing={LABEL_SMOOTHING}")

# the best logit gap z (correct logit z, the others 0): without smoothing there is none, the loss falls forever
gaps = torch.linspace(0, 20, 2001, dtype=torch.float64)
grid_logits = torch.zeros(len(gaps), K, dtype=torch.float64)
grid_logits[:, 0] = gaps
grid_labels = torch.zeros(len(gaps), dtype=torch.long)
curves = {eps: torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=eps)(grid_logits, grid_labels)
          for eps in (0.0, LABEL_SMOOTHING)}
best_gap = gaps[curves[LABEL_SMOOTHING].argmin()].item()
formula_gap = math.log((1 - LABEL_SMOOTHING + LABEL_SMOOTHING / K) / (LABEL_SMOOTHING / K))
best_probability = torch.softmax(torch.tensor([best_gap] + [0.0] * (K - 1), dtype=torch.float64), 0)[0].item()

fig, ax = plt.subplots(figsize=(6, 3.2))
for eps, curve in curves.items():
    ax.plot(gaps, curve, label=f"label_smoothing={eps}")
ax.axvline(best_gap, color="grey", ls="--", lw=0.8)
ax.set(xlabel="logit gap z of the correct class", ylabel="loss", title=f"Cross-entropy with and without smoothing (K={K})")
ax.legend();

# %%
label_smoothing = {
    "epsilon": LABEL_SMOOTHING, "classes": K,
    "plain_loss": plain.tolist(), "smoothed_loss": smooth.tolist(),
    "best_gap": best_gap, "formula_gap": formula_gap, "best_probability": best_probability,
    "plain_loss_at_largest_gap": curves[0.0][-1].item(),
}
display(Markdown(
    f"With ε = {LABEL_SMOOTHING} the confident right answer is no longer free: its loss rises from {plain[0]:.4f} to "
    f"{smooth[0]:.3f}, because the smoothed target also asks for probability on the other classes. The confident "
    f"wrong answer is punished slightly less ({plain[2]:.2f} → {smooth[2]:.2f}). Without smoothing the loss keeps "
    f"falling as the gap grows (down to {curves[0.0][-1]:.1e} at z = 20); with smoothing it has a minimum at "
    f"z = {best_gap:.2f} (the formula log((1 − ε + ε/K)/(ε/K)) gives {formula_gap:.2f}), where the network gives the "
    f"correct class probability {best_probability:.3f}: exactly the smoothed target 1 − ε + ε/K. The logits stop "
    f"growing, and the network is not pushed towards certainty it cannot have."
))

# %% [markdown]
# ## Xception: Inception taken to the extreme
#
# François Chollet (*Xception: Deep Learning with Depthwise Separable Convolutions*, 2017) reread the
# Inception module. Its branches first map the input with 1x1 convolutions, then look for spatial patterns
# with 3x3s, each on its own slice of channels. Written as one 1x1 convolution followed by a 3x3 that sees
# `groups` separate segments of the channels (`GroupedInception`), the module is one point on a line:
# `groups=1` is an ordinary 1x1 + 3x3, a few groups are a few Inception towers, and one group per channel is
# the **extreme Inception**: a spatial filter per channel after a 1x1 that mixes them. That is a
# *depthwise separable convolution* with its two steps in the other order — the building block of lesson 05.

# %%
groups_list = [1, 4, 16, C]
grouped = {g: count_flops(GroupedInception(C, g, batch_norm=False), factor_shape) for g in groups_list}
for g, f in grouped.items():
    print(f"1x1 + 3x3 in {g:>3} group(s) of {C // g:>2} channels: {f / 1e6:6.2f} MFLOPs ({f / grouped[1]:.3f} of one tower)")

# Xception's middle flow: 8 residual blocks of 3 separable convolutions at 728 @ 19x19
xception_shape = (1, 728, 19, 19)
with torch.device("meta"):
    separable_block, standard_block = XceptionBlock(728), XceptionBlock(728, standard=True)
    tv_inception_v3 = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
xception = {
    "separable_flops": count_flops(separable_block, xception_shape), "separable_parameters": count_parameters(separable_block),
    "standard_flops": count_flops(standard_block, xception_shape), "standard_parameters": count_parameters(standard_block),
    "grouped_flops": {str(g): f for g, f in grouped.items()},
    "torchvision_inception_v3_parameters": count_parameters(tv_inception_v3),
    "torchvision_inception_v3_flops": count_flops(tv_inception_v3, (1, 3, 299, 299)),
}
xception["flops_ratio"] = xception["separable_flops"] / xception["standard_flops"]
display(Markdown(
    f"Going from one tower to one group per channel cuts this layer's FLOPs to **{grouped[C] / grouped[1]:.3f}** "
    f"of one tower (the 1x1 now dominates). One block of Xception's middle flow (three separable convolutions at "
    f"728 @ 19x19, with a residual connection) has {xception['separable_parameters'] / 1e6:.2f} million parameters "
    f"and {xception['separable_flops'] / 1e9:.2f} GFLOPs; the same block with ordinary 3x3 convolutions would have "
    f"{xception['standard_parameters'] / 1e6:.1f} million and {xception['standard_flops'] / 1e9:.1f} GFLOPs "
    f"(**{xception['flops_ratio']:.3f}** of the cost). For comparison, torchvision's Inception v3 (no auxiliary "
    f"classifier) has {xception['torchvision_inception_v3_parameters'] / 1e6:.1f} million parameters and "
    f"{xception['torchvision_inception_v3_flops'] / 1e9:.1f} GFLOPs at 299x299, counted on the meta device."
))
draw_layer_graph(layer_graph(XceptionBlock(728), xception_shape),
                 title="one block of Xception's middle flow: three separable 3x3 convolutions and a residual");

# %% [markdown]
# Chollet built Xception as a linear stack of 36 such separable convolutions with residual connections, at
# about the size of Inception v3 (22.9 against 23.6 million parameters in his table 3), and it was slightly
# more accurate on ImageNet (top-1 0.790 against 0.782) and clearly better on Google's larger JFT data set:
# with the same budget of parameters, the separable layers used them better. He also found it best to put no
# activation between the depthwise and the pointwise step, which `XceptionBlock` follows. Lesson 05 measures
# depthwise separable convolutions in detail and builds MobileNet and EfficientNet from them.
#
# ## Summary
#
# * An Inception module runs 1x1, 3x3, 5x5 and pooling branches side by side and concatenates them.
# * 1x1 convolutions before the 3x3 and 5x5 (and after the pooling) make it affordable: in module 3a they
#   cut FLOPs and parameters more than twice (measured above) and keep the output from growing.
# * GoogLeNet: 22 layers, 6.6 million parameters and 3 GFLOPs against VGG-16's 138 million and 31 GFLOPs,
#   for about the same ImageNet accuracy (lesson 02's timeline).
# * Inception v2/v3 factorise: two 3x3 for a 5x5 (18/25 of the cost), $1 \times n$ then $n \times 1$ for an n x n
#   (2/n), with the same receptive field (both counted above); a grid reduction with parallel stride-2
#   convolution and pooling branches halves the cost of pooling first without squeezing the representation.
# * Regularisers of v3: a batch-normalised auxiliary classifier and label smoothing, which caps the logit gap
#   the loss asks for (computed above) instead of rewarding ever more confidence.
# * Xception pushes the Inception idea to one spatial filter per channel after a 1x1: the depthwise separable
#   convolution, a small fraction of a standard block's cost (lesson 05).
#
# ## Exercises
#
# 1. Compute module 3a's FLOPs by hand from the filters in `GOOGLENET_INCEPTIONS["3a"]` and check them
#    against `count_flops`.
# 2. Build the small GoogLeNet from naive modules (`reduce=False`; hint: subclass `GoogLeNet`, or build the
#    modules by hand). How do parameters and FLOPs grow from module to module?
# 3. Build a small GoogLeNet from `FactorizedInception` modules (hint: copy `GoogLeNet`'s loop) and train it
#    with several seeds next to the original. Is the cheaper network as accurate on these 32x32 images?
# 4. Train with `WIDTH = 0.5`. Is the accuracy gain worth the time?
# 5. Train the small GoogLeNet with `torch.nn.CrossEntropyLoss(label_smoothing=0.1)` (`fit(..., loss_fn=...)`,
#    see `fit??`). Compare the largest softmax probabilities on the test images with and without smoothing.
# 6. Where does the asymmetric factorisation stop paying? Count `FactorizedConv(C, C, k, "asymmetric")` against
#    `"stacked"` for k = 3, 5, 7, 9.

# %%
record = save_results(
    RESULTS_PATH,
    lesson="03_inception",
    results={
        **run_context(DATASET, bundle.note, device, SMOKE, SEED),
        "bottleneck_config": {"in_channels": 192, "size": 28, "module": "3a", **spec.__dict__},
        "bottleneck": bottleneck,
        "bottleneck_flops_ratio": flops_ratio,
        "bottleneck_params_ratio": params_ratio,
        "torchvision_inception3a_parameters": count_parameters(tv_3a),
        "factor_config": {"channels": C, "size": S},
        "factorizations": factorizations,
        "factorized_modules": module_rows,
        "grid_reduction": grid_rows,
        "aux_parameters": aux_parameters,
        "aux_plain_parameters": aux_plain_parameters,
        "label_smoothing": label_smoothing,
        "xception": xception,
        "epochs": EPOCHS,
        "width": WIDTH,
        "train_images": len(bundle.train),
        "test_images": test.n,
        "num_classes": len(bundle.classes),
        "parameters": parameters,
        "flops": flops,
        "test_acc": test.accuracy,
        "val_acc": history.last.val_acc,
        "train_seconds": history.total_seconds,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
{k: record["results"][k] for k in ("bottleneck_flops_ratio", "bottleneck_params_ratio", "test_acc", "parameters")}
