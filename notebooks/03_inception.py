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
# 3. assemble a small GoogLeNet from a configuration and train it on 32x32 images.

# %% tags=["parameters"]
SMOKE = False
SEED = 0
DEVICE = "auto"
RESULTS_PATH = None
DATASET = "auto"  # "fashion_mnist" or "cifar10" when online, "mnist5k" bundled offline, or "auto"
EPOCHS = None  # None means 10 on mnist5k and 5 on the full datasets, 3 in smoke mode
WIDTH = None  # fraction of the paper's filters, None means 0.25 and 0.125 in smoke mode
TRAIN_PER_CLASS = None  # None means every training image, 40 per class in smoke mode

# %%
import time

import matplotlib.pyplot as plt
import torch
import torchvision

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.plots import plot_history
from tlcourse.measure.profile import count_flops, count_parameters, format_trace, trace_shapes
from tlcourse.models.inception import GOOGLENET_INCEPTIONS, Inception, small_googlenet
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

# %% [markdown]
# The 5x5 branch shows the trick best: 5x5 windows over 192 channels cost 32 · 192 · 25 = 153,600
# multiply-adds per pixel; first squeezing to 16 channels costs 16 · 192 + 32 · 16 · 25 = 15,872, about
# ten times fewer (9.7x, the ratio of the 5x5 bars above).
# The whole module is more than twice as cheap, and the saving compounds: the naive module's output has
# 416 channels instead of 256 (the pooling branch passes all 192 through), so the *next* module would
# be more expensive still, and widths would grow module after module.
#
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
EPOCHS = 3 if SMOKE else (EPOCHS or (10 if DATASET == "mnist5k" else 5))
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
# ## Summary
#
# * An Inception module runs 1x1, 3x3, 5x5 and pooling branches side by side and concatenates them.
# * 1x1 convolutions before the 3x3 and 5x5 (and after the pooling) make it affordable: in module 3a they
#   cut FLOPs and parameters more than twice (measured above) and keep the output from growing.
# * GoogLeNet: 22 layers, 6.6 million parameters and 3 GFLOPs against VGG-16's 138 million and 31 GFLOPs,
#   for about the same ImageNet accuracy (lesson 02's timeline).
#
# ## Exercises
#
# 1. Compute module 3a's FLOPs by hand from the filters in `GOOGLENET_INCEPTIONS["3a"]` and check them
#    against `count_flops`.
# 2. Build the small GoogLeNet from naive modules (`reduce=False`; hint: subclass `GoogLeNet`, or build the
#    modules by hand). How do parameters and FLOPs grow from module to module?
# 3. Replace the 5x5 convolution by two stacked 3x3 convolutions (Inception v2's change, lesson 02's
#    argument). What does it save?
# 4. Train with `WIDTH = 0.5`. Is the accuracy gain worth the time?

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
