"""How much does ``tlcourse.training.fit`` cost over a bare PyTorch loop, and what does a per-batch sync cost?

Trains the same network on the same in-memory data with (a) a minimal hand-written loop (zero_grad / forward /
loss / backward / step, no metrics, no progress bar), (b) the same loop reading the loss every batch
(``loss.item()``: one host-device sync per batch, what ``fit`` avoids) and (c) ``fit`` with its metrics, and
prints the three rates in images per second and the ratios fit/minimal (goal on a GPU: >= 0.97) and
fit/per-batch-sync (goal on a GPU: >= 1.5 on LeNet). Each rate is the best of ``--repeats`` interleaved runs
after one warm-up epoch of each; best-of filters out other processes competing for the CPU.

* ``--model lenet`` (default): LeNet-5 on mnist5k's real digits (5,000 images padded to 32x32), batch 64;
* ``--model resnet18``: torchvision's ResNet-18 on synthetic 224x224 batches (``--images``, default 512).

    python benchmarks/fit_overhead.py --epochs 1 --repeats 7 --device cpu
    python benchmarks/fit_overhead.py --model resnet18 --device cuda --batch-size 128
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlcourse.core.device import get_device, seed_everything, synchronize
from tlcourse.training import fit


def lenet5() -> nn.Module:
    """LeNet-5-sized CNN for 1x32x32 images (about 62k parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )  # fmt: skip


def mnist5k_loader(n: int, batch_size: int) -> DataLoader:
    """The first ``n`` of mnist5k's real digits, padded to 1x32x32 and scaled to [0, 1], shuffled, in memory."""
    from tlcourse.data.memory import raw_arrays

    images, labels = raw_arrays("mnist5k")
    x = nn.functional.pad(images[:n].float() / 255.0, (2, 2, 2, 2))
    return DataLoader(TensorDataset(x, labels[:n]), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))


def synthetic_loader(n: int, batch_size: int, size: int = 224) -> DataLoader:
    """``n`` random 3x224x224 'images' with 1,000 classes, shuffled, in memory (ResNet-18's input)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, size, size, generator=g), torch.randint(0, 1000, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=g)


def resnet18() -> nn.Module:
    from torchvision.models import resnet18 as torchvision_resnet18

    return torchvision_resnet18(num_classes=1000)


MODELS = {"lenet": (lenet5, mnist5k_loader), "resnet18": (resnet18, synthetic_loader)}


def minimal_loop(model: nn.Module, loader: DataLoader, epochs: int, device: torch.device, read_loss: bool = False) -> float:
    """Train with a bare loop (with ``read_loss``: reading the loss every batch); return images per second."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    synchronize(device)
    start = time.perf_counter()
    n = 0
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            if read_loss:
                loss.item()  # what a loop that logs every batch does: wait for the device
            n += y.shape[0]
    synchronize(device)
    return n / (time.perf_counter() - start)


def fit_rate(model: nn.Module, loader: DataLoader, epochs: int, device: torch.device, progress: bool) -> float:
    """Train with ``fit``; return images per second over the whole call."""
    synchronize(device)
    start = time.perf_counter()
    # contiguous like the hand-written loops, so that the ratio measures the loop alone, not the memory format
    # (fit's CPU default, channels-last, is measured by benchmarks/channels_last.py)
    fit(model, loader, epochs=epochs, lr=1e-3, device=device, channels_last=False, progress=progress)
    synchronize(device)
    return epochs * len(loader.dataset) / (time.perf_counter() - start)


def main() -> None:
    """Parse arguments, run the three loops, print the rates and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=None, help="default: 5000 (lenet), 512 (resnet18)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="hide fit's progress bar (shown by default)")
    args = parser.parse_args()

    device = get_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(0)
    make_model, make_loader = MODELS[args.model]
    images = args.images or (5000 if args.model == "lenet" else 512)
    loader = make_loader(images, args.batch_size)
    print(f"{args.model} on {device}, torch threads {torch.get_num_threads()}, {len(loader.dataset)} images, "
          f"batch {args.batch_size}, {args.epochs} epoch(s), best of {args.repeats}")  # fmt: skip

    # Warm-up: allocator, kernels, thread pools.
    minimal_loop(make_model().to(device), loader, 1, device)
    fit_rate(make_model(), loader, 1, device, progress=False)

    rates: dict[str, list[float]] = {"minimal loop": [], "loop reading the loss every batch": [], "tlcourse.training.fit": []}
    for _ in range(args.repeats):  # interleave so drift hits all alike
        rates["minimal loop"].append(minimal_loop(make_model().to(device), loader, args.epochs, device))
        rates["loop reading the loss every batch"].append(minimal_loop(make_model().to(device), loader, args.epochs, device, read_loss=True))
        rates["tlcourse.training.fit"].append(fit_rate(make_model(), loader, args.epochs, device, not args.no_progress))
    best = {name: max(runs) for name, runs in rates.items()}
    for name, runs in rates.items():
        print(f"{name:34s}: {best[name]:10,.0f} images/s   (runs: {', '.join(f'{r:,.0f}' for r in runs)})")
    fitted = best["tlcourse.training.fit"]
    print(f"ratio fit/minimal: {fitted / best['minimal loop']:.3f} (goal on a GPU >= 0.97); "
          f"fit/per-batch-sync: {fitted / best['loop reading the loss every batch']:.3f} (goal on a GPU >= 1.5, LeNet)")


if __name__ == "__main__":
    main()
