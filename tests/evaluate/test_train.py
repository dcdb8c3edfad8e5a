"""Tests of the proxy trainer nas.evaluate.train on the bundled digits data (small and fast on 2 CPU cores)."""
from __future__ import annotations

import gc
import json
import math
import os
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from nas.blocks.registry import registered
from nas.budget import Budget
from nas.builder import build
from nas.data import load_dataset
from nas.errors import BudgetError
from nas.evaluate.train import (
    EpochStats,
    Runner,
    TrainResult,
    channels_last_default,
    evaluate_accuracy,
    smoothed_cross_entropy,
    train,
)
from nas.significance import unpack_correct
from tests.evaluate.test_evaluate import spec_with


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def small_cnn(in_shape=(1, 8, 8), classes=10, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    c = in_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * 16, classes),
    )


class Failing(nn.Module):
    """A model with parameters whose forward misbehaves in a chosen way."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.lin = nn.Linear(64, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.lin(x.flatten(1))
        if self.mode == "nan" and self.calls > 1:
            return out * float("nan")
        if self.mode == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if self.mode == "oom-runtime":
            raise RuntimeError("CUDA error: out of memory\nmore details")
        if self.mode == "value":
            raise ValueError("bad shape 123\nsecond line")
        return out


def test_budget_validation():
    b = Budget()
    assert (b.epochs, b.batch_size, b.lr) == (1.0, 128, 2e-3)
    assert b.input_shape((3, 32, 32)) == (3, 32, 32)
    assert Budget(resolution=0.5).input_shape((3, 32, 32)) == (3, 16, 16)
    assert Budget(resolution=0.5).input_shape((784, 1)) == (784, 1)  # sequences ignore resolution


@pytest.mark.parametrize("kwargs,field", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": -1.0}, "epochs"),
    ({"epochs": float("nan")}, "epochs"),
    ({"batch_size": -1}, "batch_size"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"data_fraction": 0.0}, "data_fraction"),
    ({"data_fraction": 1.5}, "data_fraction"),
    ({"resolution": 0}, "resolution"),
    ({"lr": 0}, "lr"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"warmup_fraction": 2}, "warmup_fraction"),
    ({"epochs": "3"}, "epochs"),
])
def test_bad_budget(kwargs, field):
    with pytest.raises(BudgetError) as info:
        Budget(**kwargs)
    assert info.value.key == field and field in str(info.value) and "\n" not in str(info.value)


def test_learns_digits(digits):
    model = small_cnn()
    res = train(model, digits, Budget(epochs=3, batch_size=32, lr=5e-3), seed=0, threads=1)
    assert res.status == "ok", res.reason
    assert [s.epoch for s in res.curve] == [1.0, 2.0, 3.0]
    assert res.curve[-1].val_accuracy > 0.6, res.curve  # chance is 0.1
    assert res.steps == 3 * (len(digits.y_train) // 32)
    assert res.samples_per_s > 0 and res.device == "cpu" and res.threads == 1
    loss, acc = evaluate_accuracy(model, digits, "val")
    assert acc == pytest.approx(res.curve[-1].val_accuracy) and loss == pytest.approx(res.curve[-1].val_loss)
    # which validation examples the last evaluation got right, in the split's order
    assert res.val_size == digits.size("val")
    correct = unpack_correct(res.val_correct, res.val_size)
    assert correct.mean() == pytest.approx(res.curve[-1].val_accuracy)
    x_val, y_val = digits.split("val")
    with torch.no_grad():
        again = (model.eval()(digits.normalize(x_val)).argmax(1) == y_val).numpy()
    assert np.array_equal(again, correct)
    json.dumps(res.to_dict())
    assert isinstance(res.to_dict()["curve"][0], dict)


def test_same_seed_same_curve(digits):
    budget = Budget(epochs=1.5, batch_size=64)

    def run(seed):
        res = train(small_cnn(seed=0), digits, budget, seed=seed, threads=1)
        assert res.status == "ok"
        return [(s.epoch, s.train_loss, s.val_loss, s.val_accuracy) for s in res.curve]

    a, b, c = run(0), run(0), run(1)
    assert [e[0] for e in a] == [1.0, 1.5]  # evaluated after the whole epoch and the half one
    assert a == b
    assert a != c  # shuffling / augmentation follow the seed


def test_threads_restored(digits, monkeypatch):
    before = torch.get_num_threads()
    res = train(small_cnn(), digits, Budget(epochs=0.1, batch_size=64), threads=2)
    assert res.threads == 2 and torch.get_num_threads() == before
    monkeypatch.setattr(os, "cpu_count", lambda: 8)  # the old default, min(4, cpu_count), would have used 4
    torch.set_num_threads(1)
    try:  # threads=None: the process's setting (torch's default, which follows OMP_NUM_THREADS), untouched
        res = train(small_cnn(), digits, Budget(epochs=0.1, batch_size=64))
        assert res.threads == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_fraction_and_resolution(digits):
    budget = Budget(epochs=1, data_fraction=0.5, resolution=0.5, batch_size=32)
    shape = budget.input_shape(digits.input_shape)
    assert shape == (1, 4, 4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))  # only accepts 4x4 inputs
    res = train(model, digits, budget, threads=1)
    assert res.status == "ok", res.reason
    assert res.steps == (len(digits.y_train) + 1) // 2 // 32
    _, acc = evaluate_accuracy(model, digits, resolution=0.5)
    assert acc == pytest.approx(res.curve[-1].val_accuracy)


def test_sequence_dataset():
    data = load_dataset("selective_copy:16", train_subset=400)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 3, 16))
    res = train(model, data, Budget(epochs=1, batch_size=32), threads=1)
    assert res.status == "ok" and len(res.curve) == 1


@pytest.mark.parametrize("mode,status,fragment", [
    ("nan", "diverged", "non-finite training loss"),
    ("oom", "oom", "OutOfMemoryError: CUDA out of memory"),
    ("oom-runtime", "oom", "RuntimeError: CUDA error: out of memory more details"),
    ("value", "error", "ValueError: bad shape 123 second line"),
])
def test_failures_become_status(digits, mode, status, fragment):
    model = Failing(mode)
    res = train(model, digits, Budget(epochs=2, batch_size=32), threads=1)
    assert res.status == status
    assert fragment in res.reason and "\n" not in res.reason
    if mode == "nan":
        assert res.curve == [] and res.steps < 40  # caught within the first epoch (40 steps)
    ref = weakref.ref(model)
    del model, res
    if mode != "oom":  # (for OOM the trainer runs the cycle collector itself)
        assert ref() is None  # nothing (traceback, optimizer, reference cycle) keeps the failed candidate alive
    gc.collect()
    assert ref() is None


def test_model_error_message_is_not_swallowed_for_bad_output(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    res = train(model, digits, Budget(epochs=0.2, batch_size=32), threads=1)
    assert res.status == "error"
    assert res.reason == "ValueError: the model outputs 3 class scores, the data set has 10 classes"


def test_callback_prunes(digits):
    seen = []

    def cb(stats):
        seen.append(stats)
        return True

    res = train(small_cnn(), digits, Budget(epochs=3, batch_size=64), callback=cb, threads=1)
    assert res.status == "pruned" and "epoch 1" in res.reason
    assert len(res.curve) == 1 and seen == res.curve and isinstance(seen[0], EpochStats)
    assert res.steps == len(digits.y_train) // 64


def test_callback_exception_propagates(digits):
    class Stop(Exception):
        pass

    def cb(stats):
        raise Stop()

    before = torch.get_num_threads()
    with pytest.raises(Stop):
        train(small_cnn(), digits, Budget(epochs=1, batch_size=64), callback=cb, threads=1)
    assert torch.get_num_threads() == before


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
def test_memory_does_not_grow_over_candidates(digits):
    budget = Budget(epochs=0.1, batch_size=64)

    def candidate(i):
        model = small_cnn(seed=i) if i % 3 else Failing("value" if i % 2 else "nan")
        res = train(model, digits, budget, seed=i, threads=1)
        assert isinstance(res, TrainResult) and res.status in ("ok", "error", "diverged")

    for i in range(3):  # warm-up: allocator pools, lazy imports
        candidate(i)
    gc.collect()
    start = _rss_bytes()
    for i in range(30):
        candidate(i)
    gc.collect()
    growth = _rss_bytes() - start
    assert growth < 50 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MB over 30 candidates"
    assert not [o for o in gc.get_objects() if type(o) is torch.optim.AdamW]


def _bn_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("epochs", [0.5, 2])
def test_batchnorm_statistics_from_last_batches(digits, epochs):
    """A short budget leaves momentum-0.1 running statistics near their initial values (eval-mode accuracy far
    below train-mode); the trainer averages the statistics over its last training batches instead, at no extra cost.
    The result must match a separate re-estimation pass within a few points and restore the layers' momentum."""
    from nas.evaluate.train import BN_RECALIBRATION_SAMPLES, Runner, recalibrate_batchnorm

    model = small_cnn()
    budget = Budget(epochs=epochs, batch_size=32, lr=3e-3)
    res = train(model, digits, budget, seed=0)
    assert res.status == "ok"
    norms = _bn_layers(model)
    assert all(m.momentum == 0.1 for m in norms)
    window = -(-BN_RECALIBRATION_SAMPLES // 32)
    per_epoch = digits.size("train") // 32
    last_epoch_steps = res.steps - (int(res.steps - 1) // per_epoch) * per_epoch
    assert all(int(m.num_batches_tracked) == min(window, last_epoch_steps) for m in norms)
    acc_window = res.final.val_accuracy
    _, acc_again = evaluate_accuracy(model, digits, "val")
    assert acc_again == pytest.approx(acc_window)  # the curve's last point is the stored model's accuracy

    recal = small_cnn()
    recal.load_state_dict(model.state_dict())
    recal.train()
    recalibrate_batchnorm(recal, Runner(digits, torch.device("cpu"), None))
    _, acc_recal = evaluate_accuracy(recal, digits, "val")
    assert acc_window > 0.5 and abs(acc_window - acc_recal) <= 0.05, (acc_window, acc_recal)


def test_batchnorm_momentum_restored_after_failure(digits):
    class NaNAfter(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = small_cnn()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            y = self.body(x)
            return y * float("nan") if self.calls > 3 else y

    model = NaNAfter()
    res = train(model, digits, Budget(epochs=1, batch_size=32), seed=0)
    assert res.status == "diverged"
    assert all(m.momentum == 0.1 for m in _bn_layers(model))


def test_channels_last_on_cpu_trains_the_same_function_deterministically(digits):
    budget = Budget(epochs=1.5, batch_size=64)

    def run(channels_last):
        model = small_cnn(seed=0)
        res = train(model, digits, budget, seed=0, threads=1, channels_last=channels_last)
        assert res.status == "ok", res.reason
        return model, [(s.train_loss, s.val_loss, s.val_accuracy) for s in res.curve]

    plain, curve_plain = run(False)
    cl, curve_cl = run(True)
    assert plain[3].weight.is_contiguous()  # the 16 -> 32 conv (a 1-channel weight is both formats at once)
    assert cl[3].weight.is_contiguous(memory_format=torch.channels_last) and not cl[3].weight.is_contiguous()
    assert run(True)[1] == curve_cl  # deterministic for a seed
    for (tl_a, vl_a, acc_a), (tl_b, vl_b, acc_b) in zip(curve_plain, curve_cl):
        # the same computation in another memory layout: equal up to float rounding over ~40 steps
        assert tl_b == pytest.approx(tl_a, rel=2e-2) and vl_b == pytest.approx(vl_a, rel=5e-2)
        assert abs(acc_a - acc_b) <= 0.05
    loss, acc = evaluate_accuracy(cl, digits, "val")  # evaluation takes the model as trained
    assert acc == pytest.approx(curve_cl[-1][2])


def test_step_progress_hears_the_steps_of_every_training_inside_the_block(digits):
    from nas.evaluate.train import CHECK_EVERY, step_progress

    heard = []
    budget = Budget(epochs=2, batch_size=8)
    with step_progress(lambda step, total, loss: heard.append((step, total, loss))):
        res = train(small_cnn(), digits, budget, seed=0, threads=1)
    steps_per_epoch = len(digits.y_train) // 8
    assert len(heard) == 2 * (steps_per_epoch // CHECK_EVERY)  # at each check of each epoch
    assert all(((step - 1) % steps_per_epoch + 1) % CHECK_EVERY == 0 for step, _, _ in heard)
    assert [h[0] for h in heard] == sorted({h[0] for h in heard})
    assert all(total == res.steps for _, total, _ in heard) and all(np.isfinite(loss) for *_, loss in heard)
    assert heard[-1][2] < heard[0][2]  # it learns
    before = len(heard)
    train(small_cnn(), digits, Budget(epochs=0.5, batch_size=8), seed=0, threads=1)
    assert len(heard) == before  # outside the block nobody hears


@pytest.mark.parametrize("device, kind, expected", [("cpu", "image", True), ("cuda", "image", False),
                                                    ("cuda:0", "image", False), ("cpu", "sequence", False)])
def test_channels_last_by_default_on_the_cpu_only(device, kind, expected):
    # CUDA: cuDNN's one-off cost per new channels-last shape outweighs a proxy training (bench_eval_phases_cuda.md)
    assert channels_last_default(torch.device(device), kind) is expected


@pytest.mark.parametrize("mixer", sorted(registered()))
def test_every_mixer_trains_under_bf16_autocast(digits, monkeypatch, mixer):
    # the CUDA trainer's dtype path (bf16 autocast, float32 loss and optimizer state) run on the CPU's autocast
    entered = []
    monkeypatch.setattr(Runner, "autocast",
                        lambda self: entered.append(1) or torch.autocast("cpu", dtype=torch.bfloat16))
    torch.manual_seed(0)
    model = build(spec_with(mixer, norm="layer"), digits.input_shape, digits.num_classes)
    res = train(model, digits, Budget(epochs=1, batch_size=64), seed=0, threads=1)
    assert res.status == "ok", res.reason
    assert len(entered) >= res.steps  # every training step ran under autocast
    assert math.isfinite(res.final.train_loss) and math.isfinite(res.final.val_loss)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("batch, classes", [(1, 2), (7, 10), (64, 100)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_smoothed_cross_entropy_is_torchs_label_smoothing(batch, classes, smoothing):
    g = torch.Generator().manual_seed(batch * classes)
    logits = (3 * torch.randn(batch, classes, generator=g, dtype=torch.float64)).requires_grad_(True)
    target = torch.randint(0, classes, (batch,), generator=g)
    ours = smoothed_cross_entropy(logits, target, smoothing)
    (grad,) = torch.autograd.grad(ours, logits)
    ref = torch.nn.functional.cross_entropy(logits, target, label_smoothing=smoothing)
    (ref_grad,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)
