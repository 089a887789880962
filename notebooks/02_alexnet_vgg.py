# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · AlexNet and VGG: deeper, wider, and made of 3x3 convolutions
#
# In 2012 **AlexNet** (Alex Krizhevsky, Ilya Sutskever and Geoffrey Hinton) won the ImageNet challenge
# with a top-5 error of 15.3%, against 26.2% for the runner-up. Its architecture was LeNet's recipe,
# bigger: five convolutions and three fully connected layers. What made it work was a handful of changes
# to *how* such a network is trained: **ReLU** activations, **dropout**, **data augmentation**, and two
# **GPUs**. Two years later **VGG** (Karen Simonyan and Andrew Zisserman) showed that depth itself pays,
# if every convolution is a small **3x3**.
#
# **In this lesson you will**
#
# 1. measure how much faster a network learns with ReLU than with sigmoid (and tanh), same network, same seed;
# 2. compute the receptive field of stacked 3x3 convolutions, check it with a gradient, and count what
#    it saves against one 5x5 or 7x7 convolution;
# 3. train scaled-down AlexNet and VGG side by side on 32x32 images: accuracy, parameters, FLOPs, time;
# 4. count the parameters and FLOPs of the full-size ImageNet networks from torchvision's definitions;
# 5. see where the course goes next: every architecture of the course in one measured table.

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
DATASET = "auto"  # "fashion_mnist" (online), "cifar10" (online, colour), "mnist5k" (bundled, offline) or "auto"
EPOCHS = None  # AlexNet vs VGG, None means 8 on mnist5k and 5 on the full datasets, 3 in smoke mode
WIDTH = None  # fraction of the papers filters, None means 0.25 and 0.125 in smoke mode
TRAIN_PER_CLASS = None  # None means every training image, 40 per class in smoke mode
ACT_EPOCHS = None  # ReLU vs sigmoid on digits, None means 15 and 5 in smoke mode
TARGET_LOSS = 1.0  # the training loss the activations race to

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torchvision
from IPython.display import Markdown, display
from torch import nn

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.plots import show_images
from tlcourse.measure.profile import count_flops, count_parameters
from tlcourse.measure.receptive_field import conv_layers, empirical_receptive_field, receptive_field
from tlcourse.measure.timeline import architecture_timeline, format_timeline
from tlcourse.models.alexnet_vgg import VGG, AlexNet, ConvStack, small_alexnet, small_vgg
from tlcourse.training import evaluate, fit

lesson_start = time.perf_counter()
if SMOKE:
    torch.set_num_threads(1)  # these tiny models run faster, and steadier, on one thread
seed_everything(SEED)
device = get_device(DEVICE)
print("device:", describe_device(device))

# %% [markdown]
# ## What changed in 2012
#
# | change | what it does | why it mattered |
# | --- | --- | --- |
# | **ReLU**, max(0, x) | replaces the saturating tanh/sigmoid | its gradient is 1 wherever the unit is active, so deep stacks keep learning; the paper reports reaching 25% training error on CIFAR-10 **six times faster** than with tanh |
# | **dropout** | during training, zeroes each hidden unit of the two 4096-wide layers with probability 0.5 | a unit cannot rely on particular partners; without it AlexNet overfitted badly (its fully connected layers hold 58.6 of its 61 million parameters) |
# | **data augmentation** | random 224x224 crops of 256x256 images, horizontal flips, colour (PCA) jitter | 2,048 times more distinct training images for free; the paper calls it essential |
# | **GPUs** | two GTX 580s with 3 GB each, the filters split between them | 5–6 days of training instead of weeks; the network would not fit on one card |
#
# The last one is why this course can exist at all: the same computations, at small scale, now run on a
# laptop. This notebook runs on the device printed above.
#
# ### ReLU against sigmoid and tanh, measured
#
# AlexNet's argument was an experiment: train the same network with each activation and count how long
# it takes to reach a given training error. We repeat it on scikit-learn's 8x8 digits with a small
# VGG-style network (four 3x3 convolutions and two fully connected layers), the same seed and
# initialisation, Adam at 0.001, and count the **epochs until the training loss falls below
# `TARGET_LOSS`**.

# %%
ACT_EPOCHS = ACT_EPOCHS or (5 if SMOKE else 15)
digits = data.load("digits", transform="normalize", batch_size=32, seed=SEED)
print(digits.note)


def activation_net(activation: str) -> VGG:
    # (16, 16, pool, 32, 32, pool) 3x3 convolutions on 8x8 digits, then a 64-wide head; no dropout
    return VGG((16, 16, "M", 32, 32, "M"), num_classes=10, in_channels=1, hidden=64, pool_size=2,
               dropout=0.0, activation=activation)


def epochs_to_reach(losses: list[float], target: float) -> int | None:
    # the first epoch whose mean training loss is below the target (None: never within the budget)
    return next((epoch for epoch, loss in enumerate(losses, start=1) if loss < target), None)


activation_runs = {}
for activation in ("relu", "tanh", "sigmoid"):
    seed_everything(SEED)
    net = activation_net(activation)
    hist = fit(net, digits.train_loader, epochs=ACT_EPOCHS, optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
               device=device, progress=False)
    activation_runs[activation] = {
        "train_loss": list(hist["train_loss"]),
        "epochs_to_target": epochs_to_reach(hist["train_loss"], TARGET_LOSS),
        "final_train_loss": hist.last.train_loss,
        "seconds": hist.total_seconds,
    }

print(f"{'activation':<11}{'epochs to loss < ' + str(TARGET_LOSS):>22}{'final loss':>12}{'seconds':>9}")
for activation, run in activation_runs.items():
    reached = run["epochs_to_target"] or f"not in {ACT_EPOCHS}"
    print(f"{activation:<11}{reached:>22}{run['final_train_loss']:>12.3f}{run['seconds']:>9.1f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
for activation, run in activation_runs.items():
    ax.plot(range(1, ACT_EPOCHS + 1), run["train_loss"], marker="o", label=activation)
ax.axhline(TARGET_LOSS, color="grey", linestyle="--", label="target")
ax.set(xlabel="epoch", ylabel="training loss", title="Same network, same seed: only the activation differs")
ax.legend();

# %%
def reached(activation: str) -> str:
    epochs = activation_runs[activation]["epochs_to_target"]
    return f"in {epochs} epoch{'s' * (epochs != 1)}" if epochs else f"not within {ACT_EPOCHS} epochs"


sigmoid_losses = activation_runs["sigmoid"]["train_loss"]
stalled = sum(loss > 0.95 * math.log(10) for loss in sigmoid_losses)  # epochs near the uniform guess
display(Markdown(
    f"In this run the sigmoid network spends **{stalled} of its {ACT_EPOCHS} epochs** at a loss within 5% of "
    f"ln 10 = {math.log(10):.2f}, the loss of a uniform guess, and reaches the target loss {reached('sigmoid')}; "
    f"ReLU reaches it {reached('relu')}, tanh {reached('tanh')}."
))

# %% [markdown]
# A sigmoid's slope is at most 0.25, but under Adam that alone explains little: Adam divides every
# gradient by its own running scale, so small gradients still make steps of the usual size. What stalls is
# the signal. A sigmoid maps every unit into (0, 1) around 0.5, so with PyTorch's default initialisation the
# differences between images shrink layer after layer; six layers up the output hardly depends on the input,
# the loss sits at the uniform guess, and the gradients carry little about *which* image was which until the
# first layers learn to spread their outputs (exercise 6 measures it). The ReLU passes both the signal and
# the gradient unchanged wherever a unit is active. **Be honest about tanh**: on this small problem tanh can keep
# up with the ReLU (read the table and the line above). Its derivative is 1 at zero, and with Adam and a shallow
# network its saturation does not bite. AlexNet's six-fold speed-up was measured with plain SGD on CIFAR-10;
# ReLU's real advantages show in deeper networks and are also cheaper to compute.
#
# ### Dropout and augmentation
#
# Both fight overfitting, and both are switched on only during training: `nn.Dropout` is the identity in
# `model.eval()`, and augmentation belongs to the training transform only. Our small AlexNet and VGG keep
# dropout (p = 0.5) in their heads, and train on randomly shifted, rotated and scaled images:

# %%
# "auto": Fashion-MNIST when it is available, else the bundled mnist5k digits (`data.load_small_images??`)
bundle = data.load_small_images(DATASET, smoke=SMOKE, seed=SEED, per_class=TRAIN_PER_CLASS)
DATASET, in_channels = bundle.name, bundle.info.channels  # the "lenet" preset gives 1x32x32; "normalize" keeps the colour channels
EPOCHS = 3 if SMOKE else (EPOCHS or (8 if DATASET == "mnist5k" else 5))
WIDTH = WIDTH or (0.125 if SMOKE else 0.25)
print(bundle.note)
print(f"this run: {len(bundle.train)} train / {len(bundle.val)} val / {len(bundle.test)} test images of "
      f"{in_channels}x32x32, {EPOCHS} epochs, width {WIDTH} of the papers' filters")
images, labels = next(iter(bundle.train_loader))
show_images(images[:16], labels[:16], bundle.classes, mean=bundle.info.mean, std=bundle.info.std,
            title="Augmented training images, 32x32");

# %% [markdown]
# ## VGG: why 3x3?
#
# The **receptive field** of an output pixel is the window of input pixels it depends on. A 3x3
# convolution sees 3x3; a second 3x3 on top of it sees 3x3 windows of the first layer's output, i.e.
# 5x5 input pixels; a third sees 7x7. Each stride-1 layer adds *k - 1* pixels, so *n* stacked 3x3
# layers see **2n + 1**. (With strides, each layer adds *(k - 1)* times the product of the strides
# below it; `receptive_field` computes it.)
#
# So three 3x3 layers see as much as one 7x7 layer. With *C* channels in and out they have
# 3 · 9 · C² = **27C²** weights against **49C²**, and three non-linearities instead of one. VGG's
# paper makes exactly this argument. We compute it, and we check the field empirically: back-propagate
# from the centre pixel of the output and see which input pixels receive a gradient.

# %%
C = 64
rows = []
for n in (1, 2, 3, 4):
    stack = ConvStack(C, n, kernel_size=3)
    side = receptive_field([3] * n)
    single = nn.Conv2d(C, C, side, bias=False)  # one layer with the same receptive field
    rows.append({
        "layers": n, "field": side, "measured": empirical_receptive_field(ConvStack(4, n), (4, 21, 21), seed=SEED),
        "stack_params": count_parameters(stack), "single_params": count_parameters(single),
    })
print(f"C = {C} channels in and out, no biases")
print(f"{'3x3 layers':>10}{'field':>8}{'measured':>10}{'stack params':>14}{'one k x k':>11}{'ratio':>7}")
for r in rows:
    print(f"{r['layers']:>10}{r['field']:>6}x{r['field']:<2}{r['measured']:>9}{r['stack_params']:>14,}"
          f"{r['single_params']:>11,}{r['stack_params'] / r['single_params']:>7.2f}")

seed_everything(SEED)
x = torch.randn(16, 4, 21, 21, requires_grad=True)  # 16 random inputs: one alone may hit ReLUs that are off
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (name, module) in zip(axes, [("one 3x3", ConvStack(4, 1)), ("three 3x3", ConvStack(4, 3)),
                                     ("one 7x7", ConvStack(4, 1, kernel_size=7))]):
    x.grad = None
    module(x)[:, :, 10, 10].sum().backward()
    ax.imshow(x.grad.abs().sum((0, 1)) > 0, cmap="Greys")
    ax.set_title(f"{name}: {empirical_receptive_field(module, (4, 21, 21))}x{empirical_receptive_field(module, (4, 21, 21))}")
    ax.set_xticks([]); ax.set_yticks([])
fig.suptitle("Input pixels that reach the centre output pixel (black)");

# %% [markdown]
# The measured fields agree with 2n + 1, and the parameter ratio is 18/25 = 0.72 against a 5x5 and
# 27/49 = 0.55 against a 7x7. Receptive fields grow fast once strides enter: every 2x2 pool doubles the
# step between neighbouring pixels, so each later 3x3 adds more input pixels. For the full-size networks:

# %%
with torch.device("meta"):  # shapes only, no memory
    vgg16_features = VGG("vgg16").features
    alexnet_features = AlexNet("imagenet").features
rf_vgg16 = receptive_field(conv_layers(vgg16_features)[:-1])  # up to the last convolution
rf_alexnet = receptive_field(conv_layers(alexnet_features)[:-1])
print(f"VGG-16, last convolution: {rf_vgg16}x{rf_vgg16}; AlexNet, fifth convolution: {rf_alexnet}x{rf_alexnet}")


# %% [markdown]
# ## AlexNet and VGG, scaled down, side by side
#
# Both models live in `tlcourse/models/alexnet_vgg.py`, built from configurations like torchvision's.
# For 32x32 images AlexNet's first layer becomes a 5x5 convolution at stride 1 (not 11x11 at stride 4),
# and both keep a fraction `WIDTH` of the papers' filters. VGG is configuration A (VGG-11): eight 3x3
# convolutions in five stages. Both get batch normalisation after each convolution (invented in 2015,
# after both papers) so that they learn in a few epochs from scratch; the training recipe is the same:
# AdamW, a one-cycle schedule (`scheduler="onecycle"`: `fit` builds lesson 01's `OneCycleLR` on the optimizer,
# peaking at its learning rate), the same augmentation and seed.

# %%
def train(name: str, net: nn.Module) -> dict:
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=5e-4)
    hist = fit(net, bundle.train_loader, bundle.val_loader, epochs=EPOCHS, optimizer=optimizer,
               scheduler="onecycle", device=device, progress=False)
    test = evaluate(net, bundle.test_loader, device=device)
    return {"model": net, "history": hist, "test_acc": test.accuracy, "parameters": count_parameters(net),
            "flops": count_flops(net, (1, in_channels, 32, 32)), "train_seconds": hist.total_seconds}


side_by_side = {}
seed_everything(SEED)
side_by_side["AlexNet"] = train("AlexNet", small_alexnet(len(bundle.classes), in_channels, width=WIDTH, batch_norm=True))
seed_everything(SEED)
side_by_side["VGG-11"] = train("VGG-11", small_vgg("vgg11", len(bundle.classes), in_channels, width=WIDTH, batch_norm=True))

print(f"{'model':<9}{'test acc':>9}{'parameters':>12}{'MFLOPs':>8}{'seconds':>9}")
for name, r in side_by_side.items():
    print(f"{name:<9}{r['test_acc']:>9.3f}{r['parameters']:>12,}{r['flops'] / 1e6:>8.1f}{r['train_seconds']:>9.1f}")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, r in side_by_side.items():
    axes[0].plot(r["history"]["epoch"], r["history"]["train_loss"], marker="o", label=name)
    axes[1].plot(r["history"]["epoch"], r["history"]["val_acc"], marker="o", label=name)
axes[0].set(xlabel="epoch", ylabel="training loss"); axes[1].set(xlabel="epoch", ylabel="validation accuracy")
axes[0].legend(); fig.suptitle(f"Small AlexNet and VGG-11 on {DATASET}");

# %% [markdown]
# Both networks drawn from the modules just trained (`tlcourse.measure.graph.layer_graph` traces them,
# `tlcourse.measure.diagram.draw_layer_graph` draws a box per layer with its output shape and parameters):
# compare where each one spends its parameters.

# %%
from tlcourse.measure.diagram import draw_layer_graph
from tlcourse.measure.graph import layer_graph

for name, r in side_by_side.items():
    draw_layer_graph(layer_graph(r["model"], (1, in_channels, 32, 32)), title=f"small {name}, width {WIDTH}", max_rows=11)

# %% [markdown]
# Read the training table as accuracy per parameter and per FLOP rather than as a raw winner, and remember
# that a 32x32 digit is not what either network was designed for (in smoke mode they see only 400 images for
# three epochs, so expect far lower accuracy than in the full lesson). VGG spends its compute in many thin
# 3x3 layers; AlexNet spends its parameters in the fully connected head (the diagrams' parameter counts).
#
# ## The full-size networks, counted
#
# torchvision defines both networks (`torchvision.models.alexnet`, `vgg11` ... `vgg19`); building them with
# `weights=None` on the `meta` device costs neither a download nor memory. Our own classes, given the
# papers' configurations, must give the same counts.

# %%
full_size = []
with torch.device("meta"):
    for name in ("alexnet", "vgg11", "vgg13", "vgg16", "vgg19"):
        reference = torchvision.models.get_model(name, weights=None)
        ours = AlexNet("imagenet") if name == "alexnet" else VGG(name)
        full_size.append({
            "name": name, "parameters": count_parameters(reference), "ours": count_parameters(ours),
            "flops": count_flops(reference, (1, 3, 224, 224)),
            "head_parameters": count_parameters(reference.classifier),
        })
print(f"{'network':<9}{'parameters':>13}{'ours':>13}{'in the head':>12}{'GFLOPs':>8}")
for r in full_size:
    print(f"{r['name']:<9}{r['parameters']:>13,}{r['ours']:>13,}{r['head_parameters'] / r['parameters']:>12.0%}"
          f"{r['flops'] / 1e9:>8.1f}")
full = {r["name"]: r for r in full_size}

# %%
alexnet, vgg16 = full["alexnet"], full["vgg16"]
display(Markdown(
    "torchvision's AlexNet, the single-tower variant of Krizhevsky's 2014 *One weird trick* paper (64, 192, 384, "
    "256 and 256 filters; the 2012 network had 96, 256, 384, 384 and 256, split over two GPUs, and about 60 "
    f"million parameters), holds {alexnet['parameters'] / 1e6:.1f} million parameters, "
    f"{alexnet['head_parameters'] / alexnet['parameters']:.0%} of them in its three fully connected layers, but "
    f"needs only {alexnet['flops'] / 1e9:.1f} GFLOPs (a multiply-add counts as 2). VGG-16 needs "
    f"{vgg16['flops'] / alexnet['flops']:.0f} times as much computation, {vgg16['flops'] / 1e9:.0f} GFLOPs, "
    f"with only {1 - vgg16['head_parameters'] / vgg16['parameters']:.0%} of its parameters but almost all of its "
    "FLOPs in convolutions at high resolution. Parameters and FLOPs are different costs: the first is memory and "
    "overfitting, the second is time."
))

# %% [markdown]
# ## The road ahead
#
# Every architecture in this course, measured the same way by `tlcourse.measure.timeline` from torchvision's
# definitions (LeNet-5 is ours, at its 32x32 grey input). *Depth* counts the weight layers on the
# longest path from input to output (the rule is documented in `tlcourse/measure/timeline.py`); *top-1* is the
# ImageNet accuracy torchvision reports for its first published weights.

# %%
timeline_start = time.perf_counter()
timeline = architecture_timeline()
timeline_seconds = time.perf_counter() - timeline_start
display(Markdown(format_timeline(timeline)))
print(f"measured in {timeline_seconds:.1f} s")

# %%
by_name = {row.name: row for row in timeline}
googlenet, vgg16_row = by_name["GoogLeNet (Inception v1)"], by_name["VGG-16"]
deepest_row = max(timeline, key=lambda row: row.depth)
display(Markdown(
    f"Read it column by column: depth grows from {by_name['AlexNet'].depth} (AlexNet) to "
    f"{by_name['ResNet-50'].depth} (ResNet-50) and {deepest_row.depth} ({deepest_row.name}); parameters peak with VGG-16 and then *fall* (GoogLeNet has "
    f"{vgg16_row.parameters / googlenet.parameters:.0f} times fewer than VGG-16 for a top-1 accuracy of "
    f"{googlenet.top1:.1f}% against {vgg16_row.top1:.1f}%: lesson 03); FLOPs fall with MobileNet and EfficientNet "
    "(lesson 05), and rise again with the Vision Transformer (lesson 06)."
))

# %% [markdown]
# ## Summary

# %%
relu_epochs, sigmoid_epochs = (activation_runs[a]["epochs_to_target"] for a in ("relu", "sigmoid"))
relu_won = relu_epochs is not None and (sigmoid_epochs is None or relu_epochs < sigmoid_epochs)
display(Markdown(
    "* AlexNet is LeNet scaled up, plus ReLU, dropout, augmentation and GPUs. In this run the ReLU network "
    f"reached the target loss {reached('relu')}, the sigmoid network {reached('sigmoid')} "
    f"({'ReLU first' if relu_won else 'ReLU was not first'}), and tanh {reached('tanh')}.\n"
    "* *n* stacked 3x3 convolutions see (2n + 1)x(2n + 1) pixels: three of them match a 7x7 with 27C² instead "
    "of 49C² weights. That is VGG's whole design.\n"
    f"* torchvision's single-tower AlexNet has {alexnet['parameters']:,} parameters "
    f"({alexnet['head_parameters'] / alexnet['parameters']:.0%} in the head) and {alexnet['flops'] / 1e9:.1f} GFLOPs; "
    f"VGG-16 has {vgg16['parameters']:,} and {vgg16['flops'] / 1e9:.0f} GFLOPs."
))

# %% [markdown]
# ## Exercises
#
# 1. Train the activation race with plain SGD (`torch.optim.SGD(..., lr=0.01, momentum=0.9)`). Does
#    ReLU now beat tanh? Then make the network deeper (add a third stage of 3x3 convolutions).
# 2. Remove batch normalisation from the small AlexNet and VGG (`batch_norm=False`). How many epochs do
#    they need now?
# 3. Set `dropout=0.0` in both and compare training and validation accuracy. Where does the gap open?
# 4. Compute the receptive field of VGG-16's last convolution by hand from the formula, and check it
#    against `receptive_field(conv_layers(...))`.
# 5. Replace VGG-11 by VGG-16 (`small_vgg("vgg16", ...)`). Parameters, FLOPs, time and accuracy?
# 6. Measure the stall: at initialisation, capture the output of every activation of `activation_net("sigmoid")`
#    and of `activation_net("relu")` on one batch (`tlcourse.measure.activations.capture_activations`) and print,
#    layer by layer, the standard deviation *across the images* of each unit's output. Where do the images
#    become indistinguishable?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="02_alexnet_vgg",
    results={
        **run_context(DATASET, bundle.note, device, SMOKE, SEED),
        "activation_dataset": "digits",
        "activation_epochs": ACT_EPOCHS,
        "target_loss": TARGET_LOSS,
        "activation_runs": activation_runs,
        "receptive_fields": rows,
        "receptive_field_vgg16": rf_vgg16,
        "receptive_field_alexnet": rf_alexnet,
        "epochs": EPOCHS,
        "width": WIDTH,
        "train_images": len(bundle.train),
        "test_images": len(bundle.test),
        "num_classes": len(bundle.classes),
        "small_models": {name: {k: v for k, v in r.items() if k not in ("model", "history")} | {
            "val_acc": r["history"]["val_acc"]} for name, r in side_by_side.items()},
        "full_size": full,
        "timeline": [row.to_dict() for row in timeline],
        "timeline_seconds": timeline_seconds,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]["small_models"]
