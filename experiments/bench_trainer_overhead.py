"""Proxy-trainer overhead: samples/s of ``nas.evaluate.train.train`` vs. a bare hand-written PyTorch loop.

What it measures
    For each model (a small conv net, a medium conv net and a small transformer-ish spec sampled from
    ``search_spaces/vision.yaml``) it trains the SAME initial weights on the SAME data for the SAME number of optimizer
    steps, batch size and thread count, with

    * ``trainer``: ``nas.evaluate.train.train(model, data, Budget(epochs, batch_size), threads=...)``, timed end to end
      (wall clock of the call: set-up, augmentation, clipping, LR schedule, finite checks and the per-epoch
      validation pass included); its own ``samples_per_s`` (training loop only, evaluation excluded) is reported too;
    * ``bare``: the fastest honest loop -- data already normalised float tensors, one ``randperm`` per epoch,
      ``AdamW(model.parameters())``, ``cross_entropy``, ``zero_grad / backward / step``, no per-step syncs, nothing
      else.

    The variants are interleaved (one run of each per round, order rotated every round) after an untimed warm-up
    round, and the ratio ``trainer samples/s / bare samples/s`` is the median of the per-round paired ratios.

    Breakdown (``--breakdown``, on by default): the bare loop plus ONE feature of the trainer at a time --
    ``data`` (the trainer's data path: ``Dataset.batches`` with uint8 -> float normalisation and random-crop / flip
    augmentation per batch), ``clip`` (``clip_grad_norm_``), ``extras`` (two AdamW param groups, the per-step LR
    schedule, label smoothing, loss accumulation and the every-25-steps finite check), ``eval`` (the per-epoch
    validation pass in eval mode) and ``bnwin`` (BatchNorm statistics averaged over the last ~512 training samples
    of each epoch, ``BatchNormWindow``: a reset and a momentum switch, no extra forward passes) -- and ``all``
    (bare + every feature, which should account for the trainer's time). Each feature's cost is its median paired
    time ratio to ``bare`` minus 1.
    Both sides use the trainer's memory format (:func:`nas.evaluate.train.channels_last_default`: channels-last for
    image models on the CPU, where it measured faster, see bench_channels_last_cpu.py; the default layout on CUDA,
    where a first channels-last training pays cuDNN's one-off cost per new shape, see bench_eval_phases.py). Careful
    when writing such a loop by hand: grey images loaded from numpy as ``x[:, None]`` have strides ``(784, 1, 28, 1)``,
    which convolutions treat as channels-last, so a loop indexing them directly may not run the format it means to.

Target
    trainer / bare samples/s >= 0.95 on CPU (per model). Three ratios are reported: ``like-for-like`` (the trainer,
    end to end, against the bare loop plus the same per-epoch validation pass, ``eval``: both produce the validation
    curve a search needs -- the verdict uses this one), ``vs bare (no validation)`` (stricter: the trainer's
    validation pass counts as overhead) and ``loop-only`` (the trainer's own ``samples_per_s``, which excludes its
    evaluation, against the bare loop). On CUDA (``--device cuda``) the same comparison, against an
    airbench-style loop (data resident on the GPU and normalised once, the whole training set randomly cropped and
    flipped once per epoch on the GPU as airbench's loader does, bf16 autocast, fused AdamW, GPU ``randperm``, no
    syncs until the end), in the trainer's memory format.

How to run (from the repository root; results go to experiments/results/bench_trainer_overhead.md and .csv)
    NAS_DATA_DIR=/work/shared/data python experiments/bench_trainer_overhead.py                 # CPU default
    NAS_DATA_DIR=/work/shared/data python experiments/bench_trainer_overhead.py --repeats 3 --no-breakdown  # quick

GPU run (not run here: no GPU on the development machine); settings that make the GPU, not Python, the bottleneck:
    NAS_DATA_DIR=... python experiments/bench_trainer_overhead.py --device cuda --dataset cifar10 \
        --train-subset 10000 --batch-size 512 --epochs 4 --repeats 7
    (add ``--compile`` to compare both sides under torch.compile).
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import torch
from _common import Report, machine_info, median, print_header, sync_device

from nas.budget import Budget
from nas.builder import build
from nas.data import load_dataset
from nas.evaluate.costs import violations
from nas.evaluate.measure import count_flops, count_params
from nas.evaluate.train import (
    BN_RECALIBRATION_SAMPLES,
    CHECK_EVERY,
    CLIP_NORM,
    BatchNormWindow,
    channels_last_default,
    evaluate_accuracy,
    smoothed_cross_entropy,
    train,
)
from nas.grammar import load_space
from nas.spec import ArchSpec

NAME = "bench_trainer_overhead"
TARGET = 0.95  # on the CPU, against the bare loop
TARGET_CUDA = 0.9  # on a GPU, against the airbench-style loop
FEATURES = ("data", "clip", "extras", "eval", "bnwin")
OPPORTUNITIES: tuple[str, ...] = ()  # speed-ups the trainer does not use

SMALL_CONV = {
    "input": "image",
    "stem": {"type": "conv", "width": 16, "kernel_size": 3},
    "stages": [
        {"depth": 1, "width": 16, "downsample": "none", "mixer": {"type": "conv", "options": {"kernel_size": 3}},
         "skip": "residual", "norm": "batch", "act": "relu"},
        {"depth": 1, "width": 32, "downsample": "conv", "mixer": {"type": "conv", "options": {"kernel_size": 3}},
         "skip": "residual", "norm": "batch", "act": "relu"},
        {"depth": 1, "width": 64, "downsample": "conv", "mixer": {"type": "conv", "options": {"kernel_size": 3}},
         "skip": "residual", "norm": "batch", "act": "relu"},
    ],
    "head": {"type": "pool"},
}


def medium_conv() -> ArchSpec:
    """The ResNet baseline (2 basic blocks per stage, 32/64/128 wide) at width multiplier 0.5."""
    from nas.grammar import shipped_spaces_dir

    spec = ArchSpec.load(shipped_spaces_dir() / "baselines" / "resnet.yaml")
    data = spec.canonical()
    data["width_multiplier"] = 0.5
    return ArchSpec.from_data(data)


def small_transformer(input_shape, max_mflops: float, first_seed: int = 0) -> tuple[ArchSpec, int]:
    """The first vision-space sample (seed >= first_seed) with >= 2 attention/transformer stages, within the space's
    constraints and under ``max_mflops`` forward MFLOPs per sample at ``input_shape``.

    (With the default arguments this is seed 16, an FPN head over instance-norm stages: its logits do not depend on
    the input -- see proxy_fidelity -- which does not matter for a throughput measurement.)"""
    space = load_space("vision")
    for seed in range(first_seed, first_seed + 500):
        spec = space.sample(seed)
        tokens = sum(s.mixer.type in ("attention", "transformer") for s in spec.stages)
        if tokens < 2:
            continue
        try:
            if violations(space, spec):
                continue
            model = build(spec, input_shape, 10)
            if count_flops(model, torch.randn(2, *input_shape)) / 2 > max_mflops * 1e6:
                continue
        except Exception:  # noqa: BLE001 - e.g. a spec that cannot run at this input size
            continue
        return spec, seed
    raise SystemExit("no small transformer-ish spec found in 500 samples")


# ------------------------------------------------------------------------------------------------------ loops
def bare_loop(model, data, *, steps_per_epoch: int, epochs: int, bs: int, device: torch.device, seed: int,
              features: frozenset = frozenset(), budget: Budget | None = None,
              x_float: torch.Tensor | None = None) -> float:
    """Train ``model`` for ``epochs * steps_per_epoch`` steps; return the seconds it took (synced at the end).

    With no ``features`` this is the bare loop; each feature adds one piece of what ``train`` does.
    """
    cuda = device.type == "cuda"
    # the memory format the trainer uses (like for like); the "channels_last" variant forces it on
    channels_last = channels_last_default(device, data.kind) or "channels_last" in features
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if "extras" in features:
        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": budget.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
    else:
        groups = model.parameters()
    opt = torch.optim.AdamW(groups, lr=budget.lr, weight_decay=budget.weight_decay,
                            **({"fused": True} if cuda else {}))
    params = [p for g in opt.param_groups for p in g["params"]]
    x_train, y_train = x_float, data.y_train
    n = len(y_train)
    total = epochs * steps_per_epoch
    warmup = int(round(budget.warmup_fraction * total))
    smoothing = budget.label_smoothing if "extras" in features else 0.0
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda)
    step = 0
    model.train()
    sync_device(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        if "data" in features:
            batches = data.batches("train", bs, shuffle=True, generator=gen, augment=True, drop_last=True)
        else:
            # airbench-style on CUDA: the whole (normalised) training set cropped and flipped once per epoch on the
            # GPU, as airbench's loader does; the CPU's bare loop does not augment
            x_epoch = data.augment_batch(x_train, generator=gen) if cuda else x_train
            perm = torch.randperm(n, device=device) if cuda else torch.randperm(n, generator=gen)
            batches = ((x_epoch[perm[i * bs:(i + 1) * bs]], y_train[perm[i * bs:(i + 1) * bs]])
                       for i in range(steps_per_epoch))
        since_check = torch.zeros((), device=device)
        k = 0
        bn_window = BatchNormWindow(model, BN_RECALIBRATION_SAMPLES, bs) if "bnwin" in features else None
        for xb, yb in batches:
            if k >= steps_per_epoch:
                break
            if bn_window is not None and k == max(0, steps_per_epoch - bn_window.steps):
                bn_window.open()
            if channels_last:  # (permute trick: for C == 1 .contiguous(channels_last) keeps NCHW strides)
                xb = xb.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
            if "extras" in features:
                lr = budget.lr * lr_factor(step, total, warmup)
                for g in opt.param_groups:
                    g["lr"] = lr
            with autocast:
                logits = model(xb)
            loss = smoothed_cross_entropy(logits.float(), yb, smoothing)  # F.cross_entropy without smoothing
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if "clip" in features:
                torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
            opt.step()
            k += 1
            step += 1
            if "extras" in features:
                since_check += loss.detach()
                if k % CHECK_EVERY == 0:
                    if not torch.isfinite(since_check).item():
                        raise RuntimeError("diverged")
                    since_check.zero_()
        if "extras" in features:
            since_check.item()
        if bn_window is not None:
            bn_window.close()
        if "eval" in features:
            was_training = model.training
            model.eval()  # (evaluate_accuracy on a model in train mode would also recalibrate BatchNorm)
            evaluate_accuracy(model, data, "val", 512)
            model.train(was_training)
    sync_device(device)
    return time.perf_counter() - t0


def lr_factor(step: int, total: int, warmup: int) -> float:
    from nas.evaluate.train import lr_factor as lr_factor

    return lr_factor(step, total, warmup)


# ------------------------------------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion_mnist",
                   help="digits, fashion_mnist, mnist, cifar10 (default: %(default)s)")
    p.add_argument("--train-subset", type=int, default=2560,
                   help="class-balanced training pool (train + val; val is 10%%) (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1, help="whole epochs per run (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=7, help="timed interleaved rounds (default: %(default)s)")
    p.add_argument("--warmup-rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for both sides (default: the trainer's own default, min(4, cpu_count))")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile both sides (CUDA runs)")
    p.add_argument("--models", default="small_conv,medium_conv,small_transformer")
    p.add_argument("--breakdown", dest="breakdown", action="store_true", default=True)
    p.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix of the results files (results/<name>_<tag>.md)")
    args = p.parse_args()

    device = torch.device(args.device)
    target = TARGET_CUDA if device.type == "cuda" else TARGET
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    threads = args.threads if args.threads is not None else min(4, os.cpu_count() or 1)
    torch.set_num_threads(threads)

    info = machine_info()
    info["torch threads (used, both sides)"] = threads
    print_header(info)
    name_out = NAME + (f"_{args.tag}" if args.tag else "")
    report = Report(name_out, "Proxy-trainer overhead: nas.evaluate.train.train vs. a bare PyTorch loop", info=info)

    data = load_dataset(args.dataset, train_subset=args.train_subset, seed=args.seed, device=device)
    bs = args.batch_size
    n_train = data.size("train")
    steps_per_epoch = max(1, n_train // bs)
    steps = steps_per_epoch * args.epochs
    budget = Budget(epochs=args.epochs, batch_size=bs)
    # The bare loop's pre-normalised tensors (prepared outside the timing), in the canonical NCHW layout the trainer's
    # batches have. (Grey images come from numpy as x[:, None] with strides (784, 1, 28, 1), which convolutions take
    # for channels-last: the bare loop would silently run channels-last and be faster for a reason unrelated to
    # overhead.) Where the trainer runs channels-last, the bare loop's batches are made channels-last per step too.
    x_float = data.normalize(data.x_train).clone(memory_format=torch.contiguous_format)

    specs: dict[str, tuple[ArchSpec, str]] = {}
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in wanted:
        if name == "small_conv":
            specs[name] = (ArchSpec.from_data(SMALL_CONV), "hand-written 3-stage conv, 16/32/64 wide")
        elif name == "medium_conv":
            specs[name] = (medium_conv(), "baselines/resnet.yaml at width x0.5")
        elif name == "small_transformer":
            spec, seed = small_transformer(data.input_shape, max_mflops=30.0)
            specs[name] = (spec, f"vision.yaml sample seed {seed}")
        else:
            raise SystemExit(f"unknown model {name!r}")

    variants = ["bare", "trainer"] + ([*FEATURES, "all", *OPPORTUNITIES] if args.breakdown else ["eval"])
    report.text(
        f"Data: `{args.dataset}`, train_subset={args.train_subset} -> {n_train} train / {data.size('val')} val "
        f"images of shape {tuple(data.input_shape)}; batch {bs}; {args.epochs} epoch(s) = {steps} optimizer steps "
        f"({steps * bs} samples) per run; device `{device}`; {threads} torch thread(s) on both sides; "
        f"{args.repeats} timed interleaved rounds after {args.warmup_rounds} warm-up round(s); ratios are medians "
        f"of per-round paired ratios. Variants: {', '.join(variants)}."
    )

    summary_rows = []
    breakdown_rows = []
    diagnosis = []
    for name, (spec, origin) in specs.items():
        torch.manual_seed(args.seed)
        template = build(spec, data.input_shape, data.num_classes).to(device)
        n_params = count_params(template)
        mflops = count_flops(copy.deepcopy(template).cpu(), torch.randn(2, *data.input_shape)) / 2 / 1e6
        print(f"\n== {name}: {spec.summary()}  ({n_params:,} params, {mflops:.2f} MFLOPs/sample fwd)", flush=True)

        def run(variant: str) -> tuple[float, float | None]:
            model = copy.deepcopy(template)
            net = torch.compile(model) if (args.compile and variant != "trainer") else model
            if variant == "trainer":
                sync_device(device)
                t0 = time.perf_counter()
                r = train(model, data, budget, device=device, seed=args.seed, threads=threads,
                          compile=args.compile)
                sync_device(device)
                dt = time.perf_counter() - t0
                if r.status != "ok" or r.steps != steps:
                    raise SystemExit(f"trainer run failed: {r.status} {r.reason} steps={r.steps}")
                return dt, r.samples_per_s
            feats = frozenset(FEATURES) if variant == "all" else (
                frozenset() if variant == "bare" else frozenset([variant]))
            dt = bare_loop(net, data, steps_per_epoch=steps_per_epoch, epochs=args.epochs, bs=bs, device=device,
                           seed=args.seed, features=feats, budget=budget, x_float=x_float)
            return dt, None

        for _ in range(args.warmup_rounds):
            for v in variants:
                run(v)
        times: dict[str, list[float]] = {v: [] for v in variants}
        loop_sps: list[float] = []
        for r in range(args.repeats):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for v in order:
                dt, sps = run(v)
                times[v].append(dt)
                if sps is not None:
                    loop_sps.append(sps)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"  round {r + 1} (load {load:.2f}): " + ", ".join(f"{v} {times[v][-1]:.2f}s" for v in variants),
                  flush=True)

        samples = steps * bs
        bare_sps = median([samples / t for t in times["bare"]])
        trainer_sps = median([samples / t for t in times["trainer"]])
        strict_ratio = median([b / t for b, t in zip(times["bare"], times["trainer"])])
        ratio = median([b / t for b, t in zip(times["eval"], times["trainer"])])  # like for like: both validate
        best_ratio = min(times["eval"]) / min(times["trainer"])
        loop_ratio = median([s * b / samples for s, b in zip(loop_sps, times["bare"])])
        summary_rows.append([name, origin, f"{n_params:,}", f"{mflops:.2f}", steps, f"{bare_sps:.0f}",
                             f"{trainer_sps:.0f}", f"{median(loop_sps):.0f}", f"{ratio:.3f}", f"{best_ratio:.3f}",
                             f"{strict_ratio:.3f}", f"{loop_ratio:.3f}", "yes" if ratio >= target else "NO"])
        if args.breakdown:
            for v in [*FEATURES, "all", "trainer", *OPPORTUNITIES]:
                rel = median([t / b for t, b in zip(times[v], times["bare"])]) - 1.0
                best = min(times[v]) / min(times["bare"]) - 1.0
                ms_per_step = median([(t - b) / steps * 1000 for t, b in zip(times[v], times["bare"])])
                breakdown_rows.append([name, v, f"{median(times[v]):.3f}", f"{min(times[v]):.3f}",
                                       f"{100 * rel:+.1f}%", f"{100 * best:+.1f}%", f"{ms_per_step:+.2f}"])
            if ratio < target:
                costs = sorted(((median([t / b for t, b in zip(times[v], times["bare"])]) - 1.0, v)
                                for v in FEATURES), reverse=True)
                together = median([t / b for t, b in zip(times["all"], times["bare"])]) - 1
                diagnosis.append(f"- {name}: trainer/(bare+validation) {ratio:.3f}; the trainer's own loop-only "
                                 f"samples/s gives {loop_ratio:.3f}; largest feature costs: "
                                 + ", ".join(f"{v} {100 * c:+.1f}%" for c, v in costs if c > 0.02)
                                 + f" (sum of single features {100 * sum(c for c, _ in costs):+.1f}%, "
                                 f"all together {100 * together:+.1f}%)")
            breakdown_rows.append([name, "bare (reference)", f"{median(times['bare']):.3f}",
                                   f"{min(times['bare']):.3f}", "0", "0", "0"])

    report.text("## Result")
    report.table(["model", "spec", "params", "MFLOPs/sample", "steps", "bare samples/s", "trainer samples/s (wall)",
                  "trainer samples/s (own, eval excl.)", "ratio like-for-like (trainer / bare+validation)",
                  "ratio best-of (min times)", "ratio vs bare (no validation)", "ratio loop-only",
                  f"target >= {target}"], summary_rows, csv=f"{name_out}.csv")
    met = all(r[-1] == "yes" for r in summary_rows)
    missed = ", ".join(r[0] for r in summary_rows if r[-1] != "yes")
    report.text(f"\nVerdict: target trainer / (bare + validation) >= {target} (wall clock, like for like) is "
                f"{'MET for every model' if met else 'NOT met for: ' + missed}.")
    if args.breakdown:
        report.text("## Breakdown: bare loop + one trainer feature at a time")
        report.text("`time` is the median seconds per run, `min` the fastest run; `overhead` the median paired time "
                    "ratio to `bare` minus 1, `overhead best-of` the same from the fastest runs; `ms/step` the median "
                    "paired extra milliseconds per optimizer step. `all` = bare + every feature; it should roughly "
                    "match `trainer`. Both sides run image models in the trainer's memory format "
                    f"({'channels-last' if channels_last_default(device, data.kind) else 'the default layout'}).",
                    echo=False)
        report.table(["model", "variant", "time s", "min s", "overhead vs bare", "overhead best-of", "ms/step"],
                     breakdown_rows,
                     csv=f"{name_out}_breakdown.csv")
    if diagnosis:
        report.text("## Diagnosis (models below target)\n" + "\n".join(diagnosis))
    report.write()


if __name__ == "__main__":
    main()
