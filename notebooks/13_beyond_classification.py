# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13 · Transfer beyond classification: detection, segmentation, and a look at language
#
# Every lesson so far moved a classifier to another *classification* task. Most uses of an ImageNet
# backbone are not classification at all: object detectors (Faster R-CNN, RetinaNet, SSD) and segmenters
# (Mask R-CNN, FCN, U-Net) start from a classification network, keep part of it and add new parts. In
# this lesson we open them up, then measure what a pretrained backbone is worth on a per-pixel task, and
# end with the same question for language models.
#
# **In this lesson you will**
#
# 1. assemble torchvision's Faster R-CNN, Mask R-CNN, RetinaNet and SSDlite around backbones of the course,
#    on the `meta` device (no weight is allocated), trace their shapes and count what each part costs;
# 2. build a segmentation task from real MNIST digits pasted on canvases, and train the same small
#    segmenter on a backbone *pretrained on digit classification* and on a *randomly initialised* one,
#    frozen and fine-tuned, with several seeds;
# 3. see how BERT, GPT and T5 are pretrained and transferred, and what carries over from the CNN lessons.

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
FLOP_SIZE = 512  # input side at which the detectors' parts are measured (one image, 3 x FLOP_SIZE x FLOP_SIZE)
CANVAS_SIZE = 64  # side of a digit canvas
TRAIN_CANVASES = 300  # labelled canvases for the segmenter (built from training digits only)
TEST_CANVASES = 300  # held-out canvases (built from test digits only)
PRETRAIN_EPOCHS = 3  # the backbone's digit-classification pretraining
PRETRAIN_LR = 5e-3  # its AdamW peak rate (one-cycle)
DENSE_EPOCHS = 3  # epochs of every segmentation arm (the same budget for all)
BATCH_SIZE = 16
LR = 5e-3  # AdamW peak rate (one-cycle) of the new neck and head, and of a backbone trained from scratch
BACKBONE_LR_FACTOR = 0.1  # a pretrained backbone, fine-tuned, peaks at LR * BACKBONE_LR_FACTOR
FOREGROUND_WEIGHT = 3.0  # cross-entropy weight of each digit class (background: 1); see section 2
SEEDS = 3  # seeds per arm (new neck and head, batch order; the random backbone too)

# %%
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from torch import nn

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything, seeded
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.profile import count_parameters, format_trace, trace_shapes
from tlcourse.measure.segmentation import segmentation_scores
from tlcourse.models.resnet import resnet_small
from tlcourse.training import evaluate, fit
from tlcourse.transfer import freeze, trainable_report
from tlcourse.transfer.dense import make_canvases, predict_masks, resnet_segmenter, train_segmenter
from tlcourse.transfer.detection import PART_ROLES, build_detectors, part_costs
from tlcourse.transfer.scenarios import digit_tensors

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE:
    TRAIN_CANVASES = min(TRAIN_CANVASES, 160)
    TEST_CANVASES = min(TEST_CANVASES, 150)
    PRETRAIN_EPOCHS = min(PRETRAIN_EPOCHS, 1)
    DENSE_EPOCHS = min(DENSE_EPOCHS, 2)
    SEEDS = min(SEEDS, 2)
print("device:", describe_device(device))

# %% [markdown]
# ## 1. What a detector keeps of a classifier
#
# A classification network is a stack of stages that halve the resolution (strides 2, 4, 8, 16, 32 for an
# ImageNet network), a global pooling and a classifier. A detector throws away the pooling and the
# classifier, because it needs to know *where* things are, and keeps the stages as its **backbone**,
# reading their feature maps at several strides. Lin et al.'s **feature pyramid network** (FPN, 2017) is
# the usual **neck**: a 1x1 "lateral" convolution brings each map to 256 channels, a top-down path adds
# the upsampled coarser level to the finer one (so the stride-8 map gets the stride-32 map's semantics), and
# a 3x3 convolution smooths each sum. The **heads** are new:
#
# * *Faster R-CNN* (Ren et al. 2015): a region proposal network (RPN) scores anchors on every level; a box
#   head classifies about a thousand proposed regions, each cut out of the pyramid as a 7x7 map by RoIAlign;
# * *Mask R-CNN* (He et al. 2017): Faster R-CNN plus a mask head, a small FCN that predicts a 28x28 mask
#   per detected box;
# * *RetinaNet* (Lin et al. 2017, focal loss): one stage, a class head and a box head shared by the
#   levels P3 to P7 (strides 8 to 128);
# * *SSDlite* (Sandler et al. 2018, after SSD by Liu et al. 2016): no FPN; "extra" convolutions continue
#   below the backbone's stride-32 map and light depthwise heads read six levels.
#
# ```
#  image ──► backbone (pretrained) ──────────────► neck (new) ─────────────► heads (new)
#            C2 /4  C3 /8  C4 /16  C5 /32            P2 … P6 (FPN, 256 ch)      RPN, box head, mask head
#            the classifier's stages, fc dropped     lateral 1x1 + top-down     or one dense head
# ```
#
# We build all four with `torchvision.models.detection` around the course's networks, on
# `torch.device("meta")`: tensors there have a shape and a dtype but no storage, so even Mask R-CNN costs
# nothing to build. `tlcourse.transfer.detection` holds the few lines that do it:
# `resnet_fpn` wraps the course ResNet-50 with `create_feature_extractor` (it traces `forward`) and
# torchvision's `FeaturePyramidNetwork`; `lite_fpn` passes EfficientNet-Lite0's `features` to
# `BackboneWithFPN` (an `IntermediateLayerGetter`: it runs the children in order, which is right for a
# `Sequential`, and wrong for the course ResNet, whose `maxpool` is registered next to `conv1`).

# %%
start = time.perf_counter()
detectors = build_detectors(num_classes=91)  # 91: COCO's labels as torchvision numbers them
build_seconds = time.perf_counter() - start
for name, detector in detectors.items():
    model = detector.model
    print(f"{name:<13} {type(model).__name__:<11} on {next(model.parameters()).device}: "
          f"{count_parameters(model):>11,} parameters, backbone from {detector.backbone_name}")
print(f"built in {build_seconds:.2f} s")

# %% [markdown]
# Here is what the backbone and the neck of Faster R-CNN produce for one 512x512 image: four maps at
# strides 4 to 32 with 256 to 2,048 channels (`layer1` ... `layer4` of ResNet-50), and five pyramid levels
# of 256 channels each (the fifth, `pool`, is a max-pooled stride-64 level for large anchors).

# %%
faster = detectors["Faster R-CNN"].model
print(format_trace(trace_shapes(faster.backbone.body, (1, 3, FLOP_SIZE, FLOP_SIZE), depth=1)))
pyramid = faster.backbone(torch.zeros(1, 3, FLOP_SIZE, FLOP_SIZE, device="meta"))
for level, tensor in pyramid.items():
    print(f"FPN level {level:>4}: {tuple(tensor.shape)}  stride {FLOP_SIZE // tensor.shape[-1]}")

# %% [markdown]
# Can we count FLOPs on `meta` with `torch.utils.flop_counter.FlopCounterMode`? For convolutions and
# matrix products, yes: the counter needs only shapes. A whole detector's forward pass, though, stops at
# the first operation whose output *size* depends on the values (`torch.nonzero` when boxes are filtered
# by score, then non-maximum suppression). So `part_costs` runs each part on its own, at a fixed input
# size: backbone and neck on a `FLOP_SIZE` image, dense heads on the pyramid, the box head on as many
# 7x7 regions as the RPN keeps at test time, the mask head on as many regions as the detector returns.

# %%
try:
    faster.eval()
    with torch.no_grad():
        faster([torch.zeros(3, FLOP_SIZE, FLOP_SIZE, device="meta")])
    full_forward_on_meta = "ran"
except Exception as error:  # the data-dependent step
    full_forward_on_meta = f"{type(error).__name__}: {str(error).splitlines()[0][:90]}..."
print("whole Faster R-CNN on meta:", full_forward_on_meta)

costs = {name: part_costs(d.model, FLOP_SIZE) for name, d in detectors.items()}
detector_rows = {}
for name, d in detectors.items():
    total = count_parameters(d.model)
    parts = {c.part: {"parameters": c.parameters, "flops": c.flops, "role": c.role} for c in costs[name]}
    heads = sum(p["parameters"] for part, p in parts.items() if part not in ("backbone", "neck"))
    detector_rows[name] = {
        "backbone_name": d.backbone_name,
        "notes": d.notes,
        "total_parameters": total,
        "parts": parts,
        "backbone_parameters": parts["backbone"]["parameters"],
        "neck_parameters": parts["neck"]["parameters"],
        "head_parameters": heads,
        "backbone_share": parts["backbone"]["parameters"] / total,
        "new_share": 1 - parts["backbone"]["parameters"] / total,
        "classifier_parameters": count_parameters(d.classifier),
        "dropped_from_classifier": count_parameters(d.classifier) - parts["backbone"]["parameters"],
        "total_gflops": sum(p["flops"] for p in parts.values()) / 1e9,
        "backbone_flop_share": parts["backbone"]["flops"] / sum(p["flops"] for p in parts.values()),
    }
regions = {"box head": faster.rpn._post_nms_top_n["testing"], "mask head": detectors["Mask R-CNN"].model.roi_heads.detections_per_img}

lines = ["| detector | backbone | parameters | backbone | neck | heads | backbone share | dropped classifier | GFLOPs | backbone FLOP share |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name, r in detector_rows.items():
    lines.append(f"| {name} | {r['backbone_name']} | {r['total_parameters'] / 1e6:.2f} M | {r['backbone_parameters'] / 1e6:.2f} M "
                 f"| {r['neck_parameters'] / 1e6:.2f} M | {r['head_parameters'] / 1e6:.2f} M | {r['backbone_share']:.0%} "
                 f"| {r['dropped_from_classifier'] / 1e6:.2f} M | {r['total_gflops']:.1f} | {r['backbone_flop_share']:.0%} |")
display(Markdown("\n".join(lines) + f"\n\nFLOPs for one {FLOP_SIZE}x{FLOP_SIZE} image (a multiply-add is 2 FLOPs), "
                 f"box head on {regions['box head']} regions, mask head on {regions['mask head']}. "
                 "*Dropped classifier*: parameters of the classification network the detector does not keep."))

# %%
palette = {"backbone": "tab:blue", "neck": "tab:orange", "rpn": "tab:green", "box head": "tab:red",
           "mask head": "tab:purple", "head": "tab:brown"}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
names = list(detector_rows)
for ax, key, unit, scale in [(axes[0], "parameters", "parameters (millions)", 1e6), (axes[1], "flops", f"GFLOPs at {FLOP_SIZE}x{FLOP_SIZE}", 1e9)]:
    bottoms = np.zeros(len(names))
    for part, colour in palette.items():
        values = np.array([detector_rows[n]["parts"].get(part, {}).get(key, 0) / scale for n in names])
        if values.any():
            ax.bar(names, values, bottom=bottoms, color=colour, label=part)
            bottoms += values
    ax.set_ylabel(unit)
    ax.tick_params(axis="x", labelsize=8)
axes[0].legend(fontsize=8)
axes[0].set_title("Parameters: pretrained backbone (blue) vs new parts")
axes[1].set_title("FLOPs per part, one image")
fig.tight_layout()

# %%
shares = {n: r["backbone_share"] for n, r in detector_rows.items()}
display(Markdown(
    f"**Reading the table.** Only the blue part comes pretrained. In the two-stage detectors the backbone is "
    f"{shares['Faster R-CNN']:.0%} (Faster R-CNN) and {shares['Mask R-CNN']:.0%} (Mask R-CNN) of the parameters: "
    f"the box head alone has {detector_rows['Faster R-CNN']['parts']['box head']['parameters'] / 1e6:.1f} M, almost all in "
    f"its two fully connected layers (256 x 7 x 7 inputs to 1,024, then 1,024 to 1,024). RetinaNet on EfficientNet-Lite0 "
    f"keeps {shares['RetinaNet']:.0%}, SSDlite {shares['SSDlite']:.0%}: with a mobile backbone the new parts are "
    f"larger than the pretrained one. In FLOPs the picture shifts again: the mask head on "
    f"{regions['mask head']} regions costs {detector_rows['Mask R-CNN']['parts']['mask head']['flops'] / 1e9:.0f} GFLOPs, "
    f"RetinaNet's head {detector_rows['RetinaNet']['parts']['head']['flops'] / 1e9:.0f} GFLOPs on its five levels against "
    f"{detector_rows['RetinaNet']['parts']['backbone']['flops'] / 1e9:.1f} for its backbone. "
    f"So *most of a detector is trained from scratch on the detection data*, even when the "
    f"backbone is ImageNet-pretrained; what the backbone brings is the features every new part reads."
))

# %% [markdown]
# (SSDlite's numbers are for torchvision's `weights_backbone=None` build, which uses MobileNetV3's
# *reduced tail*, the last stage at half width, as the MobileNetV3 paper does for detection (Howard et al.
# 2019, table 6); with ImageNet backbone weights torchvision keeps the full tail.)
#
# ## 2. A per-pixel task from real digits
#
# To measure what pretraining is worth for a dense task we need a task with per-pixel labels that runs in
# seconds. `tlcourse.transfer.dense.make_canvases` builds one from the 5,000 real MNIST digits of
# `mnist5k`: it pastes one to three digits at random places on a blank `CANVAS_SIZE` canvas and labels every
# pixel **0** (background) or **1 + d** where a stroke of digit *d* is brighter than one half. The
# segmenter must find the strokes *and* say which digit they belong to: 11 classes. The training canvases
# use only digits of mnist5k's training split, the test canvases only digits of its test split, so no digit
# image appears in both.

# %%
start = time.perf_counter()
digits = digit_tensors("tensor")  # 28x28 in 0..1; train 3,500, val 500, test 1,000
info = data.get_info("mnist5k")
mean, std = info.mean[0], info.std[0]
dataset_note = "mnist5k: " + info.description
train_canvases = make_canvases(*digits["train"], TRAIN_CANVASES, size=CANVAS_SIZE, seed=SEED)
test_canvases = make_canvases(*digits["test"], TEST_CANVASES, size=CANVAS_SIZE, seed=SEED + 1000)
canvas_seconds = time.perf_counter() - start
background = test_canvases.background_fraction()
print(f"{len(train_canvases)} training canvases, {len(test_canvases)} test canvases in {canvas_seconds:.1f} s; "
      f"background: {background:.1%} of the test pixels")

fig, axes = plt.subplots(2, 6, figsize=(11, 4))
cmap = plt.get_cmap("tab20", 11)
for i in range(6):
    axes[0, i].imshow(train_canvases.images[i, 0], cmap="gray")
    axes[1, i].imshow(train_canvases.masks[i], cmap=cmap, vmin=-0.5, vmax=10.5, interpolation="nearest")
    pasted = [int(digits["train"][1][k]) for k in train_canvases.sources[i].tolist() if k >= 0]
    axes[0, i].set_title(f"digits {pasted}", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
axes[0, 0].set_ylabel("canvas"); axes[1, 0].set_ylabel("labels (0 = background)")
fig.suptitle("Training canvases and their per-pixel labels")
fig.tight_layout()

# %% [markdown]
# **Two baselines say what a score means.** Predicting background everywhere already gets the background
# share of the pixels right, so pixel accuracy is a poor measure here. The **mean IoU** (intersection over
# union of predicted and true pixels per class, averaged over the 11 classes) of that all-background
# prediction is the background share divided by 11: every digit class scores 0.

# %%
all_background = segmentation_scores(torch.zeros_like(test_canvases.masks), test_canvases.masks, 11)
display(Markdown(f"All-background prediction on the test canvases: pixel accuracy **{all_background.pixel_accuracy:.3f}**, "
                 f"mean IoU **{all_background.mean_iou:.3f}**."))

# %% [markdown]
# ### The source: a backbone pretrained on digit classification
#
# The backbone is the course's smallest ResNet, `resnet_small(depth=8)` (He et al.'s CIFAR ResNet with one
# basic block per stage: 16, 32 and 64 channels at strides 1, 2 and 4), with one input channel. It is
# trained as a *classifier* on the 4,000 digits of mnist5k's train and validation splits, the source task.
# Its random twin is the same network freshly built: the course ResNet's own initialisation (He et al.'s
# Kaiming normal, fan-out, for convolutions; BatchNorm weights 1 and biases 0; PyTorch's default for `fc`,
# which the segmenter drops anyway).

# %%
def backbone(seed: int) -> nn.Module:
    with seeded(seed):
        return resnet_small(8, in_channels=1, num_classes=10)


source_x = (torch.cat([digits["train"][0], digits["val"][0]]) - mean) / std
source_y = torch.cat([digits["train"][1], digits["val"][1]])
start = time.perf_counter()
pretrained = backbone(SEED)
fit(pretrained, data.tensor_loader(source_x, source_y, batch_size=64, shuffle=True, seed=SEED), epochs=PRETRAIN_EPOCHS,
    lr=PRETRAIN_LR, scheduler="onecycle", device=device, progress=False)
pretrain_seconds = time.perf_counter() - start
pretrain_acc = evaluate(pretrained, data.tensor_loader((digits["test"][0] - mean) / std, digits["test"][1], batch_size=500),
                        device=device).accuracy
pretrained = pretrained.cpu()
display(Markdown(f"Source classifier: test accuracy **{pretrain_acc:.3f}** on the 1,000 test digits after "
                 f"{PRETRAIN_EPOCHS} epochs ({pretrain_seconds:.1f} s)."))

# %% [markdown]
# ### The segmenter: backbone, neck, head, as in a detector
#
# `resnet_segmenter` gives the backbone the same treatment as `resnet_fpn` gave ResNet-50: its `fc` is
# dropped, `create_feature_extractor` returns `layer1`, `layer2`, `layer3` (strides 1, 2, 4), torchvision's
# `FeaturePyramidNetwork` (32 channels) is the neck, and the head is a 3x3 convolution, BatchNorm, ReLU
# and a 1x1 convolution to 11 classes on the finest pyramid level. Follow the shapes of one canvas:

# %%
segmenter = resnet_segmenter(backbone(SEED))
x = torch.zeros(1, 1, CANVAS_SIZE, CANVAS_SIZE)
with torch.no_grad():
    features = segmenter.body(x)
    levels = segmenter.neck(features)
    logits = segmenter(x)
for name, tensor in features.items():
    print(f"body  {name:<7} {tuple(tensor.shape)}  stride {CANVAS_SIZE // tensor.shape[-1]}")
for name, tensor in levels.items():
    print(f"neck  {name:<7} {tuple(tensor.shape)}")
print(f"head  logits  {tuple(logits.shape)}")
segmenter_parameters = {part: count_parameters(getattr(segmenter, part)) for part in ("body", "neck", "head")}
print("parameters:", segmenter_parameters)

# %% [markdown]
# ### Four arms at equal budget
#
# Every arm trains a new neck and head for `DENSE_EPOCHS` epochs on the same canvases in batches of
# `BATCH_SIZE` (AdamW, one-cycle, peak `LR`), with the cross-entropy of each digit class weighted
# `FOREGROUND_WEIGHT` (background 1): with the background this common, an unweighted loss learns to paint
# everything background first (try `FOREGROUND_WEIGHT = 1`). The arms differ only in the backbone:
#
# | arm | backbone weights | backbone during training |
# | --- | --- | --- |
# | pretrained, frozen | the digit classifier's | frozen (weights and BatchNorm statistics) |
# | random, frozen | fresh initialisation | frozen: the neck and head read random features |
# | pretrained, fine-tuned | the digit classifier's | trained at `LR * BACKBONE_LR_FACTOR` |
# | random, fine-tuned | fresh initialisation | trained at `LR` (training from scratch) |
#
# The random frozen arm measures what the new neck and head alone can make of features nobody trained;
# the random fine-tuned arm is the from-scratch baseline that pretraining has to beat. A fresh
# (random) backbone has nothing to preserve, so it trains at the full rate. Each seed changes the new
# parts, the batch order and the random backbone.

# %%
ARMS = {"pretrained, frozen": (True, True), "random, frozen": (False, True),
        "pretrained, fine-tuned": (True, False), "random, fine-tuned": (False, False)}
train_x = train_canvases.normalised(mean, std)
test_x = test_canvases.normalised(mean, std)
arms = {}
predictions = {}
start = time.perf_counter()
for arm, (use_pretrained, frozen) in ARMS.items():
    runs = []
    for seed in range(SEED, SEED + SEEDS):
        with seeded(seed):
            model = resnet_segmenter(copy.deepcopy(pretrained) if use_pretrained else backbone(10_000 + seed))
        if frozen:
            freeze(model, names="body")
        run_start = time.perf_counter()
        train_segmenter(model, train_x, train_canvases.masks, epochs=DENSE_EPOCHS, lr=LR,
                        backbone_lr=LR * (BACKBONE_LR_FACTOR if use_pretrained else 1.0), batch_size=BATCH_SIZE,
                        foreground_weight=FOREGROUND_WEIGHT, seed=seed, device=device)
        seconds = time.perf_counter() - run_start
        predicted = predict_masks(model, test_x, device=device)
        scores = segmentation_scores(predicted, test_canvases.masks, 11)
        runs.append({"seed": seed, "mean_iou": scores.mean_iou, "pixel_accuracy": scores.pixel_accuracy,
                     "iou": scores.iou, "seconds": seconds, "trainable": trainable_report(model).trainable})
        if seed == SEED:
            predictions[arm] = predicted[:4]
    mious = [r["mean_iou"] for r in runs]
    arms[arm] = {"runs": runs, "mean_iou": float(np.mean(mious)), "std_iou": float(np.std(mious)),
                 "min_iou": float(np.min(mious)), "max_iou": float(np.max(mious)),
                 "pixel_accuracy": float(np.mean([r["pixel_accuracy"] for r in runs])),
                 "trainable": runs[0]["trainable"], "seconds": float(np.mean([r["seconds"] for r in runs]))}
    print(f"{arm:<24} mean IoU {arms[arm]['mean_iou']:.3f} ± {arms[arm]['std_iou']:.3f} "
          f"(pixel accuracy {arms[arm]['pixel_accuracy']:.3f}), {arms[arm]['trainable']:,} trainable, "
          f"{arms[arm]['seconds']:.1f} s per run")
dense_seconds = time.perf_counter() - start

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.1, 1]})
colours = ["tab:blue", "tab:gray", "tab:green", "tab:olive"]
for k, r in enumerate(arms.values()):
    axes[0].bar(k, r["mean_iou"], yerr=r["std_iou"], color=colours[k], capsize=3)
    axes[0].scatter([k] * len(r["runs"]), [run["mean_iou"] for run in r["runs"]], color="k", s=10, zorder=3)
axes[0].axhline(all_background.mean_iou, color="k", ls=":", lw=1, label="all background")
axes[0].set_xticks(range(4), [a.replace(", ", "\n") for a in arms], fontsize=9)
axes[0].set_ylabel("test mean IoU (11 classes)"); axes[0].legend(fontsize=8)
axes[0].set_title(f"{SEEDS} seeds per arm (dots), mean ± std")
digit_iou = {arm: np.nanmean([run["iou"] for run in r["runs"]], axis=0) for arm, r in arms.items()}
for k, (arm, iou) in enumerate(digit_iou.items()):
    axes[1].plot(range(11), iou, marker="o", color=colours[k], label=arm)
axes[1].set_xticks(range(11), ["bg"] + [str(d) for d in range(10)])
axes[1].set_ylabel("IoU"); axes[1].set_title("IoU per class (mean over seeds)"); axes[1].legend(fontsize=7)
fig.tight_layout()

fig, axes = plt.subplots(2 + len(predictions), 4, figsize=(7.5, 2 * (2 + len(predictions))))
for i in range(4):
    axes[0, i].imshow(test_canvases.images[i, 0], cmap="gray")
    axes[1, i].imshow(test_canvases.masks[i], cmap=cmap, vmin=-0.5, vmax=10.5, interpolation="nearest")
    for row, (arm, predicted) in enumerate(predictions.items(), start=2):
        axes[row, i].imshow(predicted[i], cmap=cmap, vmin=-0.5, vmax=10.5, interpolation="nearest")
        axes[row, 0].set_ylabel(arm.replace(", ", "\n"), fontsize=8)
axes[0, 0].set_ylabel("test canvas", fontsize=8); axes[1, 0].set_ylabel("truth", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
fig.suptitle(f"Held-out canvases and predictions (seed {SEED}); colours are classes")
fig.tight_layout()

# %%
gain_frozen = arms["pretrained, frozen"]["mean_iou"] - arms["random, frozen"]["mean_iou"]
gain_fine_tuned = arms["pretrained, fine-tuned"]["mean_iou"] - arms["random, fine-tuned"]["mean_iou"]
best_arm = max(arms, key=lambda a: arms[a]["mean_iou"])
worst_pretrained = min(arms["pretrained, frozen"]["min_iou"], arms["pretrained, fine-tuned"]["min_iou"])
best_random = max(arms["random, frozen"]["max_iou"], arms["random, fine-tuned"]["max_iou"])
display(Markdown(
    f"**What we measured** ({SEEDS} seeds, {TRAIN_CANVASES} training canvases, {DENSE_EPOCHS} epochs per arm). "
    f"The best arm is *{best_arm}* with a mean IoU of {arms[best_arm]['mean_iou']:.3f}, against "
    f"{all_background.mean_iou:.3f} for painting everything background. With the backbone frozen, pretraining on "
    f"digit classification adds {gain_frozen:+.3f} mean IoU over random features "
    f"({arms['pretrained, frozen']['mean_iou']:.3f} against {arms['random, frozen']['mean_iou']:.3f}); "
    f"fine-tuned, it adds {gain_fine_tuned:+.3f} over training from scratch "
    f"({arms['pretrained, fine-tuned']['mean_iou']:.3f} against {arms['random, fine-tuned']['mean_iou']:.3f}). "
    f"The worst pretrained run ({worst_pretrained:.3f}) is "
    f"{'above' if worst_pretrained > best_random else 'not above'} the best random one ({best_random:.3f}). "
    f"Pixel accuracy hardly moves (from {arms['random, frozen']['pixel_accuracy']:.3f} to "
    f"{arms[best_arm]['pixel_accuracy']:.3f}): the background dominates it."
))

# %% [markdown]
# Why can a backbone trained to name *whole* digits help to label *pixels*? Finding strokes is easy: a
# bright pixel is a stroke, and the background class scores well for every arm (the per-class curve). The
# hard part is telling a 3 from an 8 at each stroke pixel, which needs features that encode digit shape,
# and those are what the classifier's deeper stages were trained to compute; the decoder reads them through
# the pyramid at strides 4 to 1. A random backbone, frozen, gives the neck only random filters of the
# pixels; trained from scratch it must learn the shapes from a few hundred canvases within the same budget.
# This is the detection story in miniature: the neck and heads are new and learn on the target data, the
# backbone brings what it learned on classification.
#
# Two caveats. The source digits are the same *kind* of images as the canvases (a very similar domain; the
# training canvases even reuse the source's training digits, though never a test digit). And the budget
# is small: with many more labelled canvases a scratch network may catch up (exercise 4). He, Girshick
# and Dollár (*Rethinking ImageNet pre-training*, 2019) found it for COCO detection, where training from random
# initialisation matched ImageNet-pretrained Mask R-CNN given a longer schedule and normalisation suited to
# small batches.
#
# ## 3. The same idea in language: pretrain, then transfer
#
# Language models were transferred the way CNNs are, but their source task needs no labels at all:
# the text itself is the target. Three objectives became the standard ones.

# %%
def token_row(ax, y, tokens, colours, label):
    ax.text(-0.3, y, label, ha="right", va="center", fontsize=9)
    for i, (token, colour) in enumerate(zip(tokens, colours)):
        ax.add_patch(plt.Rectangle((i * 1.15, y - 0.35), 1.05, 0.7, color=colour, alpha=0.85))
        ax.text(i * 1.15 + 0.52, y, token, ha="center", va="center", fontsize=8)


sentence = ["the", "cat", "sat", "on", "the", "mat", "today"]
plain, hidden, target = "#dddddd", "#f4a582", "#92c5de"
fig, axes = plt.subplots(3, 1, figsize=(10, 5.4))
token_row(axes[0], 1, ["the", "[MASK]", "sat", "on", "the", "[MASK]", "today"], [plain, hidden, plain, plain, plain, hidden, plain], "input")
token_row(axes[0], 0, ["", "cat", "", "", "", "mat", ""], ["white", target, "white", "white", "white", target, "white"], "predict")
axes[0].set_title("BERT (Devlin et al. 2018): masked language modelling, bidirectional encoder", fontsize=10)
token_row(axes[1], 1, sentence[:-1], [plain] * 6, "input")
token_row(axes[1], 0, sentence[1:], [target] * 6, "predict")
axes[1].set_title("GPT (Radford et al. 2018): next-token prediction, causal decoder (sees only the left)", fontsize=10)
token_row(axes[2], 1, ["the", "<X>", "on", "the", "<Y>", "today"], [plain, hidden, plain, plain, hidden, plain], "encoder in")
token_row(axes[2], 0, ["<X>", "cat", "sat", "<Y>", "mat", "<Z>"], [hidden, target, target, hidden, target, hidden], "decoder out")
axes[2].set_title("T5 (Raffel et al. 2019): span corruption, encoder-decoder, every task as text to text", fontsize=10)
for ax in axes:
    ax.set_xlim(-2.2, 8.2); ax.set_ylim(-0.6, 1.6); ax.axis("off")
fig.tight_layout()

# %% [markdown]
# * **BERT** (Devlin, Chang, Lee and Toutanova, 2018) hides 15% of the input tokens (of those, 80% become
#   `[MASK]`, 10% a random token, 10% stay) and predicts them from both sides; it was also trained to tell
#   whether two sentences follow each other. BERT-base has 12 Transformer layers of width 768 and 110M
#   parameters, BERT-large 24 layers of width 1,024 and 340M (both from the paper).
# * **GPT** (Radford, Narasimhan, Salimans and Sutskever, 2018) predicts each token from the ones before it,
#   with a 12-layer Transformer decoder of width 768 trained on books (BooksCorpus).
# * **T5** (Raffel et al., 2019) replaces random spans of the input (15% of the tokens, spans of 3 on
#   average in their baseline) by sentinel tokens and generates the missing spans; every downstream task,
#   classification included, is then written as text in and text out.
#
# We can check BERT-base's size from its configuration (vocabulary 30,522 word pieces, 512 positions, 2
# segment types, 12 layers, width 768, 12 heads, feed-forward width 3,072), built on `meta` from PyTorch's own
# Transformer layer, whose parameters are the ones of a BERT layer:

# %%
with torch.device("meta"):
    bert_layers = nn.ModuleList(nn.TransformerEncoderLayer(768, 12, 3072) for _ in range(12))
    bert_embeddings = nn.ModuleList([nn.Embedding(30522, 768), nn.Embedding(512, 768), nn.Embedding(2, 768), nn.LayerNorm(768)])
    bert_pooler = nn.Linear(768, 768)
bert_base_parameters = {"embeddings": count_parameters(bert_embeddings), "12 layers": count_parameters(bert_layers),
                        "pooler": count_parameters(bert_pooler)}
bert_total = sum(bert_base_parameters.values())
display(Markdown(f"BERT-base from its configuration: {bert_total:,} parameters "
                 f"({', '.join(f'{k} {v:,}' for k, v in bert_base_parameters.items())}), the paper's 110M."))

# %% [markdown]
# ### What is frozen, what is trained
#
# The choices are the ones of lessons 07 and 08, plus two that appeared with very large models:
#
# | strategy | what trains | CNN counterpart | in language |
# | --- | --- | --- | --- |
# | feature extraction | a new head on frozen features | lesson 07 | ELMo's vectors (Peters et al. 2018) fed to task models; BERT's frozen layers as features (the paper reports it on named-entity recognition) |
# | fine-tuning | everything, from the pretrained weights, with a new head | lesson 08 | BERT and GPT: a linear layer on the `[CLS]` / last token, all weights trained for a few epochs |
# | adapters | small new layers inside each frozen block | (freezing all but a few inserted layers) | Houlsby et al. 2019: bottleneck adapters in every Transformer layer, a few percent of the parameters per task |
# | low-rank updates | a low-rank change of frozen weight matrices | — | LoRA (Hu et al. 2021) |
# | prompting | nothing: the task is put into the input | — | GPT-3 (Brown et al. 2020): zero-, one- and few-shot prompts |
#
# The parallels run deep. The pretrained encoder is the backbone, the task layer is the head. The
# pretraining objective decides what transfers easily: BERT's bidirectional encoder is a natural backbone for
# labelling tokens or sentences (like an ImageNet network for detection), GPT's decoder for generating
# text, T5 casts everything as generation. And just as a detector adds a neck and heads around the
# backbone, T5 adds nothing at all: the "head" is the same decoder, asked in words for the task. Lesson 14
# measures the first row of the table on real labelled text: a pretrained sentence encoder, frozen, with a
# linear head, against the same network with random weights.
#
# ## Summary
#
# * A detector or segmenter keeps a classifier's stages and drops its pooling and classifier. Its neck
#   (a feature pyramid: lateral 1x1 convolutions and a top-down path over strides 4 to 32, or SSD's extra
#   layers) and its heads (proposals, boxes, masks, or one dense head) are new and learn on the target task.
# * Counted on the `meta` device, the pretrained backbone is only part of the detector, and in FLOPs the
#   heads can dominate (the table above).
# * On a per-pixel task built from real digits, a backbone pretrained on digit *classification* beats the
#   same backbone randomly initialised, frozen and fine-tuned, at the same budget (the measurement above,
#   over several seeds); mean IoU, not pixel accuracy, shows it.
# * Language models transfer the same way: a self-supervised source task (masked tokens, next token, spans),
#   then feature extraction, fine-tuning, adapters or prompts.
#
# ## Exercises
#
# 1. Add FCOS (`torchvision.models.detection.FCOS`) around `lite_fpn(efficientnet_lite("lite0"))` on `meta`
#    and add it to the table. How does its head compare with RetinaNet's, and why (anchors per location)?
# 2. Give `part_costs` a smaller `FLOP_SIZE`: which parts' FLOPs scale with the image and which do not?
# 3. Set `FOREGROUND_WEIGHT = 1`. Which arms suffer most, and does the ranking of the arms change?
# 4. Double `TRAIN_CANVASES` (and then double it again). Does the random fine-tuned arm close the gap
#    (He et al. 2019)? Keep the number of seeds, and report mean and spread.
# 5. Let the frozen backbones' BatchNorm statistics adapt to the canvases
#    (`freeze(model, names="body", keep_frozen_bn_stats=False)`). Which frozen arm gains more, and why?
# 6. Replace the pretraining by a *different* source task, e.g. classifying digits 0–4 only. How much of the
#    gain remains for the digits 5–9 on the canvases?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="13_beyond_classification",
    results={
        **run_context("mnist5k", dataset_note, device, SMOKE, SEED),
        "flop_size": FLOP_SIZE,
        "detectors": detector_rows,
        "part_roles": PART_ROLES,
        "regions": regions,
        "full_forward_on_meta": full_forward_on_meta,
        "detector_build_seconds": build_seconds,
        "canvas_size": CANVAS_SIZE,
        "train_canvases": len(train_canvases),
        "test_canvases": len(test_canvases),
        "background_fraction": background,
        "all_background": all_background,
        "pretrain_epochs": PRETRAIN_EPOCHS,
        "pretrain_lr": PRETRAIN_LR,
        "pretrain_acc": pretrain_acc,
        "pretrain_seconds": pretrain_seconds,
        "segmenter_parameters": segmenter_parameters,
        "dense_epochs": DENSE_EPOCHS,
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "backbone_lr_factor": BACKBONE_LR_FACTOR,
        "foreground_weight": FOREGROUND_WEIGHT,
        "seeds": SEEDS,
        "arms": arms,
        "gain_frozen": gain_frozen,
        "gain_fine_tuned": gain_fine_tuned,
        "best_arm": best_arm,
        "worst_pretrained_iou": worst_pretrained,
        "best_random_iou": best_random,
        "bert_base_parameters": {**bert_base_parameters, "total": bert_total},
        "dense_seconds": dense_seconds,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
{k: round(v["mean_iou"], 3) for k, v in record["results"]["arms"].items()}
