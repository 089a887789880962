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
# 2. cache Lite0's features of the 397 ants-vs-bees photos and train a linear head on them in seconds;
# 3. see *where* in a photo the network finds its evidence, with Grad-CAM heat maps;
# 4. train the *same* network from scratch on the same photos with a short budget, and see how far it gets;
# 5. look at the features in 2-D (PCA): pretrained against randomly initialised;
# 6. measure how the head's accuracy grows with 1, 2, 5, 10 and all labelled images per class;
# 7. probe every stage of the network, on ants vs bees and on handwritten digits, to see which layers are
#    *generic* and which are *specific* to ImageNet.

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
HEAD_EPOCHS = 30  # epochs of the linear head on cached features
HEAD_LR = 1e-3
SCRATCH_EPOCHS = 4  # the from-scratch baseline's budget (under a minute on a quiet 2-core CPU)
SCRATCH_RESOLUTION = 112  # from scratch, images are downscaled to save time (the pretrained network sees 224)
SHOTS = (1, 2, 5, 10)  # labelled training images per class in the label-efficiency curve (plus "all")
SHOT_SEEDS = 5  # random draws of the labelled images per point of the curve
TRAIN_PER_CLASS = None  # None: all 244 training images; smoke mode uses 15 per class
EVAL_PER_CLASS = None  # None: all 153 validation images; smoke mode uses 10 per class
CAM_LAYER = "features.head"  # the layer Grad-CAM reads: Lite0's last feature map (7 x 7 at 224 pixels)
CAM_CORRECT_PER_CLASS = 4  # correctly classified validation images shown per class (smoke mode: 2)
CAM_WRONG = 4  # misclassified validation images shown, when there are that many (smoke mode: 2)
PROBE_SEEDS = 3  # seeds of every stage-wise linear probe, each with its own draw of training images (smoke: 2)
PROBE_PER_CLASS = 50  # labelled ants-vs-bees training images per class drawn by each probe seed
DIGIT_TRAIN_PER_CLASS = 30  # mnist5k training digits per class decoded for the far-domain probes (smoke: 8)
DIGIT_TEST_PER_CLASS = 20  # mnist5k test digits per class (smoke: 5)
DIGIT_PROBE_PER_CLASS = 20  # of which each probe seed draws this many per class (smoke: 6)
PROBE_MIN_STEPS = 200  # optimizer steps of every linear probe, at least (smoke: 100)

# %%
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from torch.nn import functional as F

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.activations import capture_activations
from tlcourse.measure.gradcam import grad_cam, gradient_saliency, plot_heatmaps
from tlcourse.measure.plots import plot_history, show_images
from tlcourse.measure.probes import linear_probe, pooled_stage_features
from tlcourse.models.efficientnet import LITE_MEAN, LITE_STD, efficientnet_lite0
from tlcourse.training import evaluate, fit
from tlcourse.transfer import (
    extract_features,
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
    CAM_CORRECT_PER_CLASS, CAM_WRONG = min(CAM_CORRECT_PER_CLASS, 2), min(CAM_WRONG, 2)
    PROBE_SEEDS = min(PROBE_SEEDS, 2)
    DIGIT_TRAIN_PER_CLASS, DIGIT_TEST_PER_CLASS = min(DIGIT_TRAIN_PER_CLASS, 8), min(DIGIT_TEST_PER_CLASS, 5)
    DIGIT_PROBE_PER_CLASS, PROBE_MIN_STEPS = min(DIGIT_PROBE_PER_CLASS, 6), min(PROBE_MIN_STEPS, 100)
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
# input of its classification layer (a forward pre-hook on `classifier.1`). With `cache=True` it also saves
# them in the course's cache folder and reads them back the next time, keyed by their *content*: the
# network's weights (all but the head's, which the features do not depend on), the layer and the images'
# pixels (`tlcourse.data.fingerprint`). Changing any of them computes fresh features; lessons 08 and 09, which
# extract the same features of the same photos, read yours. We time both calls. If lesson 05 (which compares
# Lite0 with Lite1 and Lite2 on these photos) or an earlier run of this lesson computed them already, the
# first call finds them on disk too (`from_disk`), and `seconds` keeps what computing them took.

# %%
train_features = extract_features(model, data.tensor_loader(train_images, train_targets), device=device, cache=True)
val_features = extract_features(model, data.tensor_loader(val_images, val_targets), device=device, cache=True)
extract_seconds = train_features.seconds + val_features.seconds
reread_start = time.perf_counter()
reread = extract_features(model, data.tensor_loader(train_images, train_targets), device=device, cache=True)
reread_seconds = time.perf_counter() - reread_start
assert reread.from_disk and torch.equal(reread.features, train_features.features)
earlier = " by an earlier run (found in the cache this time)" if train_features.from_disk else ""
print(f"features: train {tuple(train_features.features.shape)}, val {tuple(val_features.features.shape)}")
print(f"computed once in {extract_seconds:.1f} s{earlier} ({len(train_features) + len(val_features)} images); "
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
# ## 4. What the network looks at: Grad-CAM
#
# The head decides from 1,280 numbers, each the average over the image of one channel of Lite0's last
# feature map (the output of `features.head`, $7 \times 7$ positions at 224 pixels). Which *places* in the photo
# drove a decision? **Grad-CAM** (Selvaraju et al. 2017, *Grad-CAM: Visual Explanations from Deep Networks
# via Gradient-based Localization*) answers with one backward pass. For the score $y^c$ of class $c$ and the
# layer's channels $A^k$ (each $h \times w$):
#
# $$\alpha^c_k = \frac{1}{hw}\sum_{i,j}\frac{\partial y^c}{\partial A^k_{ij}}, \qquad
#   L^c = \mathrm{ReLU}\Big(\sum_k \alpha^c_k A^k\Big).$$
#
# Each channel gets a weight (how much the class score grows with that channel, averaged over positions),
# the channels are summed with those weights, and only the positive part is kept: the places whose features
# speak *for* class $c$. The $h \times w$ map is upsampled (bilinear) to the photo and laid over it.
#
# `grad_cam(model, images, layer, target)` (in `tlcourse.measure.gradcam`; read it with `grad_cam??`) puts a
# forward hook on `layer`, as `capture_activations` does, keeps its output, and takes the gradient of the
# class scores with `torch.autograd.grad`, so no parameter gets a `.grad` and our frozen backbone stays
# frozen. `tests/test_gradcam.py` checks that it equals captum's `LayerGradCam` on the same layer.
#
# We look at validation photos the network gets right (a few of each class) and at the ones it gets wrong,
# each with the map of the class it *predicted*.

# %%
val_predictions = head.cpu()(val_features.features).argmax(1)
model.to(device)  # the check above moved the head (part of the model) to the CPU
correct = val_predictions == val_targets
pick_generator = torch.Generator().manual_seed(SEED)


def pick(mask, k):
    """Up to k random indices where mask is true."""
    where = mask.nonzero().flatten()
    return where[torch.randperm(len(where), generator=pick_generator)[:k]]


cam_index = torch.cat([pick(correct & (val_targets == c), CAM_CORRECT_PER_CLASS) for c in range(len(bundle.classes))]
                      + [pick(~correct, CAM_WRONG)])
cam_images, cam_predicted, cam_true = val_images[cam_index], val_predictions[cam_index], val_targets[cam_index]
start = time.perf_counter()
cams = grad_cam(model, cam_images, CAM_LAYER, cam_predicted)
cam_seconds = time.perf_counter() - start
layer_maps = capture_activations(model, cam_images, [CAM_LAYER])[CAM_LAYER]
print(f"{CAM_LAYER} output: {tuple(layer_maps.shape)} -> Grad-CAM maps {tuple(cams.shape)} "
      f"for {len(cam_images)} images in {cam_seconds:.2f} s")
plot_heatmaps(cam_images, cams, [f"{bundle.classes[p]} (true {bundle.classes[t]})" for p, t in zip(cam_predicted, cam_true)],
              title_colors=["black" if p == t else "red" for p, t in zip(cam_predicted, cam_true)],
              mean=LITE_MEAN, std=LITE_STD, ncols=4, title=f"Grad-CAM of the predicted class at {CAM_LAYER} "
              "(wrong predictions in red)");

# %% [markdown]
# Between `features.head` and the class scores there is only the global average pool, dropout (off in eval
# mode) and the linear head. So $\partial y^c / \partial A^k_{ij} = w_{ck} / hw$, the head's weight divided by
# the number of positions: at this layer Grad-CAM *is* the class activation map of Zhou et al. 2016
# (*Learning Deep Features for Discriminative Localization*), $\mathrm{ReLU}(\sum_k w_{ck} A^k)/hw$. We check
# it, and then test whether the maps point at evidence the network uses: grey out (set to 0, the middle of
# Lite's input range) the quarter of the pixels Grad-CAM finds hottest, or instead the coldest quarter, and
# compare the probability the network then gives its predicted class.

# %%
weights = head.weight.detach().cpu()[cam_predicted]  # (n, 1280): w_ck of each image's predicted class
cam_from_weights = F.relu((weights[:, :, None, None] * layer_maps).sum(1, keepdim=True)) / layer_maps[0, 0].numel()
cam_from_weights = F.interpolate(cam_from_weights, size=cam_images.shape[-2:], mode="bilinear")[:, 0]
cam_equals_class_activation_map = float((cam_from_weights - cams).abs().max())
print(f"Grad-CAM vs ReLU(sum_k w_ck A_k)/hw: largest difference {cam_equals_class_activation_map:.1e}")


def grey_out(images, maps, hottest):
    """The images with the hottest (or coldest) quarter of each map's pixels set to 0."""
    flat = maps.flatten(1)
    chosen = flat.argsort(dim=1, descending=hottest)[:, : flat.shape[1] // 4]
    keep = torch.ones_like(flat).scatter_(1, chosen, 0.0).view_as(maps)
    return images * keep[:, None]


@torch.no_grad()
def predicted_probability(images):
    return model(images.to(device)).softmax(1).cpu()[torch.arange(len(images)), cam_predicted]


probability = {"unchanged": predicted_probability(cam_images),
               "hottest quarter greyed": predicted_probability(grey_out(cam_images, cams, hottest=True)),
               "coldest quarter greyed": predicted_probability(grey_out(cam_images, cams, hottest=False))}
hot_hurts_more = int((probability["hottest quarter greyed"] < probability["coldest quarter greyed"]).sum())
for name, values in probability.items():
    print(f"{name:>24}: mean probability of the predicted class {values.mean():.3f}")
print(f"greying the hottest quarter lowers it more than greying the coldest for {hot_hurts_more} of {len(cam_images)} images")

# %%
display(Markdown(
    f"Over these {len(cam_images)} images the predicted class had a mean probability of "
    f"{probability['unchanged'].mean():.3f}; with the hottest quarter greyed out it fell to "
    f"{probability['hottest quarter greyed'].mean():.3f}, with the coldest quarter greyed out it was "
    f"{probability['coldest quarter greyed'].mean():.3f}. For {hot_hurts_more} of the {len(cam_images)} images, "
    "hiding what Grad-CAM marks hurt the prediction more than hiding what it leaves cold. "
    + ("So the maps do point, on the whole, at evidence the network uses — a check of the maps on a handful of "
       "images, not a proof that they explain every decision."
       if hot_hurts_more > len(cam_images) / 2 else
       "In this run the maps are *not* a reliable guide to the evidence: a heat map is a hypothesis about "
       "the network, to be tested like this, not an explanation by itself.")
))

# %% [markdown]
# A heat map belongs to a class: ask for the other class and the same photo lights up elsewhere. Below, one
# ant and one bee the network gets right, each with the Grad-CAM map of *ants*, of *bees*, and a
# **vanilla-gradient saliency map** (Simonyan et al. 2014): $\max_{\text{channel}} |\partial y^c / \partial x|$
# per pixel for the predicted class — how much a tiny change of each pixel would move the score. It is
# sharp where Grad-CAM is coarse ($7 \times 7$ cells), but noisy.

# %%
pair = torch.cat([pick(correct & (val_targets == c), 1) for c in range(len(bundle.classes))])
pair_maps = [grad_cam(model, val_images[pair], CAM_LAYER, c) for c in range(len(bundle.classes))]
pair_maps.append(gradient_saliency(model, val_images[pair], val_predictions[pair]))
order = [(m, i) for i in range(len(pair)) for m in range(len(pair_maps))]  # one row per photo
map_names = [f"Grad-CAM: {c}" for c in bundle.classes] + ["gradient saliency"]
plot_heatmaps(val_images[pair][[i for _, i in order]], torch.stack([pair_maps[m][i] for m, i in order]),
              [f"{map_names[m]} (photo of {bundle.classes[int(val_targets[pair][i])]})" for m, i in order],
              mean=LITE_MEAN, std=LITE_STD, ncols=len(pair_maps), quantile=0.99, title="One photo per row");
cam_class_difference = float((pair_maps[0] / pair_maps[0].amax((1, 2), keepdim=True).clamp(min=1e-12)
                              - pair_maps[1] / pair_maps[1].amax((1, 2), keepdim=True).clamp(min=1e-12)).abs().mean())

# %% [markdown]
# ## 5. The same network from scratch
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

# %%
scratch_top_share = max(scratch_predicted_share)
display(Markdown(
    f"Feature extraction reached **{head_val_acc:.3f}** in {extract_seconds + head_seconds:.1f} s (computing the "
    f"features once included); the same network from scratch **{scratch_val_acc:.3f}** after {scratch_seconds:.1f} s "
    f"of training, against {majority:.3f} for always answering the more frequent class. The from-scratch network "
    f"has {sum(p.numel() for p in scratch.parameters()) / 1e6:.1f} million parameters to fit from "
    f"{len(train_images)} photos, and {scratch_top_share:.0%} of its validation answers are one and the same class"
    + (": with this budget it has not learned to tell the two apart, and its accuracy is just the share of that "
       "class in the validation set." if scratch_top_share >= 0.9 else ".")
    + " The pretrained weights, learned from 1.3 million ImageNet images, are what makes so few photos enough."
))

# %% [markdown]
# For comparison, the PyTorch tutorial *Transfer learning for computer vision*
# ([pytorch.org](https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html)) uses a ResNet-18 on the
# same photos. Its often-quoted 0.954 is the *best* of its epochs, chosen on the same validation set it reports,
# so an optimistic figure (the printed outputs differ between builds of the tutorial: check the one you read);
# the tutorial puts fine-tuning the whole network (lesson 08) at 15–25 minutes on a CPU. Its "ConvNet as fixed
# feature extractor" variant, this lesson's idea, pushes every
# (augmented) image through the frozen backbone again in every epoch and, by the tutorial's estimate, takes
# about half as long. Our accuracy is the one after the last epoch, and with cached features the backbone
# runs once.
#
# ## 6. What the features look like
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

# %%
pretrained_stats, random_stats = projection["ImageNet-pretrained Lite0"], projection["randomly initialised Lite0"]
display(Markdown(
    f"In the pretrained network's feature space, the five nearest neighbours of a validation photo vote for its "
    f"class **{pretrained_knn:.3f}** of the time; in the random network's, **{random_knn:.3f}** (a coin flip "
    "gets 0.5). The network was never told about this data set, yet in its features ants and bees already lie "
    "apart, so a linear head only has to draw the line. Note the axes, too: the random network's feature "
    f"vectors have a mean length of {random_stats['mean_feature_norm']:.1e} (pretrained: "
    f"{pretrained_stats['mean_feature_norm']:.1f}), and two components hold {random_stats['pca_explained_variance']:.0%} "
    f"of their variance (pretrained: {pretrained_stats['pca_explained_variance']:.0%}): without training, the "
    "signal almost dies out on its way through sixteen blocks, and what is left says little about the image."
))

# %% [markdown]
# Part of that is the initialisation: "random" here means PyTorch's default initialisation of each layer, not a scheme chosen
# to keep the signal's scale through a deep network (such as the He initialisation of lesson 04), so this
# baseline measures an *untrained network as PyTorch builds it*, not the best a random network could do.
#
# ## 7. How many labelled images do we need?
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

# %%
by_shots = {c["per_class"]: c for c in curve}
few = [c for c in curve if c["per_class"] != "all"]
beats_scratch = [c["per_class"] for c in few if c["mean_acc"] > scratch_val_acc]
widest = max(few, key=lambda c: c["std_acc"])
display(Markdown(
    "Mean validation accuracy (± standard deviation over the draws): "
    + "; ".join(f"{c['per_class']} per class {c['mean_acc']:.3f} ± {c['std_acc']:.3f}" for c in few)
    + f"; all {by_shots['all']['train_images']} images {by_shots['all']['mean_acc']:.3f}. "
    + (f"The draws spread most with {widest['per_class']} per class ({widest['std_acc']:.3f}) and by "
       f"{few[-1]['std_acc']:.3f} with {few[-1]['per_class']}: with few labels, *which* ant you happened to label "
       "matters. " if widest is not few[-1] else "The spread does not shrink with more labels in this run. ")
    + (f"Already {beats_scratch[0]} labelled {'image' if beats_scratch[0] == 1 else 'images'} per class beat the "
       "from-scratch network trained on all "
       f"images ({scratch_val_acc:.3f})." if beats_scratch else
       f"In this run no few-shot head beat the from-scratch network ({scratch_val_acc:.3f}).")
    + (" (Smoke mode: two draws and 20 validation photos, so these spreads are rough.)" if SMOKE else "")
))

# %% [markdown]
# ## 8. Generic early, specific late
#
# Which of the pretrained layers carry what we reuse? Yosinski et al. 2014 (*How transferable are features in
# deep neural networks?*) found that the first layers of an ImageNet network learn *general* features (edges,
# colour blobs, textures, useful for almost any image) and the last layers features *specific* to ImageNet's
# classes, and that transferring the top layers hurts more the more the new task differs from ImageNet.
#
# We measure it on our frozen Lite0 with **linear probes**: after each of its nine stages (the stem, the
# seven MBConv stages, the 1x1 head convolution), average that stage's output over all positions, one vector
# of its channel count per image, and train a linear head on those vectors (`pooled_stage_features` and
# `linear_probe` in `tlcourse.measure.probes`; features standardised, `PROBE_SEEDS` seeds, each with its own
# draw of labelled training images). We do it for two target domains:
#
# * **ants vs bees**: photos, close to ImageNet (which even has an *ant* and a *bee* class);
# * **handwritten digits** (mnist5k, ten classes): grey $28 \times 28$ strokes, upsampled to $224 \times 224$ and copied
#   into three channels, far from any ImageNet photo.
#
# A warning before the numbers: a probe after stage $s$ sees only that stage's channels (16 after stage 1,
# 1,280 after the head), and global average pooling throws away *where* a feature fired, which matters more
# for telling a 6 from a 9 than an ant from a bee. A low early accuracy says "these pooled numbers do not
# separate the classes linearly", not "the layer knows nothing".

# %%
probe_layers = [s.name for s in report.stages if s.name.startswith("features.")]  # stem ... head
start = time.perf_counter()
photo_stages = {split: pooled_stage_features(model, data.tensor_loader(images, targets, batch_size=64), probe_layers,
                                             device=device)
                for split, images, targets in (("train", train_images, train_targets), ("val", val_images, val_targets))}

digits = data.load("mnist5k", transform="tensor", per_class=DIGIT_TRAIN_PER_CLASS, eval_per_class=DIGIT_TEST_PER_CLASS,
                   seed=SEED, download=False, num_workers=0)
print(digits.note)
lite_mean, lite_std = torch.tensor(LITE_MEAN).view(1, 3, 1, 1), torch.tensor(LITE_STD).view(1, 3, 1, 1)


def as_lite_input(grey):
    """(N, 1, 28, 28) digits in [0, 1] -> (N, 3, 224, 224) with Lite's normalisation."""
    return (data.resize_images(grey.repeat(1, 3, 1, 1), model.resolution) - lite_mean) / lite_std


digit_stages = {}
for split, subset in (("train", digits.train), ("test", digits.test)):
    grey, labels = data.dataset_tensors(subset)
    digit_stages[split] = pooled_stage_features(model, data.tensor_loader(as_lite_input(grey), labels, batch_size=64),
                                                probe_layers, device=device)
stage_seconds = time.perf_counter() - start
digit_images = len(digit_stages["train"][probe_layers[0]]) + len(digit_stages["test"][probe_layers[0]])
print(f"pooled features of {len(probe_layers)} stages for {len(train_images) + len(val_images)} photos and "
      f"{digit_images} digits {tuple(as_lite_input(grey[:1]).shape[1:])} in {stage_seconds:.1f} s")

start = time.perf_counter()
domains = {"ants vs bees": (photo_stages["train"], photo_stages["val"], len(bundle.classes), PROBE_PER_CLASS),
           "digits (mnist5k)": (digit_stages["train"], digit_stages["test"], 10, DIGIT_PROBE_PER_CLASS)}
stage_probes = {}
for domain, (train_stage, test_stage, num_classes, per_class) in domains.items():
    per_class = min(per_class, min(train_stage[probe_layers[0]].targets.bincount().tolist()))
    rows = []
    for layer in probe_layers:
        accuracies = linear_probe(train_stage[layer], test_stage[layer], num_classes, per_class=per_class,
                                  seeds=[SEED + k for k in range(PROBE_SEEDS)], min_steps=PROBE_MIN_STEPS,
                                  device=device)
        acc = torch.tensor(accuracies)
        rows.append({"stage": layer.removeprefix("features."), "dim": train_stage[layer].dim, "accs": accuracies,
                     "mean_acc": float(acc.mean()), "std_acc": float(acc.std()) if len(acc) > 1 else 0.0})
    stage_probes[domain] = {"per_class": per_class, "test_images": len(test_stage[probe_layers[0]]),
                            "chance": 1 / num_classes, "stages": rows}
probe_seconds = time.perf_counter() - start
print(f"{len(domains) * len(probe_layers) * PROBE_SEEDS} probes trained in {probe_seconds:.1f} s\n")
print(f"{'stage':>8}{'dim':>6}" + "".join(f"{d:>22}" for d in stage_probes))
for k in range(len(probe_layers)):
    cells = [stage_probes[d]["stages"][k] for d in stage_probes]
    print(f"{cells[0]['stage']:>8}{cells[0]['dim']:>6}"
          + "".join(f"{c['mean_acc']:>14.3f} ± {c['std_acc']:.3f}" for c in cells))

fig, ax = plt.subplots(figsize=(8, 4.2))
for (domain, result), colour in zip(stage_probes.items(), ["tab:orange", "tab:blue"]):
    means = [r["mean_acc"] for r in result["stages"]]
    ax.errorbar(range(len(means)), means, yerr=[r["std_acc"] for r in result["stages"]], marker="o", capsize=3,
                color=colour, label=f"{domain} ({result['per_class']} per class, {PROBE_SEEDS} seeds)")
    ax.axhline(result["chance"], color=colour, ls=":", lw=1)
ax.set_xticks(range(len(probe_layers)),
              [f"{r['stage']}\n{r['dim']}" for r in stage_probes["ants vs bees"]["stages"]], fontsize=8)
ax.set_xlabel("stage of the frozen ImageNet Lite0 (and the length of its pooled feature vector)")
ax.set_ylabel("test accuracy of a linear probe"); ax.set_ylim(0, 1.02); ax.legend(loc="lower right")
ax.set_title("Linear probes on each stage's pooled features (dotted: chance)")
fig.tight_layout()


# %%
def best_stage(domain):
    return max(stage_probes[domain]["stages"], key=lambda r: r["mean_acc"])


photo_rows, digit_rows = stage_probes["ants vs bees"]["stages"], stage_probes["digits (mnist5k)"]["stages"]
photo_best, digit_best = best_stage("ants vs bees"), best_stage("digits (mnist5k)")
late_drop = digit_best["mean_acc"] - digit_rows[-1]["mean_acc"]
clear_drop = late_drop > 2 * max(digit_best["std_acc"], digit_rows[-1]["std_acc"], 0.01)
photo_gap = photo_best["mean_acc"] - photo_rows[-1]["mean_acc"]
photo_close = photo_gap <= 2 * max(photo_best["std_acc"], photo_rows[-1]["std_acc"], 0.01)
digit_train = stage_probes["digits (mnist5k)"]["per_class"] * 10
display(Markdown(
    f"* **Ants vs bees**: from {photo_rows[0]['mean_acc']:.3f} after the stem to {photo_rows[-1]['mean_acc']:.3f} "
    f"after the head; best {photo_best['mean_acc']:.3f} at `{photo_best['stage']}`. For a task close to ImageNet, "
    "the deeper (the more ImageNet-specific) the features, the better they serve"
    + (", up to the last stage." if photo_best is photo_rows[-1] else
       f"; the head is within twice the seeds' spread of `{photo_best['stage']}`." if photo_close
       else f", up to `{photo_best['stage']}`; the head is {photo_gap:.3f} below it.")
    + f"\n* **Digits**: from {digit_rows[0]['mean_acc']:.3f} after the stem to a best of "
    f"{digit_best['mean_acc']:.3f} at `{digit_best['stage']}`, then {digit_rows[-1]['mean_acc']:.3f} after the head"
    + (f", {late_drop:.3f} *below* the best stage although the head's vector is the longest. For a domain far "
       "from ImageNet, the last layer (the 1x1 convolution whose output ImageNet's classifier reads) has become "
       "specific to ImageNet's photos, and the stages below it transfer better. Part of the drop may also be its "
       f"1,280 dimensions against {digit_train} labelled digits per probe (exercise 5 tests that)."
       if clear_drop else ": in this run no drop after the best stage beyond the spread over seeds.")
    + f"\n* Early stages are poor for both (chance: {stage_probes['ants vs bees']['chance']:.2f} and "
    f"{stage_probes['digits (mnist5k)']['chance']:.2f}): their few pooled channels, without positions, do not "
    "describe an image well enough for a linear probe, however general they are. *Generic early* shows here as "
    "the digits' curve rising through middle stages that ImageNet trained on photos, not as high early accuracy."
    + (" (Smoke mode: few images and two seeds, so read the shape only.)" if SMOKE else "")
))

# %% [markdown]
# So for ants and bees we take the last features, as this lesson did; for a domain far from ImageNet a cut
# below the top is worth trying: drop the last stages, or fine-tune them (lesson 08). Lesson 10 asks the same
# question the other way round, keeping the first $k$ stages of a source network and retraining the rest.
#

# ## Summary

# %%
display(Markdown(
    f"* Freezing is `requires_grad=False` per stage: for Lite0, feature extraction trains {report.trainable:,} of "
    f"{report.total / 1e6:.2f} million parameters (and frozen batch norms keep their ImageNet statistics).\n"
    "* A frozen backbone computes the same features every epoch, so compute them **once**: features for "
    f"{len(train_features) + len(val_features)} photos took {extract_seconds:.1f} s, the head {head_seconds:.2f} s, "
    f"and it reaches **{head_val_acc:.3f}** validation accuracy on ants vs bees.\n"
    f"* Grad-CAM shows where the evidence for a class sits; greying out the hottest quarter of {len(cam_images)} "
    f"photos lowered the predicted class's probability more than greying out the coldest quarter for "
    f"{hot_hurts_more} of them.\n"
    f"* The same architecture trained from scratch with a lesson-sized budget reached {scratch_val_acc:.3f} "
    f"(majority class: {majority:.3f}): the knowledge is in the pretrained weights, not in the architecture.\n"
    f"* Pretrained features separate the two classes (5-NN {pretrained_knn:.3f}); random ones do not "
    f"({random_knn:.3f}).\n"
    f"* {few[-1]['per_class']} labelled images per class gave {few[-1]['mean_acc']:.3f}, all of them "
    f"{by_shots['all']['mean_acc']:.3f}.\n"
    f"* Probed stage by stage, ants vs bees are best read at `{photo_best['stage']}` "
    f"({photo_best['mean_acc']:.3f}), digits at `{digit_best['stage']}` ({digit_best['mean_acc']:.3f}; after the "
    f"head: {digit_rows[-1]['mean_acc']:.3f})."
))

# %% [markdown]
# ## Exercises
#
# 1. Change `HEAD_EPOCHS` and `HEAD_LR`. How sensitive is the head? Does it ever overfit 244 images?
# 2. Give `SCRATCH_EPOCHS = 30` and `SCRATCH_RESOLUTION = 224` a try (it takes several minutes). How far does
#    the from-scratch network get?
# 3. Replace the linear head by scikit-learn's `LogisticRegression` on `train_features.features.numpy()`.
#    Do you get the same accuracy?
# 4. Section 8 pools each stage's output over all positions. Pool it to a $2 \times 2$ grid instead
#    (`F.adaptive_avg_pool2d(output, 2).flatten(1)` in a hook of your own) so that the probe knows *where*
#    a feature fired. Which curve changes more, the digits' or the photos'?
# 5. Set `DIGIT_TRAIN_PER_CLASS = DIGIT_PROBE_PER_CLASS = 200` (a few more minutes). Does the digits' drop after
#    the head stay, or was it the head's 1,280 dimensions against too few labelled digits?
# 6. Probe a *randomly initialised* Lite0 stage by stage (`efficientnet_lite0(pretrained=False)`). Which part
#    of section 8's curves is the architecture and the pooling, and which is ImageNet?
# 7. Grad-CAM at `features.stage5` instead of `features.head` (`CAM_LAYER`): finer cells ($14 \times 14$), but do the
#    maps still point at the insect?
# 8. With internet access, repeat section 3 with `load_backbone("resnet18")` (its own transform!) and compare
#    with the tutorial's 0.954 (a best epoch, chosen on validation: compare with your best epoch too).

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
        "cam_layer": CAM_LAYER,
        "cam_map_size": list(layer_maps.shape[-2:]),
        "cam_images": len(cam_images),
        "cam_wrong_shown": int((cam_predicted != cam_true).sum()),
        "val_wrong": int((~correct).sum()),
        "cam_seconds": cam_seconds,
        "cam_equals_class_activation_map_max_diff": cam_equals_class_activation_map,
        "cam_predicted_probability": {name: float(values.mean()) for name, values in probability.items()},
        "cam_hot_hurts_more": hot_hurts_more,
        "cam_class_difference": cam_class_difference,
        "probe_layers": probe_layers,
        "stage_probes": stage_probes,
        "digit_images": digit_images,
        "stage_seconds": stage_seconds,
        "probe_seconds": probe_seconds,
        "tutorial_best_epoch_acc": 0.954,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]
