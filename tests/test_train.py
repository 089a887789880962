"""fit / evaluate / History / callbacks on small in-memory problems (CPU, a few seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlcourse.core.device import seed_everything
from tlcourse.core.lookup import UnknownNameError
from tlcourse.training import EpochRecord, EvalResult, History, TrainStep, evaluate, fit, lr_range_test
from tlcourse.training.callbacks import Callback, Checkpoint, EarlyStopping, TrainState


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a busy 2-core machine slows 2-thread torch badly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[TensorDataset, TensorDataset]:
    """sklearn's 8x8 digits as (train, val) datasets of 1x8x8 float images."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(y, dtype=torch.long)
    return TensorDataset(x[:1400], y[:1400]), TensorDataset(x[1400:], y[1400:])


def mlp(hidden: int = 64) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def loaders(train: TensorDataset, val: TensorDataset, batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    return DataLoader(train, batch_size=batch_size, shuffle=True, generator=g), DataLoader(val, batch_size=128)


def test_fit_learns_digits(digits):
    seed_everything(0)
    train_dl, val_dl = loaders(*digits)
    history = fit(mlp(), train_dl, val_dl, epochs=5, lr=1e-2, progress=False)
    assert len(history) == 5
    assert history.last.train_loss < 0.25 * history[0].train_loss  # measured ~0.07 of the first
    assert history.last.val_acc > 0.85  # measured ~0.89
    assert history.best("val_acc").val_acc >= history.last.val_acc
    assert history.best("val_loss").val_loss == min(history["val_loss"])


def test_history_fields_and_json_round_trip(digits):
    seed_everything(0)
    train_dl, val_dl = loaders(*digits)
    history = fit(mlp(), train_dl, val_dl, epochs=2, progress=False)
    assert isinstance(history, History) and history.device == "cpu"
    assert history.stopped_early is False and history.best_epoch is None
    for i, record in enumerate(history, start=1):
        assert isinstance(record, EpochRecord) and record.epoch == i
        for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_sec"):
            assert type(getattr(record, name)) is float, name
        assert 0.0 <= record.train_acc <= 1.0 and 0.0 <= record.val_acc <= 1.0
        assert record.images_per_sec > 0 and record.seconds > 0
        assert record.peak_gpu_mem_mb is None  # CPU
        assert record.lr == pytest.approx(1e-3)
    assert history["epoch"] == [1, 2]
    assert len(history["val_acc"]) == 2
    assert history.total_seconds == pytest.approx(sum(history["seconds"]))
    with pytest.raises(KeyError):
        history["nope"]
    data = json.loads(json.dumps(history.to_dict()))
    assert History.from_dict(data) == history
    text = repr(history)
    assert "val_acc" in text and "train_loss" in text and text.count("\n") >= 3
    assert "peak_gpu_mem_mb" not in history.to_markdown()  # all-None columns are left out


def test_fit_without_validation(digits):
    train_dl, _ = loaders(*digits)
    history = fit(mlp(), train_dl, epochs=1, progress=False)
    assert history.last.val_loss is None and history.last.val_acc is None
    with pytest.raises(ValueError):
        history.best("val_acc")


def _noisy_digits(digits, n_train: int = 200) -> tuple[DataLoader, DataLoader]:
    """Train on random labels: the model memorises them and validation loss climbs."""
    train, val = digits
    g = torch.Generator().manual_seed(1)
    x = train.tensors[0][:n_train]
    y = torch.randint(0, 10, (n_train,), generator=g)
    return loaders(TensorDataset(x, y), val, batch_size=32)


def test_early_stopping_restores_best_weights(digits):
    seed_everything(0)
    train_dl, val_dl = _noisy_digits(digits)
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    history = fit(mlp(256), train_dl, val_dl, epochs=40, lr=3e-3, callbacks=[stopper], progress=False)
    assert history.stopped_early and len(history) < 40
    best = history.best("val_loss")
    assert history.best_epoch == best.epoch == stopper.best_epoch
    assert len(history) == best.epoch + 2  # stopped after `patience` epochs without improvement
    assert history.last.val_loss > best.val_loss


def test_early_stopping_weights_equal_best_epoch(digits):
    seed_everything(0)
    train_dl, val_dl = _noisy_digits(digits)
    model = mlp(256)
    history = fit(model, train_dl, val_dl, epochs=40, lr=3e-3, callbacks=EarlyStopping(patience=2), progress=False)
    result = evaluate(model, val_dl)
    assert result.loss == pytest.approx(history.best("val_loss").val_loss, rel=1e-5)
    assert result.loss != pytest.approx(history.last.val_loss, rel=1e-3)


def test_early_stopping_mode_auto_and_accuracy():
    assert EarlyStopping(monitor="val_acc").mode == "max"
    assert EarlyStopping(monitor="train_loss").mode == "min"
    with pytest.raises(ValueError):
        EarlyStopping(monitor="lr")


def test_callback_can_stop_training(digits):
    class StopAtTwo(Callback):
        def __init__(self) -> None:
            self.calls: list[str] = []

        def on_train_begin(self, state: TrainState) -> None:
            self.calls.append("begin")

        def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
            self.calls.append(f"epoch{record.epoch}")
            state.stop = record.epoch == 2

        def on_train_end(self, state: TrainState) -> None:
            self.calls.append("end")

    train_dl, _ = loaders(*digits)
    cb = StopAtTwo()
    history = fit(mlp(), train_dl, epochs=5, callbacks=[cb], progress=False)
    assert len(history) == 2 and history.stopped_early
    assert cb.calls == ["begin", "epoch1", "epoch2", "end"]


def test_checkpoint_writes_loadable_best(digits, tmp_path):
    seed_everything(0)
    train_dl, val_dl = _noisy_digits(digits)
    path = tmp_path / "ckpt" / "best.pt"
    history = fit(mlp(256), train_dl, val_dl, epochs=6, lr=3e-3, callbacks=[Checkpoint(path)], progress=False)
    assert path.is_file()
    fresh = mlp(256)
    checkpoint = Checkpoint.load(path, fresh)
    best = history.best("val_loss")
    assert checkpoint["epoch"] == best.epoch
    assert checkpoint["val_loss"] == pytest.approx(best.val_loss)
    assert evaluate(fresh, val_dl).loss == pytest.approx(best.val_loss, rel=1e-5)


def test_one_cycle_steps_per_batch_and_reaches_final_lr(digits):
    train_dl, _ = loaders(*digits)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    epochs = 3
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=epochs * len(train_dl))
    history = fit(model, train_dl, epochs=epochs, optimizer=optimizer, scheduler=scheduler, progress=False)
    final_lr = optimizer.param_groups[0]["min_lr"]  # max_lr / div_factor / final_div_factor
    assert final_lr == pytest.approx(0.1 / 25 / 1e4)
    assert history.last.lr == pytest.approx(final_lr, rel=1e-2)
    assert history[0].lr > history.last.lr * 100  # epoch 1 ends near the peak, not at the end
    assert scheduler.last_epoch == epochs * len(train_dl)  # stepped once per batch


def test_epoch_scheduler_and_plateau(digits):
    train_dl, val_dl = loaders(*digits)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, train_dl, epochs=3, optimizer=optimizer, scheduler=scheduler, progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])  # the lr each epoch ended with

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5, threshold=10.0)
    history = fit(model, train_dl, val_dl, epochs=2, optimizer=optimizer, scheduler=plateau, progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.05])  # never "improves" by the huge threshold: halved each epoch
    with pytest.raises(ValueError):
        fit(model, train_dl, epochs=1, optimizer=optimizer, scheduler=plateau, scheduler_interval="batch")


_SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__format__")


def _count_syncs(monkeypatch, run, only_from_tlcourse: bool) -> int:
    import sys

    calls = 0
    for name in _SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, **kwargs):
            nonlocal calls
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not only_from_tlcourse or caller.startswith("tlcourse"):
                calls += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    try:
        run()
    finally:
        monkeypatch.undo()
    return calls


@pytest.mark.parametrize("only_from_tlcourse", [False, True])
def test_no_per_batch_sync(monkeypatch, only_from_tlcourse):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(512, 1, 8, 8, generator=g), torch.randint(0, 10, (512,), generator=g)
    data = TensorDataset(x, y)

    def run(batch_size: int) -> int:
        def go() -> None:
            model = mlp()
            # SGD: torch's CPU Adam reads its step counter with .item() (a CPU tensor, no GPU sync),
            # which would count here when counting every caller.
            optimizer = None if only_from_tlcourse else torch.optim.SGD(model.parameters(), lr=0.01)
            fit(model, DataLoader(data, batch_size=batch_size), DataLoader(data, batch_size=batch_size),
                epochs=2, optimizer=optimizer, grad_clip=1.0, progress=False)  # fmt: skip

        return _count_syncs(monkeypatch, go, only_from_tlcourse)

    few, many = run(256), run(16)  # 2 vs 32 batches per epoch
    assert few == many
    assert many <= 2 * 4  # a handful per epoch at most


def test_evaluate_consistent(digits):
    seed_everything(0)
    train_dl, val_dl = loaders(*digits)
    model = mlp()
    fit(model, train_dl, epochs=2, progress=False)
    model.train()
    result = evaluate(model, val_dl)
    assert isinstance(result, EvalResult)
    assert model.training  # evaluate restores the mode
    n = len(digits[1])
    assert result.n == n
    assert result.probabilities.shape == (n, 10) and result.probabilities.dtype == torch.float32
    assert result.predictions.dtype == torch.long and result.targets.dtype == torch.long
    assert all(t.device.type == "cpu" for t in (result.probabilities, result.predictions, result.targets))
    assert torch.allclose(result.probabilities.sum(1), torch.ones(n), atol=1e-5)
    assert torch.equal(result.predictions, result.probabilities.argmax(1))
    assert torch.equal(result.targets, digits[1].tensors[1])
    assert result.accuracy == pytest.approx((result.predictions == result.targets).float().mean().item())
    with torch.no_grad():
        logits = model(digits[1].tensors[0])
    assert result.loss == pytest.approx(nn.functional.cross_entropy(logits, result.targets).item(), rel=1e-5)
    assert not math.isnan(result.loss)


def test_amp_is_a_noop_on_cpu_and_channels_last_its_default(digits):
    train_dl, _ = loaders(*digits)
    with pytest.warns(UserWarning, match="CUDA only"):
        history = fit(mlp(), train_dl, epochs=1, amp=True, channels_last=True, progress=False)
    assert len(history) == 1
    images = DataLoader(TensorDataset(torch.randn(32, 2, 8, 8), torch.arange(32) % 2), batch_size=16)
    for asked, expected in ((None, True), (False, False), (True, True)):
        layouts: list[bool] = []
        net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        net[0].register_forward_pre_hook(
            lambda m, args, seen=layouts: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
        )
        fit(net, images, images, epochs=1, device="cpu", channels_last=asked, progress=False)
        assert set(layouts) == {expected}, asked  # training and validation batches alike
        assert net[0].weight.is_contiguous(memory_format=torch.channels_last) is expected
    # a network with 5-D weights keeps its layout instead of failing (channels-last is for 4-D ones)
    volumes = DataLoader(TensorDataset(torch.randn(8, 1, 4, 4, 4), torch.arange(8) % 2), batch_size=4)
    volume_net = nn.Sequential(nn.Conv3d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 2 * 2 * 2, 2))
    assert len(fit(volume_net, volumes, epochs=1, device="cpu", progress=False)) == 1


def test_bad_arguments(digits):
    train_dl, _ = loaders(*digits)
    with pytest.raises(ValueError):
        fit(mlp(), train_dl, epochs=0)
    with pytest.raises(ValueError):
        fit(mlp(), DataLoader(TensorDataset(torch.zeros(0, 64), torch.zeros(0).long())), epochs=1, progress=False)


def test_fit_builds_a_named_schedule_and_suggests_the_name_you_meant(digits):
    def run(scheduler) -> History:
        torch.manual_seed(0)
        train, val = loaders(*digits)  # the same shuffle for both runs
        model = mlp()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        if scheduler == "by hand":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, epochs=3, steps_per_epoch=len(train))
        return fit(model, train, val, epochs=3, optimizer=optimizer, scheduler=scheduler, progress=False)

    named, by_hand = run("onecycle"), run("by hand")
    train, _ = loaders(*digits)
    lrs = named["lr"]
    assert lrs[0] < 3e-3 and lrs[2] < lrs[1] and lrs[2] < 1e-5  # one cycle: up, then annealed to ~0
    assert lrs == by_hand["lr"] and named["val_loss"] == by_hand["val_loss"]
    assert named.last.val_acc > 0.7
    with pytest.raises(UnknownNameError, match=r"Unknown scheduler 'onecylce'.*Did you mean 'onecycle'"):
        fit(mlp(), train, epochs=1, scheduler="onecylce", progress=False)


def test_train_step_is_the_step_a_student_would_write(digits):
    x, y = digits[0].tensors[0][:32], digits[0].tensors[1][:32]
    torch.manual_seed(0)
    ours, theirs = mlp(), mlp()
    theirs.load_state_dict(ours.state_dict())
    step = TrainStep(ours, torch.optim.SGD(ours.parameters(), lr=0.1))
    _, _, loss = step((x, y))
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1)
    optimizer.zero_grad()
    expected = nn.functional.cross_entropy(theirs(x), y)
    expected.backward()
    optimizer.step()
    assert torch.allclose(loss, expected.detach())
    assert all(torch.allclose(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))


def test_a_callback_sees_every_batch_loss_on_the_device_and_can_stop_mid_epoch(digits):
    class StopAfter(Callback):
        def __init__(self, n: int) -> None:
            self.n, self.losses = n, []

        def on_batch_end(self, state: TrainState, loss: torch.Tensor) -> None:
            self.losses.append(loss)
            state.stop = len(self.losses) >= self.n

    train, _ = loaders(*digits, batch_size=32)
    seen = StopAfter(5)
    history = fit(mlp(), train, epochs=3, callbacks=seen, progress=False)
    assert len(seen.losses) == 5 and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in seen.losses)
    assert len(history) == 1 and history.stopped_early
    last_epoch = fit(mlp(), train, epochs=1, callbacks=StopAfter(3), progress=False)
    assert last_epoch.stopped_early  # cut short inside its only epoch


def test_a_misspelt_metric_is_refused_with_a_suggestion():
    with pytest.raises(UnknownNameError, match=r"'val_accuracy'.*Did you mean 'val_acc'"):
        EarlyStopping(monitor="val_accuracy")
    with pytest.raises(KeyError, match="Did you mean 'val_loss'"):
        History()["val_los"]


def test_lr_range_test_puts_back_every_layers_own_mode(digits):
    train, _ = loaders(*digits)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    model.train()
    model[2].eval()  # a frozen batch norm kept on its statistics, the rest training
    flags = [m.training for m in model.modules()]
    result = lr_range_test(model, train, start_lr=1e-5, end_lr=1.0, steps=20, device="cpu")
    assert len(result.lrs) >= 10
    assert [m.training for m in model.modules()] == flags


def test_fit_shows_one_progress_bar_for_all_epochs_and_one_table_at_the_end(digits, monkeypatch, capsys):
    import tlcourse.training.loop as loop

    bars = []

    class RecordingBar(loop.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(loop, "tqdm", RecordingBar)
    train_dl, val_dl = loaders(*digits)
    history = fit(mlp(), train_dl, val_dl, epochs=3, device="cpu")
    assert len(bars) == 1, f"{len(bars)} progress bars for one fit call"
    assert bars[0].total == 3 * len(train_dl) and bars[0].n == 3 * len(train_dl)
    assert bars[0].desc.startswith("epoch 3/3") and "val_acc" in str(bars[0].postfix)
    table = capsys.readouterr().out
    assert table.startswith("History(3 epochs on cpu")
    rows = [line for line in table.splitlines() if line.startswith("|") and line.split("|")[1].strip().isdigit()]
    assert [int(row.split("|")[1]) for row in rows] == [1, 2, 3] and len(history) == 3
    assert fit(mlp(), train_dl, epochs=1, device="cpu", progress=False) and capsys.readouterr().out == ""

    class StopAfterTwo(Callback):
        def on_epoch_end(self, state, record):
            state.stop = record.epoch == 2

    stopped = fit(mlp(), train_dl, val_dl, epochs=5, device="cpu", callbacks=[StopAfterTwo()])
    assert stopped.stopped_early and len(stopped) == 2
    assert bars[-1].total == bars[-1].n == 2 * len(train_dl), "an early stop leaves a full bar, not a failed one"

    class Fails(Callback):
        def on_epoch_end(self, state, record):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fit(mlp(), train_dl, epochs=2, device="cpu", callbacks=[Fails()])
    assert bars[-1].disable, "the bar was left open by the failing callback"  # tqdm.close() sets disable
