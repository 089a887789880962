"""Does the channels-last memory format pay for the course's networks? Contiguous against channels-last, side by side.

``fit``, ``evaluate`` and ``extract_features`` put 4-D batches and convolution weights in channels-last on the
CPU by default (``tlcourse.training.step.default_channels_last``) because this measurement says it pays there.
For each network at the size a lesson uses, it times training steps (forward, backward, AdamW) or inference,
in both layouts, interleaved, and prints the best time of each and the speed-up (> 1: channels-last is faster).

    python benchmarks/channels_last.py                 # CPU, all networks (about a minute on 2 cores)
    python benchmarks/channels_last.py --device cuda   # on a GPU (fp32; with AMP see benchmarks/gpu_check.sh)
    python benchmarks/channels_last.py --compile lenet lite0   # also torch.compile (channels-last), and its cost

``--compile`` adds a column: the same step after ``torch.compile`` (inductor), and the seconds the first
compiled step took, i.e. what a lesson would pay before the first faster step.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from tlcourse.models.alexnet_vgg import small_alexnet, small_vgg
from tlcourse.models.efficientnet import efficientnet_lite0
from tlcourse.models.inception import small_googlenet
from tlcourse.models.lenet import lenet5
from tlcourse.models.mobilenet_v1 import mobilenet_v1
from tlcourse.models.resnet import resnet_small

# name: (network factory, batch shape, train (True) or inference (False)), at the lessons' sizes
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], bool]] = {
    "LeNet-5, 32 px (01)": (lambda: lenet5("modern"), (64, 1, 32, 32), True),
    "AlexNet x0.25, 32 px (02)": (lambda: small_alexnet(), (64, 1, 32, 32), True),
    "VGG-11 x0.25, 32 px (02)": (lambda: small_vgg(), (64, 1, 32, 32), True),
    "GoogLeNet x0.25, 32 px (03)": (lambda: small_googlenet(), (64, 1, 32, 32), True),
    "ResNet-20, 28 px (04, 12)": (lambda: resnet_small(20, in_channels=1), (64, 1, 28, 28), True),
    "ResNet-56, 28 px (04)": (lambda: resnet_small(56, in_channels=1), (64, 1, 28, 28), True),
    "MobileNet v1 x0.25, 28 px (12)": (
        lambda: mobilenet_v1(0.25, layout="small", in_channels=1, num_classes=10), (64, 1, 28, 28), True),
    "Lite0, 112 px (08)": (lambda: efficientnet_lite0(), (16, 3, 112, 112), True),
    "Lite0 inference, 224 px (07, 09)": (lambda: efficientnet_lite0(), (32, 3, 224, 224), False),
    "ResNet-18 inference, 224 px (09)": (lambda: torchvision.models.resnet18(), (32, 3, 224, 224), False),
}  # fmt: skip


def best_seconds(make: Callable[[], nn.Module], shape: tuple[int, ...], train: bool, channels_last: bool,
                 device: torch.device, repeats: int, compiled: bool = False) -> tuple[float, float]:  # fmt: skip
    """The fastest of ``repeats`` timed steps in one memory format, and the first (warm-up, or compiling) step's time."""
    torch.manual_seed(0)
    model = make().to(device)
    inputs = torch.randn(*shape, device=device)
    targets = torch.zeros(shape[0], dtype=torch.long, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train(train)
    forward = torch.compile(model) if compiled else model
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        if train:
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(forward(inputs), targets).backward()
            optimizer.step()
        else:
            with torch.no_grad():
                forward(inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times[1:]), times[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per format and round")
    parser.add_argument("--compile", nargs="*", metavar="WORD", default=None,
                        help="also time torch.compile for the networks whose name contains a WORD (none: all)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    header = "| network | step | contiguous ms | channels-last ms | speed-up |"
    if args.compile is not None:
        header += " compiled ms | compiled speed-up | first compiled step s |"
    print(header + "\n|" + " --- | --- |" + " ---: |" * (header.count("|") - 3))
    for name, (make, shape, train) in CASES.items():
        best = {False: float("inf"), True: float("inf")}
        for _ in range(2):  # interleaved rounds: a busy moment does not favour one format
            for layout in (False, True):
                best[layout] = min(best[layout], best_seconds(make, shape, train, layout, device, args.repeats)[0])
        step = f"train, batch {shape[0]}" if train else f"inference, batch {shape[0]}"
        row = f"| {name} | {step} | {best[False] * 1e3:.1f} | {best[True] * 1e3:.1f} | {best[False] / best[True]:.2f} |"
        if args.compile is not None:
            if not args.compile or any(word.lower() in name.lower() for word in args.compile):
                compiled, first = best_seconds(make, shape, train, True, device, args.repeats, compiled=True)
                row += f" {compiled * 1e3:.1f} | {best[True] / compiled:.2f} | {first:.1f} |"
            else:
                row += " - | - | - |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
