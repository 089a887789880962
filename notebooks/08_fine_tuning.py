# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Fine-tuning: unfreezing a pretrained network, carefully
#
# In lesson 07 a frozen EfficientNet-Lite0 with a new linear head sorted ants from bees well, and only the
# head trained (we re-run it in section 3, so this lesson's comparison uses your own number). **Fine-tuning** goes one step further: it also changes
# the pretrained weights, so that the features themselves adapt to the new data. That can help — the
# network's last stages learned ImageNet's 1,000 classes, not ours — but with 244 training photos it can
# also hurt: a few large gradient steps destroy what 1.3 million images taught the network.
#
# The craft of fine-tuning is a handful of habits that keep the pretrained weights from being destroyed.
# We measure each of them on ants vs bees:
#
# 1. **progressive unfreezing**: first the head, then the top stages, then everything (`tlcourse.transfer.freeze_to`, `fine_tune`);
# 2. **layer-wise learning rates**: small for the early, generic stages, larger near the head (`param_groups` with `spread` or `decay`);
# 3. **batch-norm statistics** kept frozen against updated by the small batches;
# 4. **augmentation** (random resized crop and flip) against none;
# 5. a **learning-rate schedule** with warm-up, and the **learning-rate range test** to choose the rate (`tlcourse.training.lr_finder`);
# 6. **early stopping** that restores the best weights (`tlcourse.training.callbacks.EarlyStopping`);
#
# and finally the best recipe against lesson 07's feature extraction, in accuracy *and* in time.

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
RESOLUTION = 112  # fine-tuning resolution; 224 px costs several times more per epoch on a CPU (measured below)
FE_RESOLUTION = 224  # lesson 07's feature extraction, re-run at its own resolution
BATCH_SIZE = 16
LR = 1e-3  # learning rate of the head's group when fine-tuning
LR_SPREAD = 100.0  # layer-wise rates: the first stage gets LR / LR_SPREAD
EPOCHS = 2  # epochs of each fine-tuning comparison (the same budget for both sides)
SEEDS = 3  # the close comparisons (learning rates, batch-norm statistics, augmentation) run on this many seeds
MAX_EPOCHS = 4  # the final recipe, cut short by early stopping
PATIENCE = 2  # epochs without a better val_loss before early stopping
WARMUP_FRACTION = 0.2  # share of the final recipe's steps spent warming the lr up
RANGE_STEPS = 30  # mini-batches of the learning-rate range test
HEAD_EPOCHS = 30  # epochs of the linear head on cached features (lesson 07)
HEAD_LR = 1e-3
TRAIN_PER_CLASS = None  # None: all 244 training images; smoke mode uses 4 per class
EVAL_PER_CLASS = None  # None: all 153 validation images; smoke mode uses 4 per class

# %%
import copy
import math
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown
from torch import nn
from torchvision.transforms import v2

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything, synchronize
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.metrics import wilson_interval
from tlcourse.measure.plots import plot_history
from tlcourse.measure.seeds import SeedComparison, adopt
from tlcourse.models.efficientnet import LITE_MEAN, LITE_STD, efficientnet_lite0, lite_transform
from tlcourse.training import TrainStep, evaluate, fit
from tlcourse.training.callbacks import EarlyStopping
from tlcourse.training.lr_finder import lr_range_test
from tlcourse.transfer import (
    extract_features,
    fine_tune,
    freeze_bn_stats,
    freeze_to,
    param_groups,
    replace_head,
    stages,
    train_head,
    trainable_report,
)

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE:
    TRAIN_PER_CLASS = TRAIN_PER_CLASS or 4
    EVAL_PER_CLASS = EVAL_PER_CLASS or 4
    RESOLUTION, FE_RESOLUTION = min(RESOLUTION, 64), min(FE_RESOLUTION, 64)
    BATCH_SIZE = min(BATCH_SIZE, 8)
    EPOCHS, MAX_EPOCHS, PATIENCE = 1, min(MAX_EPOCHS, 2), 1
    RANGE_STEPS = min(RANGE_STEPS, 12)
    HEAD_EPOCHS = min(HEAD_EPOCHS, 10)
    SEEDS = min(SEEDS, 2)
comparison_seeds = list(range(SEED, SEED + SEEDS))
print("device:", describe_device(device), f"| torch threads: {torch.get_num_threads()}")
print(f"fine-tuning at {RESOLUTION}x{RESOLUTION} px, batch {BATCH_SIZE}; feature extraction at {FE_RESOLUTION} px")

# %% [markdown]
# ## 1. The data, two ways: plain and augmented
#
# The Lite weights expect pixels scaled as `(255x - 127)/128`, not ImageNet's mean and standard deviation,
# so the course's `"imagenet_augment"` preset (random resized crop, horizontal flip, ImageNet normalisation)
# would feed the network wrongly scaled inputs. As in lesson 07 we build the transforms ourselves:
# `lite_transform(RESOLUTION)` (resize, centre crop, Lite normalisation) for evaluation, and the same steps
# as `"imagenet_augment"` with the Lite normalisation for augmented training. The plain images are decoded
# once into tensors (lesson 07's trick); the augmented ones must be decoded every epoch, because every
# epoch draws new crops.

# %%
lite_eval = lite_transform(RESOLUTION)
lite_augment = v2.Compose([
    v2.ToImage(), v2.RandomResizedCrop(RESOLUTION), v2.RandomHorizontalFlip(), v2.RGB(),
    v2.ToDtype(torch.float32, scale=True), v2.Normalize(LITE_MEAN, LITE_STD),
])
common = dict(per_class=TRAIN_PER_CLASS, eval_per_class=EVAL_PER_CLASS, batch_size=BATCH_SIZE, seed=SEED,
              num_workers=0)
plain = data.load("hymenoptera", transform=lite_eval, **common)
augmented = data.load("hymenoptera", transform=lite_eval, train_transform=lite_augment, **common)
print(plain.note)


start = time.perf_counter()
train_images, train_targets = data.dataset_tensors(plain.train)
val_images, val_targets = data.dataset_tensors(plain.val)
decode_seconds = time.perf_counter() - start
print(f"decoded {len(train_images)} + {len(val_images)} images at {RESOLUTION} px in {decode_seconds:.1f} s")


def plain_loader(seed=SEED):
    # the same seed gives the same order of photos, for every experiment that uses it
    return data.tensor_loader(train_images, train_targets, batch_size=BATCH_SIZE, shuffle=True, seed=seed)


def augmented_loader(seed=SEED):
    # new random crops every epoch; the seed fixes the order of photos (the crops follow seed_everything)
    return torch.utils.data.DataLoader(augmented.train, batch_size=BATCH_SIZE, shuffle=True,
                                       generator=torch.Generator().manual_seed(seed))


val_loader = data.tensor_loader(val_images, val_targets, batch_size=64)
seed_everything(SEED)
crops, _ = zip(*[augmented.train[0] for _ in range(5)])
fig, axes = plt.subplots(1, 6, figsize=(12, 2.3))
for ax, image, title in zip(axes, [train_images[0], *crops], ["plain"] + [f"augmented {i + 1}" for i in range(5)]):
    ax.imshow((image * torch.tensor(LITE_STD)[:, None, None] + torch.tensor(LITE_MEAN)[:, None, None])
              .clamp(0, 1).permute(1, 2, 0))
    ax.set_title(title, fontsize=9); ax.axis("off")
fig.tight_layout()


# %% [markdown]
# ## 2. What does an epoch cost? Estimate before you train
#
# Fine-tuning runs a forward *and* a backward pass through the whole network for every image in every
# epoch. Before committing to a plan we time one training step (a batch of `BATCH_SIZE`) and extrapolate
# to an epoch of the training set, at our resolution and (full mode) at Lite0's native 224 px.

# %%
def seconds_per_epoch(resolution, repeats=2):
    probe = replace_head(efficientnet_lite0(pretrained=False), 2).to(device).train()
    step = TrainStep(probe, torch.optim.AdamW(probe.parameters(), lr=1e-4))  # the step fit() takes per batch
    batch = (torch.randn(BATCH_SIZE, 3, resolution, resolution, device=device), torch.arange(BATCH_SIZE) % 2)
    times = []
    for _ in range(repeats + 1):  # the first step warms up
        start = time.perf_counter()
        step(batch)
        synchronize(device)  # a GPU runs asynchronously: wait for it before reading the clock
        times.append(time.perf_counter() - start)
    return min(times[1:]) * math.ceil(len(train_images) / BATCH_SIZE)


epoch_estimate = {RESOLUTION: seconds_per_epoch(RESOLUTION)}
if not SMOKE:
    epoch_estimate[224] = seconds_per_epoch(224)
for res, seconds in epoch_estimate.items():
    print(f"{res} px: about {seconds:.1f} s per training epoch of {len(train_images)} images (forward + backward)")

# %% [markdown]
# The two lines above are this machine's cost of an epoch at 224 px and at `RESOLUTION` (112 px in full mode,
# a quarter of the pixels). On a CPU the difference decides whether the comparisons below, `EPOCHS` epochs
# each on several seeds, take minutes or a quarter of an hour, so they run at `RESOLUTION`. A
# lower resolution costs some accuracy — Lite0 learned ImageNet at 224 px — which is why we also measure
# feature extraction at both resolutions below: the fair comparison is at the same resolution.
#
# ## 3. The starting point: lesson 07's feature extraction, re-run on cached features
#
# We re-run lesson 07's method twice: at 224 px exactly as there, and at our fine-tuning resolution. The
# head trained on the cached `RESOLUTION`-px features is also where every fine-tuning run below starts: fine-tuning
# with a *random* head sends large, meaningless gradients into the pretrained layers in the first steps.
# Training the head first is phase 1 of `fine_tune` (`head_epochs`); on cached features it costs a
# fraction of a second per epoch instead of a forward pass over all images per epoch.

# %%
pristine = replace_head(efficientnet_lite0(pretrained=True), 2)


def feature_extraction(train_x, train_y, val_x, val_y):
    # lesson 07's recipe: features once, then a linear head trained on them
    model = copy.deepcopy(pristine)
    # cache=True: keyed by content, so the 224-px features lesson 07 computed are read back, not recomputed
    train_f = extract_features(model, data.tensor_loader(train_x, train_y), device=device, cache=True)
    val_f = extract_features(model, data.tensor_loader(val_x, val_y), device=device, cache=True)
    head, history = train_head(train_f, val_f, 2, epochs=HEAD_EPOCHS, lr=HEAD_LR, seed=SEED, device=device)
    seconds = train_f.seconds + val_f.seconds + history.total_seconds
    return head.cpu(), history.last.val_acc, seconds


warm_head, fe_acc, fe_seconds = feature_extraction(train_images, train_targets, val_images, val_targets)
feature_extraction_results = {RESOLUTION: {"val_acc": fe_acc, "seconds": fe_seconds}}
if FE_RESOLUTION != RESOLUTION:
    fe_plain = data.load("hymenoptera", transform=lite_transform(FE_RESOLUTION), **common)
    start = time.perf_counter()
    fe_train = data.dataset_tensors(fe_plain.train)
    fe_val = data.dataset_tensors(fe_plain.val)
    fe_decode = time.perf_counter() - start
    _, acc, seconds = feature_extraction(*fe_train, *fe_val)
    feature_extraction_results[FE_RESOLUTION] = {"val_acc": acc, "seconds": seconds + fe_decode}
    del fe_train, fe_val
for res, r in feature_extraction_results.items():
    print(f"feature extraction at {res} px: val accuracy {r['val_acc']:.3f} in {r['seconds']:.1f} s "
          f"(features once + {HEAD_EPOCHS} head epochs)")


def start_model():
    # pretrained Lite0 with the head trained on cached features: where every fine-tuning run starts
    model = copy.deepcopy(pristine)
    model.classifier[1].load_state_dict(warm_head.state_dict())
    return model


# %% [markdown]
# ## 4. Progressive unfreezing
#
# `tlcourse.transfer.stages` cuts Lite0 into ten stages: the stem, seven MBConv stages, the 1x1 head
# convolution and the classifier. `freeze_to(model, n)` freezes the stages before index `n` and makes the
# others trainable. Progressive unfreezing (Howard and Ruder's ULMFiT, 2018) trains the head first
# (done: it is the feature-extraction head), then the top stages, then everything, so that the layers
# nearest the new head adapt before the generic early ones are touched.
#
# The top stages are also the cheapest to train: no gradient has to flow below the lowest trainable layer.

# %%
stage_names = [s.name for s in stages(pristine)]
TOP_FROM = stage_names.index("features.stage6")
print("stages:", ", ".join(f"{i}:{n.replace('features.', '')}" for i, n in enumerate(stage_names)))


settings = dict(lr=LR, lr_spread=LR_SPREAD, scheduler="onecycle", device=device, head_epochs=0)
seed_everything(SEED)
model = start_model()
freeze_bn_stats(model)
progressive = [{"phase": "1. head only (cached features)", "trainable": 1280 * 2 + 2,
                "val_acc": feature_extraction_results[RESOLUTION]["val_acc"],
                "seconds": feature_extraction_results[RESOLUTION]["seconds"]}]
for label, unfreeze_to, epochs in [(f"2. top stages ({stage_names[TOP_FROM]} on)", TOP_FROM, 1),
                                   ("3. everything", 0, max(EPOCHS - 1, 1))]:
    result = fine_tune(model, plain_loader(), val_loader, epochs=epochs, unfreeze_to=unfreeze_to, **settings)
    report = trainable_report(model)
    progressive.append({"phase": label, "trainable": report.trainable, "epochs": epochs,
                        "val_acc": result.history.last.val_acc, "seconds": result.history.total_seconds,
                        "lrs": result.lrs})
print(report)
print()
for p in progressive:
    print(f"{p['phase']:<42} trainable {p['trainable']:>10,}   val acc {p['val_acc']:.3f}   {p['seconds']:6.1f} s")
progressive_acc = progressive[-1]["val_acc"]

# %%
head_acc, top_acc, all_acc = (p["val_acc"] for p in progressive)
trend = ("*fell*" if top_acc < head_acc else "rose" if top_acc > head_acc else "stayed")
Markdown(
    f"Read the accuracy phase by phase. In this run it {trend} when the top stages were unfrozen "
    f"({head_acc:.3f} with the head alone, {top_acc:.3f} after one epoch of the top stages, {all_acc:.3f} after "
    f"more of everything; one of the {len(val_targets)} validation images is {1 / len(val_targets):.3f}). "
    f"When it falls, the first steps on {len(train_targets)} images have disturbed features that were already "
    f"good, and two epochs are not enough to win it back. Unfreezing is a risk "
    f"to be managed, not a gain by itself; the sections below are the tools for it."
)

# %% [markdown]
# ## 5. Layer-wise learning rates
#
# Early stages compute edges and textures that suit ants as well as dogs; the later ones are specific to
# ImageNet's classes. So the early stages should move less. `param_groups(model, lr, spread=s)` gives each
# stage its own optimizer group, from `lr / s` at the stem to `lr` at the head, geometrically (fast.ai's
# `slice(lr / s, lr)`); `decay=d` instead multiplies the rate by `d` per stage going down. Frozen stages
# are left out. The groups are plain `torch.optim` parameter groups, each carrying its stage's name:

# %%
demo = copy.deepcopy(pristine)
spread_groups = param_groups(demo, LR, spread=LR_SPREAD)
decay_groups = param_groups(demo, LR, decay=0.5)
print(f"{'stage':<20}{'tensors':>8}{'spread lr':>12}{'decay lr':>12}")
for s, d in zip(spread_groups, decay_groups):
    print(f"{s['name']:<20}{len(s['params']):>8}{s['lr']:>12.2e}{d['lr']:>12.2e}")
freeze_to(demo, TOP_FROM)
top_groups = param_groups(demo, LR, spread=LR_SPREAD)
print("\nwith the stages below stage6 frozen, only these groups remain:",
      [(g["name"], f"{g['lr']:.1e}") for g in top_groups])

fig, ax = plt.subplots(figsize=(8, 3))
x = range(len(spread_groups))
ax.plot(x, [g["lr"] for g in spread_groups], "o-", label=f"spread={LR_SPREAD:g}")
ax.plot(x, [g["lr"] for g in decay_groups], "s-", label="decay=0.5")
ax.set_xticks(list(x), [g["name"].replace("features.", "") for g in spread_groups], rotation=30, ha="right")
ax.set_yscale("log"); ax.set_ylabel("learning rate"); ax.legend(); ax.set_title("Layer-wise learning rates")
fig.tight_layout()
layerwise_groups = {"spread": [(g["name"], g["lr"]) for g in spread_groups],
                    "decay": [(g["name"], g["lr"]) for g in decay_groups],
                    "top_only": [(g["name"], g["lr"]) for g in top_groups]}


# %% [markdown]
# Does it matter? We fine-tune everything at once for `EPOCHS` epochs, once with the spread rates and once
# with `LR` for every stage — the same start, data order, schedule (one-cycle) and batch-norm handling.
# The spread runs are also the **baseline** of the next two comparisons.
#
# The accuracies can differ by only a few of the 153 validation images, and a gap that small can come from
# the luck of one run: the order of the photos, the dropout masks. So this comparison, and the next two, run
# on `SEEDS` seeds; each seed gives both sides the same order of photos, so the differences are paired. (The
# split stays the same: the seeds measure the noise of training, the error bars in section 10 the noise of a
# 153-photo validation set.)

# %%
def run(label, *, spread=LR_SPREAD, bn="frozen", augment=False, seed=SEED):
    seed_everything(seed)
    model = start_model()
    if bn == "frozen":
        freeze_bn_stats(model)
    before = model.features.stem.bn.running_mean.clone()
    loader = augmented_loader(seed) if augment else plain_loader(seed)
    result = fine_tune(model, loader, val_loader, epochs=EPOCHS, **{**settings, "lr_spread": spread})
    h = result.history
    out = {"label": label, "seed": seed, "val_acc": h.last.val_acc, "best_val_acc": h.best("val_acc").val_acc,
           "val_loss": h.last.val_loss, "train_acc": h.last.train_acc, "seconds": h.total_seconds,
           "lrs": result.lrs, "bn_stats_changed": not torch.equal(before, model.features.stem.bn.running_mean.cpu()),
           "history": h.to_dict()}
    print(f"{label:<40} seed {seed}  val acc {out['val_acc']:.3f}  val loss {out['val_loss']:.3f}  "
          f"train acc {out['train_acc']:.3f}  {out['seconds']:.1f} s")
    return out, model


baselines, uniform_runs = {}, {}
for seed in comparison_seeds:
    baselines[seed], _ = run("spread lrs, BN frozen, no augmentation", seed=seed)
    uniform_runs[seed], _ = run("one lr for all stages", spread=None, seed=seed)
baseline, uniform = baselines[SEED], uniform_runs[SEED]
print("lrs of the spread run's groups:", [f"{lr:.1e}" for lr in baseline["lrs"]])
print("lrs of the uniform run's groups:", sorted({f"{lr:.1e}" for lr in uniform["lrs"]}))


def paired(label, runs, reference):
    # one comparison over the seeds, paired by seed (tlcourse.measure.seeds)
    return SeedComparison.from_runs(label, [runs[s] for s in comparison_seeds],
                                    [reference[s] for s in comparison_seeds], len(val_targets))


def seed_table(comparison, name, reference_name):
    rows = [f"| seed | {reference_name}: val acc (loss) | {name}: val acc (loss) | difference in images |",
            "|---:|---:|---:|---:|"]
    for seed, ref_acc, ref_loss, acc, loss, gap in zip(
            comparison.seeds, comparison.reference_val_acc, comparison.reference_val_loss,
            comparison.val_acc, comparison.val_loss, comparison.gap_images):
        rows.append(f"| {seed} | {ref_acc:.3f} ({ref_loss:.3f}) | {acc:.3f} ({loss:.3f}) | {gap:+d} |")
    return "\n".join(rows)


uniform_comparison = paired("one lr for all stages", uniform_runs, baselines)
Markdown(seed_table(uniform_comparison, "one lr", "spread lrs"))

# %%
Markdown(
    f"One rate for all stages against the spread rates, seed by seed, in validation images: "
    f"{', '.join(f'{g:+d}' for g in uniform_comparison.gap_images)} "
    f"(one image is {100 / len(val_targets):.2f} points). "
    + uniform_comparison.verdict("the single rate ahead", "the spread rates ahead")
    + f" The validation loss (which weighs every image's confidence, not only whether it was right) was lower "
    f"with the spread rates on {len(comparison_seeds) - uniform_comparison.lower_loss} of {len(comparison_seeds)} seeds."
)

# %% [markdown]
# Why the spread rates should win: 1e-3 is a fine rate for a fresh head, but for the stem and the first
# stages it is large enough to overwrite, in a few dozen steps, filters that took ImageNet to learn — and
# everything above them then sees different inputs. The spread rates move the stem `LR_SPREAD` times more
# slowly. In smoke mode (a few images at 64 px) the gap can go either way.
#
# ## 6. Batch-norm statistics: frozen or updated?
#
# A batch norm layer normalises with the mean and variance of the *current batch* during training and
# keeps a running average of them for evaluation. When fine-tuning, we can let the batches update those
# running statistics, or keep the ImageNet ones (put every batch norm in eval mode while its weight and bias
# still train). Same budget, the same seeds, the spread runs of section 5 as the baseline:

# %%
bn_runs = {seed: run("spread lrs, BN statistics updated", bn="updated", seed=seed)[0] for seed in comparison_seeds}
bn_updated, bn_frozen = bn_runs[SEED], baseline
print(f"\nstem BN running mean changed: frozen {bn_frozen['bn_stats_changed']}, updated {bn_updated['bn_stats_changed']}")


bn_comparison = paired("BN statistics updated", bn_runs, baselines)
Markdown(seed_table(bn_comparison, "BN updated", "BN frozen"))

# %% [markdown]
# Why frozen statistics usually win with small batches and small data: with a batch of 16 images the batch
# mean and variance are noisy estimates, so in training every image is normalised a little differently
# from one step to the next, and the running averages that evaluation uses drift towards statistics of a
# few hundred ants and bees estimated from 16 images at a time. The ImageNet statistics were estimated
# from over a million images; the layers after each batch norm were trained to expect exactly them. Updating
# them changes the input distribution of every later layer at once — a second source of damage on top of
# the gradient steps. Frozen statistics also make training and evaluation behave the same way. (With large
# batches and a data set far from ImageNet — medical scans, say — updating them can be the better choice.)
# Compare the table's numbers, the validation losses too:

# %%
Markdown(
    f"Updated statistics against frozen ones, seed by seed, in validation images: "
    f"{', '.join(f'{g:+d}' for g in bn_comparison.gap_images)}. "
    + bn_comparison.verdict("updated statistics ahead", "frozen statistics ahead")
    + f" The validation loss (which weighs every image's confidence, not only whether it was right) was lower "
    f"with frozen statistics on {len(comparison_seeds) - bn_comparison.lower_loss} of {len(comparison_seeds)} seeds."
)

# %% [markdown]
# ## 7. Augmentation
#
# Random resized crops (8 to 100% of the image, aspect ratio 3/4 to 4/3) and horizontal flips show the
# network a different version of every photo in every epoch: a regulariser against memorising 244 images.
# Same budget and the same seeds as the baseline:

# %%
augmented_runs = {seed: run("spread lrs, BN frozen, augmentation", augment=True, seed=seed)[0]
                  for seed in comparison_seeds}
augmented_run = augmented_runs[SEED]
augmentation_comparison = paired("augmentation", augmented_runs, baselines)
print(f"\ntrain accuracy with augmentation {augmented_run['train_acc']:.3f} vs {baseline['train_acc']:.3f} without "
      f"(seed {SEED})")
Markdown(seed_table(augmentation_comparison, "augmentation", "no augmentation") + "\n\n"
         + "Augmentation against none, seed by seed, in validation images: "
         + ", ".join(f"{g:+d}" for g in augmentation_comparison.gap_images) + ". "
         + augmentation_comparison.verdict("augmentation ahead", "no augmentation ahead"))


# %% [markdown]
# Augmentation makes the training task harder (look at the training accuracy) and, with only a few epochs,
# it rarely has time to pay off: its benefit shows over longer training, when the plain run starts to
# memorise the training set. It also costs time on the CPU, since images are decoded and cropped every epoch.
#
# ## 8. The learning-rate schedule and the learning-rate range test
#
# `fine_tune` uses the one-cycle schedule (Smith, 2018): the rate rises for the first 30% of the steps
# (warm-up: the freshly combined network and the optimizer's moment estimates settle at small rates), then
# anneals along a cosine to nearly zero. The final recipe below uses a linear warm-up followed by cosine
# annealing, built from `torch.optim.lr_scheduler` (`LinearLR`, `CosineAnnealingLR`, `SequentialLR`),
# because early stopping may end training before a one-cycle schedule has finished.
#
# Which peak rate? Smith's **learning-rate range test**: train for a few dozen to a few hundred mini-batches
# while the rate grows exponentially from 1e-6 to 1, and watch the loss. `tlcourse.training.lr_finder.lr_range_test`
# sweeps all layer-wise groups together (keeping their ratios), smooths the loss, stops when it explodes,
# suggests the rate at the minimum of the smoothed loss divided by ten, and restores the model and the
# optimizer afterwards.

# %%
def warmup_cosine(optimizer, total_steps):
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.05, total_iters=warmup),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup)),
    ], milestones=[warmup])


steps_per_epoch = len(plain_loader())
total = max(MAX_EPOCHS * steps_per_epoch, 20)  # at least 20 steps, so that the shape shows in smoke mode too
schedules = {}
for name in ("one-cycle", "warm-up + cosine"):
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=LR)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=total) if name == "one-cycle"
             else warmup_cosine(opt, total))
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    schedules[name] = lrs

seed_everything(SEED)
model = start_model()
freeze_bn_stats(model)
optimizer = torch.optim.AdamW(param_groups(model, LR, spread=LR_SPREAD, weight_decay=0.01))
reference = {k: v.clone() for k, v in model.state_dict().items()}
sweep = lr_range_test(model, plain_loader(), optimizer=optimizer, start_lr=1e-6, end_lr=1.0, steps=RANGE_STEPS,
                      device=device)
range_test_restored = all(torch.equal(reference[k], v.cpu()) for k, v in model.state_dict().items())
optimizer_lrs_restored = [g["lr"] for g in optimizer.param_groups] == [g["lr"] for g in param_groups(model, LR, spread=LR_SPREAD)]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for name, lrs in schedules.items():
    ax1.plot(lrs, label=name)
ax1.set_xlabel("step"); ax1.set_ylabel("learning rate (head group)"); ax1.legend()
ax1.set_title(f"Schedules over {MAX_EPOCHS} epochs x {steps_per_epoch} steps")
sweep.plot(ax=ax2)
ax2.axvline(LR, color="k", lw=1, label=f"LR used ({LR:.0e})"); ax2.legend(fontsize=8)
print(f"range test: {len(sweep.lrs)} steps in {sweep.seconds:.1f} s, lr {sweep.lrs[0]:.1e} -> {sweep.lrs[-1]:.1e}"
      f"{' (stopped: loss diverged)' if sweep.stopped_early else ''}")
print(f"minimum of the smoothed loss at {sweep.min_loss_lr:.1e}; suggestion {sweep.suggestion:.1e}; "
      f"steepest descent at {sweep.steepest_lr:.1e}; the lessons's LR = {LR:.0e}")
print("model and optimizer restored after the test:", range_test_restored and optimizer_lrs_restored)

# %% [markdown]
# Read the curve from left to right: flat (too small to matter), falling (useful rates), a minimum, then
# the explosion. The suggestion is a starting point, not an oracle: with a pre-trained head the loss is
# already low at the start, so the curve is flat and noisy over a wide range, and with only a few dozen
# steps (a CPU budget; Smith uses a few hundred) every point rests on one mini-batch. Compare the
# suggestion with the `LR` the lesson uses — if they are within a factor of a few, the test agrees with
# the choice; exercise 3 asks you to train with the suggestion itself.
#
# ## 9. The recipe, with early stopping
#
# We now put the pieces together and let the measurements decide the two open choices: batch-norm
# statistics frozen or updated, augmentation or not. An option is taken only if it got more validation images
# right on every seed above (`tlcourse.measure.seeds.adopt`); when the seeds disagree, the data cannot rank
# the two, and we keep the simpler one (frozen statistics, no augmentation). The rule reads the accuracy
# only; when the losses point the other way, that is one more reason for caution. Layer-wise spread rates, warm-up plus cosine, and
# `EarlyStopping(monitor="val_loss", patience=PATIENCE, restore_best_weights=True)` over at most
# `MAX_EPOCHS` epochs: when the validation loss stops improving, training ends, and the weights of the best
# epoch — not the last — are loaded back.
#
# A caveat in plain words: ants vs bees has no separate test set, so choosing settings *and* reporting
# accuracy on the same 153 validation images flatters the chosen recipe a little.

# %%
use_frozen_bn = not adopt(bn_comparison)
use_augmentation = adopt(augmentation_comparison)
print(f"chosen: BN statistics {'frozen' if use_frozen_bn else 'updated'}, "
      f"{'with' if use_augmentation else 'no'} augmentation")

seed_everything(SEED)
model = start_model()
if use_frozen_bn:
    freeze_bn_stats(model)
freeze_to(model, 0)
train_loader = augmented_loader() if use_augmentation else plain_loader()
optimizer = torch.optim.AdamW(param_groups(model, LR, spread=LR_SPREAD, weight_decay=0.01))
final_lrs = [g["lr"] for g in optimizer.param_groups]
stopper = EarlyStopping(monitor="val_loss", patience=PATIENCE, restore_best_weights=True)
final_history = fit(model, train_loader, val_loader, epochs=MAX_EPOCHS, optimizer=optimizer,
                    scheduler=warmup_cosine(optimizer, MAX_EPOCHS * len(train_loader)), scheduler_interval="batch",
                    callbacks=[stopper], device=device, progress=False)
restored = evaluate(model, val_loader, device=device)
best_record = final_history.best("val_loss")
final_seconds = final_history.total_seconds + feature_extraction_results[RESOLUTION]["seconds"]
print(final_history)
print(f"\nstopped early: {final_history.stopped_early}; best epoch {final_history.best_epoch} of "
      f"{len(final_history)} run; after restoring: val loss {restored.loss:.4f} (best epoch's {best_record.val_loss:.4f}), "
      f"val acc {restored.accuracy:.3f} (last epoch's {final_history.last.val_acc:.3f})")
plot_history(final_history);

# %% [markdown]
# ## 10. Fine-tuning against feature extraction
#
# The bottom line, in accuracy and in time on this machine (fine-tuning times include the head trained on
# cached features that every fine-tuning run starts from):

# %%
candidates = {
    "progressive unfreezing": progressive_acc,
    "all at once, spread lrs": baseline["val_acc"],
    "all at once, one lr": uniform["val_acc"],
    "BN statistics updated": bn_updated["val_acc"],
    "augmentation": augmented_run["val_acc"],
    "final recipe (early stopping)": restored.accuracy,
}
best_name = max(candidates, key=candidates.get)
fe_reference = feature_extraction_results[FE_RESOLUTION]
fe_same_res = feature_extraction_results[RESOLUTION]
best_ft_acc = candidates[best_name]
rows = [(f"feature extraction, {FE_RESOLUTION} px (lesson 07)", fe_reference["val_acc"], fe_reference["seconds"]),
        (f"feature extraction, {RESOLUTION} px", fe_same_res["val_acc"], fe_same_res["seconds"])]
rows += [(f"fine-tuning: {k}, {RESOLUTION} px", v, None) for k, v in candidates.items()]
n_val = len(val_targets)
intervals = [wilson_interval(round(acc * n_val), n_val) for _, acc, _ in rows]  # the sampling error of n_val photos
seed_means = {  # the methods run on every seed: their mean, beside seed 0's run
    f"fine-tuning: {name}, {RESOLUTION} px": sum(r["val_acc"] for r in runs.values()) / len(runs)
    for name, runs in (("all at once, spread lrs", baselines), ("all at once, one lr", uniform_runs),
                       ("BN statistics updated", bn_runs), ("augmentation", augmented_runs))
}
print(f"{'method':<58}{'val acc':>8}{'95% interval':>15}{f'mean of {SEEDS} seeds':>18}{'seconds':>9}")
for (name, acc, seconds), (low, high) in zip(rows, intervals):
    if name.endswith(f"final recipe (early stopping), {RESOLUTION} px"):
        seconds = final_seconds
    mean = f"{seed_means[name]:.3f}" if name in seed_means else ""
    print(f"{name:<58}{acc:>8.3f}{f'{low:.3f}-{high:.3f}':>15}{mean:>18}{'' if seconds is None else f'{seconds:9.1f}'}")
target_met = best_ft_acc >= fe_reference["val_acc"]
gap_images = round((best_ft_acc - fe_reference["val_acc"]) * len(val_targets))
print(f"\nbest fine-tuning ({best_name}): {best_ft_acc:.3f}; feature extraction at {FE_RESOLUTION} px: "
      f"{fe_reference['val_acc']:.3f} -> {'reached' if target_met else 'NOT reached'} "
      f"({gap_images:+d} validation images)")

fig, ax = plt.subplots(figsize=(9, 3.6))
ax.barh([r[0] for r in rows][::-1], [r[1] for r in rows][::-1],
        xerr=[[r[1] - low for r, (low, _) in zip(rows, intervals)][::-1],
              [high - r[1] for r, (_, high) in zip(rows, intervals)][::-1]], capsize=3,
        color=["tab:blue"] * len(candidates) + ["tab:gray"] * 2)
ax.axvline(fe_reference["val_acc"], color="k", ls="--", lw=1,
           label=f"lesson 07's method ({fe_reference['val_acc']:.3f})")
ax.set_xlim(max(0.0, min(r[1] for r in rows) - 0.05), 1.0); ax.set_xlabel("validation accuracy"); ax.legend()
ax.set_title("Fine-tuning against feature extraction (ants vs bees)"); fig.tight_layout()

# %% [markdown]
# Every row is one run with seed 0 (the best is picked among them); the methods of sections 5 to 7 also show
# their mean over the seeds, and the seed tables above show how far one run can move. The error bars are 95%
# Wilson intervals for an accuracy measured on that many validation photos, the other source of noise:
# where two methods' intervals overlap, this split cannot rank them. Lesson 09's cross-validation shows how
# to get a tighter, honest number for the cheap methods.
#
# What to take from the table: on 244 photos of two classes that ImageNet already knows well (it has
# an *ant* and a *bee* class), the pretrained features are nearly sufficient, and feature extraction is
# both quick and hard to beat. Fine-tuning is 10–100 times more expensive on a CPU, and with a few epochs
# at a lower resolution it lands close to feature extraction — a little above or a little below, by a few
# of the 153 validation images. Fine-tuning pays off when the new task is further from ImageNet or when
# there is more data; here the careful recipe mostly protects what the pretrained network already knew.
# If the printed verdict above says "NOT reached", that is the honest result of this budget, not a bug:
# lesson 07's head sees 224-px features, our fine-tuning runs at `RESOLUTION` px for a few epochs.
#
# ## Summary
#
# * Fine-tuning starts from a trained head (here: trained on cached features in seconds), then unfreezes
#   stages from the top (`freeze_to`, `fine_tune(..., unfreeze_to=...)`).
# * Layer-wise learning rates are optimizer parameter groups (`param_groups(model, lr, spread=...)`): the
#   early, generic stages move 100 times more slowly than the head.
# * Batch-norm statistics frozen or updated, augmentation or none: both are choices to measure, and with 153
#   validation images a gap of a few images must hold on several seeds before it means anything (the seed
#   tables of sections 5 to 7 say whether it did in your run).
# * Augmentation is a regulariser whose benefit needs epochs; with a budget of two it rarely shows.
# * Warm-up plus cosine (or one-cycle), a rate checked with the range test, and early stopping that
#   restores the best epoch make the recipe robust.
# * On ants vs bees, fine-tuning costs far more than feature extraction and gains little or nothing: the
#   pretrained features already separate the classes.
#
# ## Exercises
#
# 1. Set `RESOLUTION = 224` and `EPOCHS = 4` (expect a long run on a CPU). Does fine-tuning now beat feature extraction?
# 2. Set `LR = 1e-2`. Compare the spread and the uniform runs again: which one suffers more, and why?
# 3. Use `sweep.suggestion` as `LR` for the final recipe. Is it better than the default?
# 4. Run the batch-norm comparison with `BATCH_SIZE = 4` and `BATCH_SIZE = 32`. How does the gap change, and
#    does it hold on every seed?
# 5. Give augmentation `EPOCHS = 6`. Does it now beat the plain run on every seed?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="08_fine_tuning",
    results={
        **run_context(plain.name, plain.note, device, SMOKE, SEED),
        "backbone": "efficientnet_lite0",
        "resolution": RESOLUTION,
        "fe_resolution": FE_RESOLUTION,
        "batch_size": BATCH_SIZE,
        "epochs": EPOCHS,
        "train_images": len(train_images),
        "val_images": len(val_images),
        "lr": LR,
        "lr_spread": LR_SPREAD,
        "epoch_seconds_estimate": {str(k): v for k, v in epoch_estimate.items()},
        "decode_seconds": decode_seconds,
        "feature_extraction": {str(k): v for k, v in feature_extraction_results.items()},
        "stage_names": stage_names,
        "top_from": TOP_FROM,
        "progressive": progressive,
        "layerwise_groups": layerwise_groups,
        "runs": {
            "baseline": baseline,
            "uniform_lr": uniform,
            "bn_updated": bn_updated,
            "augmentation": augmented_run,
        },
        "seeds": comparison_seeds,
        "seed_runs": {"baseline": list(baselines.values()), "uniform_lr": list(uniform_runs.values()),
                      "bn_updated": list(bn_runs.values()), "augmentation": list(augmented_runs.values())},
        "seed_comparisons": {"uniform_lr": uniform_comparison.to_dict(), "bn_updated": bn_comparison.to_dict(),
                             "augmentation": augmentation_comparison.to_dict()},
        "range_test": {**sweep.to_dict(), "restored": range_test_restored and optimizer_lrs_restored},
        "schedules": schedules,
        "final": {
            "frozen_bn": use_frozen_bn,
            "augmentation": use_augmentation,
            "max_epochs": MAX_EPOCHS,
            "patience": PATIENCE,
            "lrs": final_lrs,
            "epochs_run": len(final_history),
            "stopped_early": final_history.stopped_early,
            "best_epoch": final_history.best_epoch,
            "best_val_loss": best_record.val_loss,
            "best_epoch_val_acc": best_record.val_acc,
            "restored_val_loss": restored.loss,
            "restored_val_acc": restored.accuracy,
            "last_val_acc": final_history.last.val_acc,
            "seconds": final_seconds,
            "history": final_history.to_dict(),
        },
        "comparison": {
            "fine_tuning": candidates,
            "seed_means": seed_means,
            "best_fine_tuning": best_name,
            "intervals": {name: list(interval) for (name, _, _), interval in zip(rows, intervals)},
            "best_fine_tuning_acc": best_ft_acc,
            "feature_extraction_acc": fe_reference["val_acc"],
            "feature_extraction_seconds": fe_reference["seconds"],
            "feature_extraction_same_res_acc": fe_same_res["val_acc"],
            "target_met": target_met,
        },
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
{k: v for k, v in record["results"].items() if k in ("comparison", "feature_extraction", "epoch_seconds_estimate")}
