"""How much does ``tlcourse.training.fit`` cost over a bare PyTorch loop?

Trains the same LeNet-5-sized CNN (1x32x32 input) on the same in-memory data
with (a) a minimal hand-written loop (zero_grad / forward / loss / backward /
step, no metrics, no progress bar) and (b) ``fit`` with its metrics, and
prints both rates in images per second and the ratio fit / minimal (target >= 0.9).
Each rate is the best of ``--repeats`` runs (interleaved) after one warm-up
epoch of each; best-of filters out other processes competing for the CPU.

    python benchmarks/fit_overhead.py --epochs 1 --repeats 7 --device cpu
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


def make_loader(n: int, batch_size: int) -> DataLoader:
    """``n`` random 1x32x32 'images' with 10 classes, shuffled, in memory."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)


def minimal_loop(model: nn.Module, loader: DataLoader, epochs: int, device: torch.device) -> float:
    """Train with a bare loop; return images per second."""
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
            n += y.shape[0]
    synchronize(device)
    return n / (time.perf_counter() - start)


def fit_rate(model: nn.Module, loader: DataLoader, epochs: int, device: torch.device, progress: bool) -> float:
    """Train with ``fit``; return images per second over the whole call."""
    synchronize(device)
    start = time.perf_counter()
    fit(model, loader, epochs=epochs, lr=1e-3, device=device, progress=progress)
    synchronize(device)
    return epochs * len(loader.dataset) / (time.perf_counter() - start)


def main() -> None:
    """Parse arguments, run both loops, print the rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="hide fit's progress bar (shown by default)")
    args = parser.parse_args()

    device = get_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(0)
    loader = make_loader(args.images, args.batch_size)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.images} images, "
          f"batch {args.batch_size}, {args.epochs} epoch(s), best of {args.repeats}")  # fmt: skip

    # Warm-up: allocator, kernels, thread pools.
    minimal_loop(lenet5().to(device), loader, 1, device)
    fit_rate(lenet5(), loader, 1, device, progress=False)

    minimal, fitted = [], []
    for _ in range(args.repeats):  # interleave so drift hits both alike
        minimal.append(minimal_loop(lenet5().to(device), loader, args.epochs, device))
        fitted.append(fit_rate(lenet5(), loader, args.epochs, device, not args.no_progress))
    best_min, best_fit = max(minimal), max(fitted)
    print(f"minimal loop : {best_min:10,.0f} images/s   (runs: {', '.join(f'{r:,.0f}' for r in minimal)})")
    print(f"tlcourse.training.fit : {best_fit:10,.0f} images/s   (runs: {', '.join(f'{r:,.0f}' for r in fitted)})")
    paired = sorted(f / m for f, m in zip(fitted, minimal))
    print(f"ratio fit/minimal: {best_fit / best_min:.3f}  (target >= 0.9; "
          f"median of paired runs {paired[len(paired) // 2]:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
