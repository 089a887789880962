# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Feature extraction: a pretrained network as a fixed feature extractor
#
# Lesson 05 showed that EfficientNet-Lite0 with its ImageNet weights already *knows* ants and bees: it
# puts most of them in ImageNet's *ant* and *bee* classes. Most problems are not ImageNet classes, though.
# The cheapest way to reuse what the network learned is **feature extraction**: keep every pretrained
# layer fixed, cut off the 1,000-class classifier, and train only a new linear layer (the *head*) on the
# 1,280 numbers the network computes for each image just before its classifier.
#
# Because the backbone never changes, its features never change either: we compute them **once** for
# every image and train the head on the cached tensors. That turns an hour of CPU training into seconds.
#
# **In this lesson you will**
#
# 1. freeze a network by stages and read which parameters still train (`tlcourse.transfer`);
# 2. cache Lite0's features of the 397 ants-vs-bees photos and train a linear head on them, reaching
#    over 93% validation accuracy in seconds;
# 3. train the *same* network from scratch on the same photos with a short budget, and see how far it gets;
# 4. look at the features in 2-D (PCA): pretrained against randomly initialised;
# 5. measure how the head's accuracy grows with 1, 2, 5, 10 and all labelled images per class.

# %% tags=["parameters"]
SMOKE = False
SEED = 0
DEVICE = "auto"
RESULTS_PATH = None
HEAD_EPOCHS = 30  # epochs of the linear head on cached features
HEAD_LR = 1e-3
SCRATCH_EPOCHS = 4  # the from-scratch baseline's budget (under a minute on a quiet 2-core CPU)
SCRATCH_RESOLUTION = 112  # from scratch, images are downscaled to save time (the pretrained network sees 224)
SHOTS = (1, 2, 5, 10)  # labelled training images per class in the label-efficiency curve (plus "all")
SHOT_SEEDS = 5  # random draws of the labelled images per point of the curve
TRAIN_PER_CLASS = None  # None: all 244 training images; smoke mode uses 15 per class
EVAL_PER_CLASS = None  # None: all 153 validation images; smoke mode uses 10 per class

# %%
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.plots import plot_history, show_images
from tlcourse.models.efficientnet import LITE_MEAN, LITE_STD, efficientnet_lite0
from tlcourse.training import evaluate, fit
from tlcourse.transfer import (
    extract_features,
    feature_cache_key,
    freeze,
    replace_head,
    train_head,
    trainable_report,
)
from tlcourse.transfer.backbones import load_backbone

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE:
    TRAIN_PER_CLASS = TRAIN_PER_CLASS or 15
    EVAL_PER_CLASS = EVAL_PER_CLASS or 10
    SCRATCH_EPOCHS = min(SCRATCH_EPOCHS, 1)
    SCRATCH_RESOLUTION = min(SCRATCH_RESOLUTION, 64)
    SHOT_SEEDS = min(SHOT_SEEDS, 2)
print("device:", describe_device(device))

# %% [markdown]
# ## 1. The idea: freeze the backbone, train a new head
#
# `tlcourse.transfer.stages` cuts a network into its stages from input to output — for Lite0 the stem,
# the seven MBConv stages, the 1x1 head convolution and the classifier. `freeze(model)` sets
# `requires_grad=False` on every stage but the last; `trainable_report` counts what is left to train.
# `load_backbone("efficientnet_lite0", num_classes=2)` returns the pretrained network with a fresh
# two-class linear layer, its preprocessing (`(255x - 127)/128`, not ImageNet's mean and std) and
# its feature dimension.

# %%
backbone = load_backbone("efficientnet_lite0", num_classes=2)
model = backbone.model
freeze(model)
report = trainable_report(model)
print(report)
print(f"\nfeature dimension: {backbone.feature_dim}; weights: {backbone.source}")

fig, ax = plt.subplots(figsize=(9, 3.2))
names = [s.name.replace("features.", "") for s in report.stages]
ax.bar(names, [s.total - s.trainable for s in report.stages], color="0.7", label="frozen (pretrained)")
ax.bar(names, [s.trainable for s in report.stages], color="tab:orange", label="trained (new head)")
ax.set_yscale("log"); ax.set_ylabel("parameters"); ax.legend()
ax.set_title(f"Feature extraction trains {report.trainable:,} of {report.total:,} parameters "
             f"({report.trainable / report.total:.2%})")
plt.setp(ax.get_xticklabels(), rotation=30, ha="right"); fig.tight_layout()

# %% [markdown]
# Everything grey is fixed: the network maps an image to a 1,280-number vector (the global average of
# the last feature maps), always the same for the same image. The orange bar is a logistic regression on
# those vectors. So we can run the grey part **once per image**, store the vectors, and train the head
# on them as on any table of numbers — the cost of an epoch drops from a forward pass through 3.4 million
# parameters per image to a 1,280 x 2 matrix product.
#
# ## 2. The data, decoded once
#
# Ants vs bees (the PyTorch transfer-learning tutorial's data set): 244 training and 153 validation
# photos. We decode and preprocess them once into tensors (resize to 256, centre crop 224, Lite
# normalisation), so the pretrained features, the random-init features and the from-scratch baseline
# all read the same images.

# %%
bundle = data.load("hymenoptera", transform=backbone.transform, per_class=TRAIN_PER_CLASS,
                   eval_per_class=EVAL_PER_CLASS, batch_size=32, seed=SEED)
print(bundle.note)


start = time.perf_counter()
train_images, train_targets = data.dataset_tensors(bundle.train)
val_images, val_targets = data.dataset_tensors(bundle.val)
decode_seconds = time.perf_counter() - start
print(f"decoded {len(train_images)} + {len(val_images)} images in {decode_seconds:.1f} s")
shown = torch.cat([torch.arange(0, 6), torch.arange(len(val_images) - 6, len(val_images))])
show_images(val_images[shown], val_targets[shown], bundle.classes, mean=LITE_MEAN, std=LITE_STD, ncols=6,
            title="Validation images");


# %% [markdown]
# ## 3. Features computed once, a head trained on them
#
# `extract_features` runs the network in eval mode under `torch.no_grad()` and keeps, for each image, the
# input of its classification layer (a forward pre-hook on `classifier.1`). With a `cache_key` it also saves
# them on disk and reads them back the next time — keyed by model, data and transform, so that changing any
# of them computes fresh features. Here we cache into a temporary folder and time both calls.

# %%
cache_dir = Path(tempfile.mkdtemp(prefix="tlcourse07_"))
key = feature_cache_key("efficientnet_lite0", backbone.source, bundle.note, "train", backbone.transform)
train_features = extract_features(model, data.tensor_loader(train_images, train_targets), device=device,
                                  cache_file=cache_dir / f"{key}.pt")
val_features = extract_features(model, data.tensor_loader(val_images, val_targets), device=device)
extract_seconds = train_features.seconds + val_features.seconds
reread_start = time.perf_counter()
reread = extract_features(model, data.tensor_loader(train_images, train_targets), cache_file=cache_dir / f"{key}.pt")
reread_seconds = time.perf_counter() - reread_start
assert reread.from_disk and torch.equal(reread.features, train_features.features)
shutil.rmtree(cache_dir)  # a real project would keep them: pass cache_key= to use the course's cache folder
print(f"features: train {tuple(train_features.features.shape)}, val {tuple(val_features.features.shape)}")
print(f"computed once in {extract_seconds:.1f} s ({len(train_features) + len(val_features)} images); "
      f"read back from disk in {reread_seconds * 1000:.1f} ms")


# %% [markdown]
# The head is an `nn.Linear(1280, 2)` trained by the same `fit` as every other lesson — only the loader
# now yields cached feature vectors instead of images. `train_head` (from `tlcourse.transfer`; read it
# with `train_head??`) builds the layer from a seed, shuffles `train.loader(...)` and calls `fit`.

# %%
head, head_history = train_head(train_features, val_features, len(bundle.classes), epochs=HEAD_EPOCHS, lr=HEAD_LR,
                                seed=SEED, device=device)
head_seconds = head_history.total_seconds
head_val_acc = head_history.last.val_acc
print(f"linear head: val accuracy {head_val_acc:.3f} after {HEAD_EPOCHS} epochs, "
      f"{head_seconds:.2f} s of training ({head_seconds / HEAD_EPOCHS * 1000:.1f} ms per epoch)")
plot_history(head_history);

# %% [markdown]
# The trained head is an ordinary linear layer: put it back into the network with `replace_head` and the
# whole Lite0 now classifies ants and bees from pixels, giving the same logits as the head on the cached
# features (we check it on the first 32 validation images; all of them would cost another full pass).

# %%
replace_head(model, head)
model.eval()
check = slice(0, 32)
with torch.no_grad():
    logits_from_pixels = model(val_images[check].to(device)).cpu()
    logits_from_cache = head.cpu()(val_features.features[check])
end_to_end_max_diff = float((logits_from_pixels - logits_from_cache).abs().max())
end_to_end_agreement = float((logits_from_pixels.argmax(1) == logits_from_cache.argmax(1)).float().mean())
print(f"Lite0 + trained head, from pixels vs from cached features ({len(logits_from_pixels)} images): "
      f"largest logit difference {end_to_end_max_diff:.2e}, same prediction for {end_to_end_agreement:.0%}")

# %% [markdown]
# ## 4. The same network from scratch
#
# Is it the architecture or the pretrained weights? We train the *same* Lite0, randomly initialised, on
# the same 244 photos. Training the whole network costs a forward *and* backward pass through every layer
# for every image in every epoch, so on a CPU we can only afford a short budget: `SCRATCH_EPOCHS` epochs at
# `SCRATCH_RESOLUTION` x `SCRATCH_RESOLUTION` pixels (downscaled to make each epoch about three times cheaper),
# AdamW with a one-cycle schedule, no augmentation. That is an honest lesson-sized budget, not the best a from-scratch network
# could ever do — but even much longer training on 244 images rarely gets close (see the exercises).

# %%
seed_everything(SEED)
scratch = replace_head(efficientnet_lite0(pretrained=False), len(bundle.classes))
small = lambda images: data.resize_images(images, SCRATCH_RESOLUTION)
scratch_train = data.tensor_loader(small(train_images), train_targets, batch_size=32, shuffle=True, seed=SEED)
scratch_val = data.tensor_loader(small(val_images), val_targets, batch_size=64)
optimizer = torch.optim.AdamW(scratch.parameters(), lr=3e-3)
scratch_history = fit(scratch, scratch_train, scratch_val, epochs=SCRATCH_EPOCHS, optimizer=optimizer,
                      scheduler="onecycle", device=device, progress=False)
scratch_val_acc = scratch_history.last.val_acc
scratch_seconds = scratch_history.total_seconds
majority = max(val_targets.bincount().tolist()) / len(val_targets)
scratch_predictions = evaluate(scratch, scratch_val, device=device).predictions
scratch_predicted_share = (scratch_predictions.bincount(minlength=len(bundle.classes)) / len(scratch_predictions)).tolist()

print(f"{'':<34}{'val acc':>9}{'train s':>9}{'trained params':>16}")
print(f"{'pretrained features + linear head':<34}{head_val_acc:>9.3f}{extract_seconds + head_seconds:>9.1f}"
      f"{report.trainable:>16,}")
print(f"{'same network from scratch':<34}{scratch_val_acc:>9.3f}{scratch_seconds:>9.1f}"
      f"{sum(p.numel() for p in scratch.parameters()):>16,}")
print(f"{'always the majority class':<34}{majority:>9.3f}")
print("\nshare of the from-scratch network's validation answers per class:",
      {c: round(share, 3) for c, share in zip(bundle.classes, scratch_predicted_share)})
plot_history(scratch_history);

# %% [markdown]
# Feature extraction (the time includes computing the features once) is both faster and far more accurate.
# The from-scratch network has 3.4 million parameters to fit from 244 photos; its validation accuracy stays
# near what you get by always answering the more frequent class — look at the share of its answers per class:
# with this budget it has not learned to tell the two apart and (in our run) gives nearly every image the same
# label, so its accuracy is just the share of that class in the validation set. The pretrained weights, learned from 1.3
# million ImageNet images, are what makes 244 photos enough.
#
# For comparison, the PyTorch tutorial *Transfer learning for computer vision* trains the same kind of head
# on a frozen ResNet-18 ("ConvNet as fixed feature extractor") for 25 epochs, pushing every (augmented) image
# through the frozen backbone again in every epoch; it estimates half the time of its fine-tuning run, which
# takes 15–25 minutes on a CPU. Its reported 0.954 is the *best* of its epochs, chosen on the same validation
# set it reports, so it is an optimistic figure; ours is the accuracy after the last epoch. With cached features
# the backbone runs once.
#
# ## 5. What the features look like
#
# Why does a linear head suffice? We project the 1,280-dimensional validation features onto their first
# two principal components (`torch.pca_lowrank`, features centred), once for the pretrained network and once
# for the same network with random weights, and colour each image by its class. A number to go with the
# picture: the leave-one-out accuracy of a 5-nearest-neighbour vote in the full feature space.

# %%
seed_everything(SEED)
random_model = efficientnet_lite0(pretrained=False)
random_val = extract_features(random_model, data.tensor_loader(val_images, val_targets), device=device)


def pca_2d(features):
    centred = features - features.mean(0)
    _, s, v = torch.pca_lowrank(centred, q=min(10, *centred.shape), center=False)
    explained = (s[:2] ** 2).sum() / (centred**2).sum()
    return centred @ v[:, :2], float(explained)


def knn_loo_accuracy(features, targets, k=5):
    distances = torch.cdist(features, features)
    distances.fill_diagonal_(float("inf"))
    neighbours = targets[distances.topk(k, largest=False).indices]
    votes = (neighbours == 1).float().mean(1)
    return float(((votes > 0.5).long() == targets).float().mean())


fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
projection = {}
for ax, (label, feats) in zip(axes, [("ImageNet-pretrained Lite0", val_features),
                                     ("randomly initialised Lite0", random_val)]):
    points, explained = pca_2d(feats.features)
    knn = knn_loo_accuracy(feats.features, feats.targets)
    projection[label] = {"pca_explained_variance": explained, "knn5_loo_acc": knn,
                         "mean_feature_norm": float(feats.features.norm(dim=1).mean())}
    for c, colour in zip(range(len(bundle.classes)), ["tab:red", "tab:blue"]):
        chosen = feats.targets == c
        ax.scatter(points[chosen, 0], points[chosen, 1], s=12, alpha=0.7, color=colour, label=bundle.classes[c])
    ax.set_title(f"{label}\n2 PCs explain {explained:.0%}; 5-NN accuracy {knn:.2f}")
    ax.set_xlabel("PC 1"); ax.set_ylabel("PC 2"); ax.legend()
fig.tight_layout()
pretrained_knn = projection["ImageNet-pretrained Lite0"]["knn5_loo_acc"]
random_knn = projection["randomly initialised Lite0"]["knn5_loo_acc"]
print(f"5-NN leave-one-out accuracy: pretrained {pretrained_knn:.3f}, random init {random_knn:.3f}")

# %% [markdown]
# With pretrained weights, ants and bees fall into two largely separate clouds even in just two dimensions,
# without the network ever having been told about this data set; a linear head only has to draw the line.
# With random weights the classes are mixed and the nearest neighbours of an image are no better than a
# coin flip at telling its class. Note the axes, too: the random network's features are of the order of
# 1e-7 and two components hold most of their variance — without training, the signal almost dies out on
# its way through sixteen blocks, and what is left says little about the image. Part of that is the
# initialisation: "random" here means PyTorch's default initialisation of each layer, not a scheme chosen
# to keep the signal's scale through a deep network (such as the He initialisation of lesson 04), so this
# baseline measures an *untrained network as PyTorch builds it*, not the best a random network could do.
#
# ## 6. How many labelled images do we need?
#
# Because the features are cached, a head trains in a fraction of a second, so we can afford many: for
# 1, 2, 5, 10 and all labelled training images per class, `SHOT_SEEDS` random draws each, a head trained
# for at least 100 steps, evaluated on the full validation set.

# %%
available = min(train_features.targets.bincount().tolist())
shots = [n for n in SHOTS if n <= available]
curve = []
for n in shots + ["all"]:
    accuracies = []
    for seed in range(SHOT_SEEDS if n != "all" else 1):
        if n == "all":
            subset = train_features
        else:
            rows = data.per_class_indices(train_features.targets.tolist(), n, seed=1000 * seed + n, sort=False)
            subset = train_features.subset(rows)
        _, history = train_head(subset, val_features, len(bundle.classes), epochs=HEAD_EPOCHS, lr=HEAD_LR,
                                min_steps=100, seed=SEED + seed, device=device)
        accuracies.append(history.last.val_acc)
    acc = torch.tensor(accuracies)
    curve.append({"per_class": n, "train_images": len(subset), "mean_acc": float(acc.mean()),
                  "std_acc": float(acc.std()) if len(acc) > 1 else 0.0, "runs": len(acc)})
    print(f"{str(n):>4} per class ({len(subset):>3} images): val acc {acc.mean():.3f} +- {curve[-1]['std_acc']:.3f}"
          f" over {len(acc)} draw(s)")

fig, ax = plt.subplots(figsize=(6.5, 4))
xs = [c["train_images"] / len(bundle.classes) for c in curve]
ax.errorbar(xs, [c["mean_acc"] for c in curve], yerr=[c["std_acc"] for c in curve], marker="o", capsize=3,
            label="pretrained features + linear head")
ax.axhline(scratch_val_acc, color="tab:gray", ls="--", label=f"from scratch, all images ({scratch_val_acc:.2f})")
ax.axhline(majority, color="k", ls=":", label="majority class")
ax.set_xscale("log"); ax.set_xlabel("labelled training images per class"); ax.set_ylabel("validation accuracy")
ax.set_ylim(0.4, 1.0); ax.legend(loc="center right"); ax.set_title("Label efficiency of feature extraction")
fig.tight_layout()

# %% [markdown]
# A handful of labelled photos per class already gets most of the way; the curve then flattens, and
# the spread between random draws (error bars) shrinks as the draw stops mattering. One or two images per
# class are a lottery: which ant you happened to label matters a lot. The from-scratch network with *all*
# images sits below the head trained on only a few.
#
# ## Summary
#
# * Freezing is `requires_grad=False` per stage: for Lite0, feature extraction trains 2,562 of 3.37 million
#   parameters (and frozen batch norms keep their ImageNet statistics).
# * A frozen backbone computes the same features every epoch, so compute them **once**: the whole
#   experiment — features for 397 images plus a head — takes seconds on a CPU instead of a backbone pass
#   over every image in every epoch, and reaches over 93% validation accuracy on ants vs bees.
# * The same architecture trained from scratch on 244 photos, with a lesson-sized budget, stays near the
#   majority-class baseline: the knowledge is in the pretrained weights, not in the architecture.
# * Pretrained features separate the two classes visibly even in a 2-D PCA projection; random features do not.
# * A few labelled images per class already give most of the accuracy.
#
# ## Exercises
#
# 1. Change `HEAD_EPOCHS` and `HEAD_LR`. How sensitive is the head? Does it ever overfit 244 images?
# 2. Give `SCRATCH_EPOCHS = 30` and `SCRATCH_RESOLUTION = 224` a try (it takes several minutes). How far does
#    the from-scratch network get?
# 3. Replace the linear head by scikit-learn's `LogisticRegression` on `train_features.features.numpy()`.
#    Do you get the same accuracy?
# 4. Use the features of an earlier stage (`extract_features(model, loader, layer="features.stage6")` keeps
#    that stage's *input*, which you must pool). Are earlier features better or worse for this task?
# 5. With internet access, repeat section 3 with `load_backbone("resnet18")` (its own transform!) and compare
#    with the tutorial's 0.954 (its best epoch, chosen on validation: compare with your best epoch too).

# %%
record = save_results(
    RESULTS_PATH,
    lesson="07_feature_extraction",
    results={
        **run_context(bundle.name, bundle.note, device, SMOKE, SEED),
        "backbone": backbone.name,
        "weights": backbone.source,
        "feature_dim": backbone.feature_dim,
        "train_images": len(train_features),
        "val_images": len(val_features),
        "trainable_parameters": report.trainable,
        "total_parameters": report.total,
        "decode_seconds": decode_seconds,
        "extract_seconds": extract_seconds,
        "cache_reread_seconds": reread_seconds,
        "head_epochs": HEAD_EPOCHS,
        "head_val_acc": head_val_acc,
        "head_train_acc": head_history.last.train_acc,
        "head_seconds": head_seconds,
        "end_to_end_max_logit_diff": end_to_end_max_diff,
        "end_to_end_agreement": end_to_end_agreement,
        "scratch_epochs": SCRATCH_EPOCHS,
        "scratch_resolution": SCRATCH_RESOLUTION,
        "scratch_val_acc": scratch_val_acc,
        "scratch_seconds": scratch_seconds,
        "scratch_predicted_share": scratch_predicted_share,
        "majority_acc": majority,
        "pretrained_knn5_acc": pretrained_knn,
        "random_knn5_acc": random_knn,
        "projection": projection,
        "label_efficiency": curve,
        "tutorial_fixed_feature_extractor_acc": 0.954,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]
