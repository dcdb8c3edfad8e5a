"""Proxy trainer: train a candidate network for a (possibly reduced) budget and report its validation curve.

One call of :func:`train` trains one model with AdamW, label smoothing, a per-step linear warm-up followed by cosine
decay, and gradient-norm clipping; it evaluates on the validation split after every whole epoch and at the end of a
fractional last epoch. It never raises for a failing candidate: divergence, out-of-memory and any other exception in
the model become a :class:`TrainResult` status. Only a bad :class:`Budget` (``BudgetError``) and exceptions raised by
the caller's own ``callback`` propagate.

On CUDA it uses bf16 autocast and ``torch.compile`` when asked; image models train in channels-last memory format on
the CPU, and on CUDA only when asked (:func:`channels_last_default`). On CPU it is deterministic for a seed (same
seed, same model initialisation -> identical curve).
"""
from __future__ import annotations

import contextlib
import gc
import itertools
import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from nas.budget import Budget, scaled_size
from nas.errors import BudgetError
from nas.significance import pack_correct

__all__ = ["EpochStats", "TrainResult", "Trainer", "train", "evaluate_accuracy", "Runner", "train_step",
           "lr_factor", "param_groups", "evaluate_split", "BatchNormWindow", "channels_last_default",
           "smoothed_cross_entropy"]

CLIP_NORM = 5.0
CHECK_EVERY = 25  # steps between the (syncing) finite-loss checks inside an epoch
_step_listeners: list = []  # step_progress: who hears (step, total steps, recent loss) at every check


@contextlib.contextmanager
def step_progress(listener):
    """While the block runs, every training in this process calls ``listener(step, total_steps, loss)`` at each
    finite-loss check (every :data:`CHECK_EVERY` steps; ``loss``: the mean of those steps), e.g. a live progress
    line inside a trial. Evaluators need no argument for it: the controller wraps its evaluator call."""
    _step_listeners.append(listener)
    try:
        yield
    finally:
        _step_listeners.remove(listener)


MAX_REASON = 500


@dataclass
class EpochStats:
    epoch: float  # epochs done (fractional for a partial last epoch)
    train_loss: float  # mean training loss (with label smoothing) over this epoch's steps
    val_loss: float  # mean validation cross-entropy (without label smoothing)
    val_accuracy: float
    wall_s: float  # seconds since training started


@dataclass
class TrainResult:
    status: str  # "ok" | "diverged" | "oom" | "error" | "pruned"
    reason: str | None
    curve: list[EpochStats] = field(default_factory=list)
    wall_s: float = 0.0
    samples_per_s: float = 0.0  # training samples per second of training (evaluation time excluded)
    device: str = "cpu"
    threads: int = 1
    steps: int = 0
    val_size: int = 0  # examples in the validation split
    val_correct: str = ""  # which of them the last evaluation got right (nas.significance.pack_correct)

    @property
    def final(self) -> EpochStats | None:
        return self.curve[-1] if self.curve else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["curve"] = [asdict(s) for s in self.curve]
        return d


class _Diverged(Exception):
    pass


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    msg = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return msg if len(msg) <= MAX_REASON else msg[: MAX_REASON - 3] + "..."


def channels_last_default(device: torch.device, kind: str) -> bool:
    """Whether proxy training and evaluation put an image model and its batches in channels-last memory format: on
    the CPU yes, on CUDA no. Sequence data never is.

    CPU: measured faster (experiments/bench_channels_last_cpu.py: proxy training of 14 architectures sampled from the
    image spaces, faster for every one, none slower). CUDA: measured on an H200 (experiments/bench_eval_phases.py,
    results/bench_eval_phases_cuda.md: mobile-space candidates, one epoch of 8,100 CIFAR-10 images), the first
    channels-last training of an architecture took 13.6 s and 27.3 s against 1.7-1.8 s in the default layout: cuDNN
    pays a one-off cost for every new convolution shape in channels-last under bf16 autocast, and a search trains
    each architecture once. Once paid, channels-last ran 1.2-1.4 s, so a long training of one architecture (``nas
    train``, :mod:`nas.fulltrain`) asks for it explicitly."""
    return kind == "image" and torch.device(device).type != "cuda"


class Runner:
    """Per-device settings shared by the training and evaluation loops."""

    def __init__(self, data, device: torch.device, size: tuple[int, int] | None, channels_last: bool | None = None):
        self.data = data
        self.device = device
        self.cuda = device.type == "cuda"
        self.size = size  # (H, W) images are resized to, or None
        self.channels_last = channels_last_default(device, data.kind) if channels_last is None else (
            data.kind == "image" and bool(channels_last))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            shrink = self.size[0] < x.shape[-2]
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=shrink)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cuda)


def _image_size(data, resolution: float) -> tuple[int, int] | None:
    if data.kind != "image" or resolution == 1.0:
        return None
    _, h, w = data.input_shape
    return (scaled_size(h, resolution), scaled_size(w, resolution))


BN_RECALIBRATION_SAMPLES = 512


def recalibrate_batchnorm(model, runner: Runner, *, max_samples: int = BN_RECALIBRATION_SAMPLES,
                          batch_size: int = 256) -> bool:
    """Recompute BatchNorm running statistics as exact averages over up to ``max_samples`` training examples
    (512 by default: enough for stable per-channel statistics, a quarter of the cost of 2048 in the trainer
    benchmark).

    A proxy budget gives a network few optimizer steps; with momentum 0.1 the running statistics still remember their
    initial values after 20 updates (0.9^20 = 0.12), so evaluation-mode accuracy under-reports BatchNorm networks
    against LayerNorm ones — measured here: 0.82 in train mode, 0.12 in eval mode after 20 steps. Re-estimating the
    statistics before evaluating (as weight-sharing NAS does, e.g. SPOS and once-for-all) removes that bias. Uses the
    first training batches in stored order, without augmentation, so it is deterministic. Returns whether the model
    had BatchNorm layers.
    """
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return False
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    seen = 0
    with torch.no_grad():
        for xb, _ in runner.data.batches("train", batch_size, shuffle=False, drop_last=True):
            with runner.autocast():
                model(runner.prepare(xb))
            seen += len(xb)
            if seen >= max_samples:
                break
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return True


class BatchNormWindow:
    """BatchNorm running statistics as the exact average over the last training batches of each epoch, at no extra
    cost: :meth:`open` (called before the last ``steps`` optimizer steps of an epoch) resets the statistics and
    switches the layers to a cumulative average (``momentum=None``); :meth:`close` restores their momentum.

    This replaces a separate re-estimation pass (:func:`recalibrate_batchnorm`) in the proxy trainer, which cost
    10-25% of a short proxy budget in the trainer-overhead benchmark. The statistics come from the augmented training
    batches of the last ~512 samples while the weights still move a little (the learning rate is near its cosine
    minimum at the end of training), so they differ slightly from a re-estimation afterwards; the validation accuracy
    this gives is compared with the re-estimation in tests/evaluate/test_train.py.
    """

    def __init__(self, model, samples: int, batch_size: int):
        self.norms = [m for m in model.modules()
                      if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        self.steps = max(1, math.ceil(samples / max(1, batch_size)))
        self.momenta = [m.momentum for m in self.norms]
        self.is_open = False

    def open(self) -> None:
        for m in self.norms:
            m.reset_running_stats()
            m.momentum = None
        self.is_open = bool(self.norms)

    def close(self) -> None:
        for m, momentum in zip(self.norms, self.momenta):
            m.momentum = momentum
        self.is_open = False


def evaluate_split(model, runner: Runner, split: str, batch_size: int, *, recalibrate: bool = True,
                   correct_out: list | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on ``split``. A model in training mode has its BatchNorm statistics
    re-estimated first (``recalibrate=False``: the caller has estimated them already). ``correct_out``: a list that
    receives one boolean tensor per batch (on the device: no sync per batch), which examples the model got right,
    in the split's order."""
    was_training = model.training
    if was_training and recalibrate:  # weights changed since the statistics were last estimated
        recalibrate_batchnorm(model, runner)
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=runner.device)
    correct = torch.zeros((), dtype=torch.int64, device=runner.device)
    n = 0
    with torch.no_grad():
        for xb, yb in runner.data.batches(split, batch_size, shuffle=False):
            with runner.autocast():
                logits = model(runner.prepare(xb))
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").double()
            hit = logits.argmax(dim=1) == yb
            correct += hit.sum()
            if correct_out is not None:
                correct_out.append(hit)
            n += len(yb)
    model.train(was_training)
    n = max(n, 1)
    return loss_sum.item() / n, correct.item() / n


def evaluate_accuracy(model, data, split: str = "val", batch_size: int = 512, *,
                      resolution: float = 1.0) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` on ``split``, on the data's device (move the model there).
    ``resolution`` resizes image batches as in training (pass the budget's resolution for a model built for it)."""
    device = data.x_train.device
    runner = Runner(data, device, _image_size(data, resolution))
    return evaluate_split(model, runner, split, batch_size)


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """``F.cross_entropy(logits, target, label_smoothing=smoothing)`` for ``(B, K)`` logits, written as one weighted
    sum of the log-probabilities (weight ``1 - smoothing + smoothing / K`` on the target, ``smoothing / K`` elsewhere):
    the same value and gradient in about half the operations, each a kernel launch on a GPU, where a small
    candidate's training step is bound by its launches."""
    if not smoothing:
        return F.cross_entropy(logits, target)
    logp = logits.log_softmax(-1)
    k = logits.shape[-1]
    weights = torch.full_like(logp, smoothing / k).scatter_(1, target[:, None], 1.0 - smoothing + smoothing / k)
    return (weights * logp).sum().div(-len(target))


def train_step(model, opt, params, runner: Runner, xb, yb, lr: float, label_smoothing: float) -> torch.Tensor:
    """One optimizer step at learning rate ``lr`` (autocast on CUDA, gradient clipping); returns the detached loss
    without synchronising. Shared by the proxy trainer and full training."""
    for g in opt.param_groups:
        g["lr"] = lr
    with runner.autocast():
        logits = model(runner.prepare(xb))
    # a shape check (no sync): on CUDA a target index past the scores would be a device-side assert, which ends the
    # process's use of the GPU
    if logits.shape[-1] != runner.data.num_classes:
        raise ValueError(f"the model outputs {logits.shape[-1]} class scores, the data set has "
                         f"{runner.data.num_classes} classes")
    loss = smoothed_cross_entropy(logits.float(), yb, label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
    opt.step()
    return loss.detach()


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``. ``step`` is 0-based."""
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


class Trainer:
    """One training run, a step at a time: the model on its device, AdamW over :func:`param_groups`, the step count on
    the warm-up + cosine schedule (:func:`lr_factor`) and the CPU generator that shuffles and augments the batches.

    :func:`train` (the proxy budget: fractional epochs, a BatchNorm window, divergence checks, a status for every
    failure) and ``nas train`` (:mod:`nas.fulltrain`: whole epochs, checkpointed) drive it with their own loops; both
    step through :meth:`batches` and :meth:`step`, so they train alike. :meth:`state_dict` /
    :meth:`load_state_dict` hold what a checkpoint needs to continue bit-identically on the CPU (with the weights).
    """

    def __init__(self, model, data, budget: Budget, *, device, seed: int = 0, runner: Runner | None = None,
                 channels_last: bool | None = None, compile: bool = False):
        device = torch.device(device)
        self.data, self.budget, self.device = data, budget, device
        self.runner = runner or Runner(data, device, _image_size(data, budget.resolution), channels_last)
        model.to(device)
        if self.runner.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.net = torch.compile(model) if compile else model  # what steps and evaluations call
        opt_kwargs = {"fused": True} if device.type == "cuda" else {}
        self.opt = torch.optim.AdamW(param_groups(model, budget.weight_decay), lr=budget.lr, **opt_kwargs)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.generator = torch.Generator().manual_seed(seed)
        self.batch_size = int(budget.batch_size)
        self.steps_per_epoch = max(1, budget.examples_per_epoch(data.size("train")) // self.batch_size)
        self.total_steps = max(1, math.ceil(budget.epochs * self.steps_per_epoch))
        self.warmup_steps = int(round(budget.warmup_fraction * self.total_steps))
        self.steps = 0  # optimizer steps taken: the position on the LR schedule
        self.samples = 0  # training examples seen by this object (not restored from a checkpoint)

    def batches(self):
        """One epoch's training batches: shuffled with the trainer's generator, augmented, the budget's data
        fraction, the last short batch dropped."""
        return self.data.batches("train", self.batch_size, shuffle=True, generator=self.generator, augment=True,
                                 fraction=self.budget.data_fraction, drop_last=True)

    def step(self, xb, yb) -> torch.Tensor:
        """One optimizer step at the schedule's learning rate; the detached loss, without synchronising."""
        lr = self.budget.lr * lr_factor(self.steps, self.total_steps, self.warmup_steps)
        loss = train_step(self.net, self.opt, self.params, self.runner, xb, yb, lr, self.budget.label_smoothing)
        self.steps += 1
        self.samples += len(yb)
        return loss

    def evaluate(self, split: str = "val", batch_size: int = 512, **options) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on ``split`` (see :func:`evaluate_split` for the options)."""
        return evaluate_split(self.net, self.runner, split, batch_size, **options)

    def state_dict(self) -> dict:
        """The optimizer's state, the schedule position and the generator's state (tensors, numbers, dicts)."""
        return {"optimizer": self.opt.state_dict(), "steps": self.steps, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
        self.generator.set_state(state["generator"])


def _train_epoch(trainer: Trainer, bn_window: BatchNormWindow, epoch_steps: int) -> float:
    """``epoch_steps`` optimizer steps; the mean training loss. The BatchNorm window opens for the last steps; the
    loss is checked for divergence every ``CHECK_EVERY`` steps (a sync; the caller checks the epoch's mean)."""
    window_from = max(0, epoch_steps - bn_window.steps)
    loss_sum = torch.zeros((), device=trainer.device)
    since_check = torch.zeros((), device=trainer.device)
    k = 0
    for xb, yb in itertools.islice(trainer.batches(), epoch_steps):
        if k == window_from:
            bn_window.open()
        since_check += trainer.step(xb, yb)
        k += 1
        if k % CHECK_EVERY == 0:
            if not torch.isfinite(since_check).item():
                raise _Diverged(f"non-finite training loss by step {trainer.steps}")
            if _step_listeners:
                recent = since_check.item() / CHECK_EVERY
                for listener in _step_listeners:
                    listener(trainer.steps, trainer.total_steps, recent)
            loss_sum += since_check
            since_check.zero_()
    loss_sum += since_check
    return loss_sum.item() / max(k, 1)


def train(model, data, budget: Budget, *, device="cpu", seed: int = 0, callback=None, compile: bool = False,
          threads: int | None = None, channels_last: bool | None = None) -> TrainResult:
    """Train ``model`` (in place) on ``data`` for ``budget`` and return its validation curve and status.

    ``callback(EpochStats)`` is called after every evaluation; returning True stops training with status "pruned"
    (an exception it raises propagates to the caller). ``threads`` sets torch's intra-op threads for the call and
    the previous value is restored afterwards; None keeps the process's setting (torch's default, which follows
    ``OMP_NUM_THREADS``, unless something set it). ``channels_last``:
    image models and batches in channels-last memory format (default: :func:`channels_last_default`).
    """
    if not isinstance(budget, Budget):
        raise BudgetError(f"budget must be a Budget, got {type(budget).__name__}", key="budget")
    budget.validate()
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    prev_threads = torch.get_num_threads()
    if threads is not None:
        threads = max(1, int(threads))
        torch.set_num_threads(threads)
    used_threads = torch.get_num_threads()

    t0 = time.perf_counter()
    curve: list[EpochStats] = []
    status, reason = "ok", None
    steps_done = 0
    samples = 0
    train_time = 0.0
    in_callback = False
    oom = False
    bn_window = None
    val_correct = ""
    trainer = None
    try:
        with torch.random.fork_rng(devices=[device.index] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            try:
                trainer = Trainer(model, data.to(device), budget, device=device, seed=seed,
                                  channels_last=channels_last, compile=compile)
                steps_per_epoch, total_steps = trainer.steps_per_epoch, trainer.total_steps
                n_epochs = math.ceil(total_steps / steps_per_epoch)

                bn_window = BatchNormWindow(model, BN_RECALIBRATION_SAMPLES, trainer.batch_size)
                model.train()
                for epoch in range(n_epochs):
                    te = time.perf_counter()
                    train_loss = _train_epoch(trainer, bn_window, min(steps_per_epoch, total_steps - trainer.steps))
                    steps_done, samples = trainer.steps, trainer.samples
                    train_time += time.perf_counter() - te
                    if not math.isfinite(train_loss):
                        raise _Diverged(f"non-finite training loss by step {steps_done}")
                    recal = not bn_window.is_open  # (an epoch cut short before its window: re-estimate instead)
                    bn_window.close()
                    hits: list = []
                    val_loss, val_acc = trainer.evaluate("val", 512, recalibrate=recal, correct_out=hits)
                    if not math.isfinite(val_loss):
                        raise _Diverged(f"non-finite validation loss after step {steps_done}")
                    val_correct = pack_correct(torch.cat(hits).cpu().numpy()) if hits else ""
                    stats = EpochStats(epoch=round(steps_done / steps_per_epoch, 6), train_loss=train_loss,
                                       val_loss=val_loss, val_accuracy=val_acc, wall_s=time.perf_counter() - t0)
                    curve.append(stats)
                    if callback is not None:
                        in_callback = True
                        stop = callback(stats)
                        in_callback = False
                        if stop:
                            status, reason = "pruned", f"pruned by callback after epoch {stats.epoch:g}"
                            break
                model.eval()
            except _Diverged as e:
                status, reason = "diverged", str(e)
            except Exception as e:  # noqa: BLE001 - a failing candidate must not stop the search
                if in_callback:
                    raise
                if _is_oom(e):
                    status, reason, oom = "oom", _one_line(e), True
                else:
                    status, reason = "error", _one_line(e)
    finally:
        # Drop every reference to the optimizer / compiled wrapper before returning, so memory does not grow.
        if trainer is not None:  # what a failing epoch got through
            steps_done, samples = trainer.steps, trainer.samples
        trainer = None
        if bn_window is not None:
            bn_window.close()
        if compile:
            try:
                torch._dynamo.reset()
            except Exception:  # noqa: BLE001
                pass
        if oom:  # free what the failed step held before the next candidate allocates (gc is slow: only here)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if threads is not None:
            torch.set_num_threads(prev_threads)
    return TrainResult(
        status=status,
        reason=reason,
        curve=curve,
        wall_s=time.perf_counter() - t0,
        samples_per_s=samples / train_time if train_time > 0 else 0.0,
        device=str(device),
        threads=used_threads,
        steps=steps_done,
        val_size=data.size("val") if curve else 0,
        val_correct=val_correct,
    )
