"""Proxy fidelity: how well zero-cost proxies and short proxy trainings rank architectures of a space (vision).

What it measures
    N architectures sampled from ``search_spaces/vision.yaml`` (``--space`` names another image space; its
    results are written as ``proxy_fidelity_<space>``) (seeds ``--sample-seed`` onwards; samples that
    break the space's constraints at its reference input are skipped, as a search would) are, at a reduced
    width (every sampled width multiplier times ``--width-scale``) and input resolution (``--resolution``):

    * scored by every zero-cost proxy in ``nas.evaluate.zero_cost.PROXIES`` (synflow, naswot, grad_norm, snip,
      params, flops) on the batch ``evaluate`` itself uses (``proxy_batch``: ``--proxy-batch`` seeded training
      images), each timed;
    * proxy-trained with ``nas.evaluate.train.train`` at each budget in ``--budgets`` (epochs; score = final
      validation accuracy, and minus the final validation loss);
    * trained for the REFERENCE budget (``--reference-epochs``, ~10x the longest proxy budget) from the same
      initial weights; the ground truth is its accuracy on ``--test-images`` images of the dataset's test split
      (larger than the validation split, so less noisy; the test split is never used by the search).

    It reports Kendall tau-b and Spearman rho of every proxy and budget against the reference accuracy (scipy.stats
    when installed, else the built-in implementations below), with a 95% bootstrap interval for rho (N is small),
    next to the published NAS-Bench-201 CIFAR-10 Spearman rho of Abdelfattah et al. 2021 ("Zero-Cost Proxies for
    Lightweight NAS"; synflow 0.74, jacob_cov 0.73, grad_norm 0.59, snip 0.59). Those come from a different search
    space, dataset and training protocol, so they are a yardstick, not a like-for-like comparison.

Resumable
    Every finished piece of work (sample check, zero-cost scores, each training) is appended to
    ``experiments/results/proxy_fidelity_cache.jsonl`` as one JSON line keyed by ``<spec hash>|<setting hash>``
    (the setting = every option that changes the number, plus a hash of the engine sources it depends on:
    builder, blocks, data, spec, evaluate/). A rerun with the same options and engine code skips what is cached
    and continues; changing an option (e.g. ``--reference-epochs``) recomputes only what that option affects, and
    a change to the engine code recomputes everything (results of two engine versions are never mixed).
    ``--max-minutes`` stops starting new architectures after that long and reports what is done.

Target
    Not a pass/fail benchmark: the point is the table. For orientation, published zero-cost proxies reach
    rho ~0.6-0.75 on NAS-Bench-201; a proxy training budget is worth its cost if it beats them.

How to run (from the repository root; NAS_DATA_DIR must hold fashion_mnist.npz / cifar10*.npz)
    NAS_DATA_DIR=/work/shared/data python experiments/proxy_fidelity.py              # CPU default, < 1 h on 2 cores
    NAS_DATA_DIR=/work/shared/data python experiments/proxy_fidelity.py --n 12 --reference-epochs 5   # reduced
    CPU default: 30 archs, Fashion-MNIST class-balanced train_subset=2000 (1800 train / 200 val), 28x28 inputs at
    resolution 0.5 (14x14), width x0.5, budgets 0.25/0.5/1 epoch, reference 10 epochs, 2000 test images.

GPU run (not run here): ``--full`` = 100 archs on CIFAR-10 (``cifar10.npz`` if present, else the 10k-image
``cifar10_small.npz``), full width and resolution, batch 256, budgets 0.25/0.5/1 epoch, reference 10 epochs,
device cuda. Any option given explicitly overrides the ``--full`` value.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import random
import time
from pathlib import Path

import torch
from _common import RESULTS_DIR, Report, machine_info, median, print_header, source_hash

from nas.budget import Budget
from nas.builder import build
from nas.data import load_dataset
from nas.evaluate.costs import violations
from nas.evaluate.evaluate import EvalConfig, proxy_batch
from nas.evaluate.measure import count_flops, count_params
from nas.evaluate.train import evaluate_accuracy, train
from nas.evaluate.zero_cost import PROXIES, score_all
from nas.grammar import load_space
from nas.spec import ArchSpec

NAME = "proxy_fidelity"
CACHE = RESULTS_DIR / "proxy_fidelity_cache.jsonl"
# The engine code a cached number depends on: a rerun after any change here recomputes instead of mixing versions.
ENGINE_SOURCES = ("nas/builder.py", "nas/blocks", "nas/catalog.py", "nas/budget.py", "nas/data", "nas/spec.py",
                  "nas/evaluate")
PUBLISHED_NB201_C10_RHO = {"synflow": 0.74, "jacob_cov": 0.73, "grad_norm": 0.59, "snip": 0.59}

DEFAULTS = dict(space="vision", n=30, dataset="fashion_mnist", train_subset=2000, val_fraction=0.1, resolution=0.5,
                width_scale=0.5, budgets="0.25,0.5,1", reference_epochs=10.0, batch_size=128, test_images=2000,
                proxy_batch=64, device="cpu")
FULL = dict(space="vision", n=100, dataset="cifar10", train_subset=None, val_fraction=0.1, resolution=1.0,
            width_scale=1.0, budgets="0.25,0.5,1", reference_epochs=10.0, batch_size=256, test_images=2000,
            proxy_batch=64, device="cuda")


# ------------------------------------------------------------------------------------------------ statistics
def _rank(xs: list[float]) -> list[float]:
    """Average ranks (1-based), ties share their mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    sa = math.sqrt(sum((x - ma) ** 2 for x in a))
    sb = math.sqrt(sum((y - mb) ** 2 for y in b))
    return sab / (sa * sb) if sa > 0 and sb > 0 else float("nan")


def spearman_builtin(a, b) -> float:
    return _pearson(_rank(list(a)), _rank(list(b)))


def kendall_builtin(a, b) -> float:
    """Kendall tau-b (tie-corrected), O(n^2)."""
    n = len(a)
    conc = disc = ta = tb = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ta += 1
            elif db == 0:
                tb += 1
            elif (da > 0) == (db > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + ta) * (conc + disc + tb))
    return (conc - disc) / denom if denom > 0 else float("nan")


try:
    from scipy import stats as _stats

    def spearman(a, b) -> float:
        return float(_stats.spearmanr(a, b).statistic)

    def kendall(a, b) -> float:
        return float(_stats.kendalltau(a, b).statistic)

    STATS_SOURCE = "scipy.stats (spearmanr, kendalltau tau-b)"
except ImportError:  # pragma: no cover - exercised only without scipy
    spearman, kendall = spearman_builtin, kendall_builtin
    STATS_SOURCE = "built-in (average ranks; Kendall tau-b)"


def finite_pairs(scores: list[float], truth: list[float]) -> tuple[list[float], list[float]]:
    """Drop NaNs; map +-inf just past the finite extremes (rank-preserving, so saturated scores still rank)."""
    pairs = [(s, t) for s, t in zip(scores, truth) if s == s and t == t]
    finite = [s for s, _ in pairs if math.isfinite(s)]
    hi = (max(finite) if finite else 0.0) + 1.0
    lo = (min(finite) if finite else 0.0) - 1.0
    out = [(hi if s == math.inf else lo if s == -math.inf else s, t) for s, t in pairs]
    return [s for s, _ in out], [t for _, t in out]


def bootstrap_ci(a, b, fn, reps: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    n = len(a)
    vals = []
    for _ in range(reps):
        idx = [rng.randrange(n) for _ in range(n)]
        v = fn([a[i] for i in idx], [b[i] for i in idx])
        if v == v:
            vals.append(v)
    if len(vals) < 20:
        return float("nan"), float("nan")
    vals.sort()
    return vals[int(0.025 * len(vals))], vals[min(len(vals) - 1, int(0.975 * len(vals)))]


# ------------------------------------------------------------------------------------------------------ cache
class Cache:
    def __init__(self, path: Path):
        self.path = path
        self.items: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    try:
                        rec = json.loads(line)
                        self.items[rec["key"]] = rec
                    except (json.JSONDecodeError, KeyError):
                        continue  # a line cut short by a kill: recomputed
        self.hits = 0

    def get(self, key: str) -> dict | None:
        rec = self.items.get(key)
        if rec is not None:
            self.hits += 1
        return rec

    def put(self, key: str, rec: dict) -> dict:
        rec = {"key": key, **rec}
        self.items[key] = rec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
        return rec


def setting_key(spec_hash: str, setting: dict) -> str:
    text = json.dumps(setting, sort_keys=True, separators=(",", ":"))
    return f"{spec_hash}|{hashlib.sha256(text.encode()).hexdigest()[:12]}"


# ------------------------------------------------------------------------------------------------------- work
def reduced(spec: ArchSpec, width_scale: float) -> ArchSpec:
    if width_scale == 1.0:
        return spec
    data = spec.canonical()
    data["width_multiplier"] = data["width_multiplier"] * width_scale
    return ArchSpec.from_data(data)


def sample_archs(cache: Cache, n: int, first_seed: int, width_scale: float,
                 space_name: str = "vision") -> list[tuple[int, ArchSpec, ArchSpec]]:
    space = load_space(space_name)
    out, seen = [], set()
    seed = first_seed
    while len(out) < n:
        spec = space.sample(seed)
        key = setting_key(spec.hash(), {"kind": "sample_check", "space": space_name,
                                        "file_sha": _space_sha(space_name)})
        rec = cache.get(key)
        if rec is None:
            try:
                problems = violations(space, spec)
            except Exception as e:  # noqa: BLE001
                problems = [f"{type(e).__name__}: {e}"]
            rec = cache.put(key, {"kind": "sample_check", "seed": seed, "spec_hash": spec.hash(),
                                  "violations": problems})
        small = reduced(spec, width_scale)
        if not rec["violations"] and small.hash() not in seen:
            seen.add(small.hash())
            out.append((seed, spec, small))
        seed += 1
        if seed > first_seed + 50 * n + 100:
            raise SystemExit("could not sample enough architectures within the constraints")
    return out


_SPACE_SHA: dict[str, str] = {}


def _space_sha(name: str = "vision") -> str:
    if name not in _SPACE_SHA:
        from nas.grammar import shipped_spaces_dir

        _SPACE_SHA[name] = hashlib.sha256((shipped_spaces_dir() / f"{name}.yaml").read_bytes()).hexdigest()[:12]
    return _SPACE_SHA[name]


def zero_cost_scores(spec: ArchSpec, data, input_shape, opt) -> dict:
    torch.manual_seed(opt.seed)
    t0 = time.perf_counter()
    try:
        model = build(spec, input_shape, data.num_classes)
        n_params = count_params(model)
        mflops = count_flops(model, torch.randn(2, *input_shape)) / 2 / 1e6
    except Exception as e:  # noqa: BLE001
        return {"status": "error", "reason": f"{type(e).__name__}: {e}"[:300], "scores": {}, "seconds": {}}
    batch = proxy_batch(data, EvalConfig(seed=opt.seed, zero_cost_batch_size=opt.proxy_batch), input_shape)
    scores, secs = {}, {}
    for name in PROXIES:
        t = time.perf_counter()
        scores[name] = score_all(model, batch, seed=opt.seed, names=[name])[name]
        secs[name] = time.perf_counter() - t
    return {"status": "ok", "reason": None, "scores": scores, "seconds": secs, "params": n_params,
            "mflops": mflops, "wall_s": time.perf_counter() - t0}


def train_record(spec: ArchSpec, data, test_data, budget: Budget, opt, *, reference: bool) -> dict:
    torch.manual_seed(opt.seed)
    try:
        model = build(spec, budget.input_shape(data.input_shape), data.num_classes)
    except Exception as e:  # noqa: BLE001
        return {"status": "error", "reason": f"{type(e).__name__}: {e}"[:300]}
    r = train(model, data, budget, device=opt.device, seed=opt.seed, threads=opt.threads)
    rec = {"status": r.status, "reason": r.reason, "wall_s": r.wall_s, "samples_per_s": r.samples_per_s,
           "steps": r.steps, "val_accuracy": r.final.val_accuracy if r.final else None,
           "val_loss": r.final.val_loss if r.final else None}
    if reference and r.status == "ok":
        t = time.perf_counter()
        loss, acc = evaluate_accuracy(model, test_data, "test", 512, resolution=budget.resolution)
        rec.update(test_accuracy=acc, test_loss=loss, test_eval_s=time.perf_counter() - t)
    return rec


# ------------------------------------------------------------------------------------------------------- main
def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="the GPU setting (see the module doc)")
    p.add_argument("--space", help="a shipped image space (default vision); another one writes "
                                    "proxy_fidelity_<space>.md / .csv")
    p.add_argument("--n", type=int, help=f"architectures (default {DEFAULTS['n']}; --full {FULL['n']})")
    p.add_argument("--dataset")
    p.add_argument("--train-subset", type=int, help="0 = the whole training set")
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--resolution", type=float, help="Budget.resolution (0.5 = 14x14 for 28x28 images)")
    p.add_argument("--width-scale", type=float, help="factor on every sampled width multiplier")
    p.add_argument("--budgets", help="proxy training budgets in epochs, comma-separated")
    p.add_argument("--reference-epochs", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--test-images", type=int, help="test images scoring the reference training")
    p.add_argument("--proxy-batch", type=int, help="images in the zero-cost proxies' batch")
    p.add_argument("--device")
    p.add_argument("--threads", type=int, default=None, help="training threads (default: the trainer's own)")
    p.add_argument("--seed", type=int, default=0, help="data split / initialisation / proxy seed")
    p.add_argument("--sample-seed", type=int, default=0, help="first sample seed of the space")
    p.add_argument("--max-minutes", type=float, default=None, help="start no new architecture after this long")
    p.add_argument("--cache", default=str(CACHE))
    args = p.parse_args()
    base = FULL if args.full else DEFAULTS
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.train_subset == 0:
        args.train_subset = None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device cuda requested (--full defaults to it) but no CUDA GPU; pass --device cpu")
    args.budget_list = [float(b) for b in args.budgets.split(",") if b.strip()]
    # the results page and CSVs: the vision page stays where it is, another space gets its own, and so does --full
    args.name = (NAME if args.space == "vision" else f"{NAME}_{args.space}") + ("_full" if args.full else "")
    return args


def main() -> None:
    opt = parse_args()
    t_start = time.perf_counter()
    info = machine_info()
    print_header(info)
    report = Report(opt.name, "Proxy fidelity: zero-cost proxies and short trainings vs. a long reference training",
                    info=info)
    cache = Cache(Path(opt.cache))
    data = load_dataset(opt.dataset, train_subset=opt.train_subset, val_fraction=opt.val_fraction, seed=opt.seed,
                        device=opt.device)
    k = min(opt.test_images, data.size("test"))
    test_data = dataclasses.replace(data, x_test=data.x_test[:k], y_test=data.y_test[:k])
    base_budget = Budget(resolution=opt.resolution, batch_size=opt.batch_size)
    input_shape = base_budget.input_shape(data.input_shape)
    common = {"dataset": opt.dataset, "train_subset": opt.train_subset, "val_fraction": opt.val_fraction,
              "seed": opt.seed, "resolution": opt.resolution, "width_scale": opt.width_scale,
              "device_type": torch.device(opt.device).type, "engine": source_hash(ENGINE_SOURCES)}
    archs = sample_archs(cache, opt.n, opt.sample_seed, opt.width_scale, opt.space)
    print(f"{len(archs)} architectures sampled (seeds {archs[0][0]}..{archs[-1][0]}); data {data}; "
          f"model input {input_shape}; cache {opt.cache} ({len(cache.items)} records)", flush=True)

    budgets = [(f"{e:g} ep", dataclasses.replace(base_budget, epochs=e), False) for e in opt.budget_list]
    budgets.append(("reference", dataclasses.replace(base_budget, epochs=opt.reference_epochs), True))
    rows = []
    stopped_early = False
    for i, (seed, spec, small) in enumerate(archs):
        if opt.max_minutes is not None and time.perf_counter() - t_start > 60 * opt.max_minutes:
            stopped_early = True
            print(f"--max-minutes {opt.max_minutes} reached: {i} of {len(archs)} architectures done", flush=True)
            break
        h = small.hash()
        zkey = setting_key(h, {**common, "kind": "zero_cost", "proxy_batch": opt.proxy_batch,
                               "proxies": sorted(PROXIES)})
        z = cache.get(zkey) or cache.put(zkey, {"kind": "zero_cost", "spec_hash": h, "sample_seed": seed,
                                               **zero_cost_scores(small, data, input_shape, opt)})
        row = {"seed": seed, "hash": h, "summary": small.summary(), "zc": z, "train": {}}
        for label, budget, is_ref in budgets:
            setting = {**common, "kind": "train", "budget": dataclasses.asdict(budget)}
            if is_ref:
                setting["test_images"] = k
            tkey = setting_key(h, setting)
            rec = cache.get(tkey)
            if rec is None:
                rec = cache.put(tkey, {"kind": "train", "spec_hash": h, "label": label,
                                       **train_record(small, data, test_data, budget, opt, reference=is_ref)})
            row["train"][label] = rec
        rows.append(row)
        ref = row["train"]["reference"]
        print(f"[{i + 1}/{len(archs)}] {h} seed {seed}: zc {z.get('wall_s', 0):.1f}s; "
              + ", ".join(f"{lb} acc {row['train'][lb].get('val_accuracy') or float('nan'):.3f} "
                          f"({row['train'][lb].get('wall_s') or 0:.1f}s)" for lb, _, _ in budgets)
              + f"; ref test acc {ref.get('test_accuracy') or float('nan'):.3f}"
              + f"  [{time.perf_counter() - t_start:.0f}s]",
              flush=True)

    wall = time.perf_counter() - t_start
    write_report(report, opt, rows, budgets, archs, data, input_shape, k, cache, wall, stopped_early)


def write_report(report, opt, rows, budgets, archs, data, input_shape, k, cache, wall, stopped_early) -> None:
    reduced_run = (not opt.full) and (opt.n != DEFAULTS["n"] or opt.reference_epochs != DEFAULTS["reference_epochs"]
                                      or opt.budgets != DEFAULTS["budgets"] or opt.resolution != DEFAULTS["resolution"]
                                      or opt.width_scale != DEFAULTS["width_scale"]
                                      or opt.train_subset != DEFAULTS["train_subset"] or stopped_early)
    kind = "FULL (GPU) run" if opt.full else ("REDUCED run" if reduced_run else "default CPU run")
    compute = sum((r["zc"].get("wall_s") or 0) + sum((r["train"][lb].get("wall_s") or 0) + (r["train"][lb].get(
        "test_eval_s") or 0) for lb, _, _ in budgets) for r in rows)
    report.text(
        f"**{kind}.** {len(rows)} architectures (of {len(archs)} requested) from `{opt.space}.yaml` (sample seeds from "
        f"{opt.sample_seed}; constraint-violating samples skipped), width multiplier x{opt.width_scale}, "
        f"dataset `{opt.dataset}` (train_subset={opt.train_subset}: {data.size('train')} train / {data.size('val')} "
        f"val), model input {tuple(input_shape)} (resolution {opt.resolution}), batch {opt.batch_size}, device "
        f"`{opt.device}`. Proxy budgets {opt.budgets} epoch(s) (score: final val accuracy, and -val loss); reference "
        f"{opt.reference_epochs:g} epochs, scored on {k} test images. Zero-cost proxies on {opt.proxy_batch} seeded "
        f"training images. Correlations: {STATS_SOURCE}; 95% CI = bootstrap over architectures (1000 resamples). "
        f"Engine sources hash {source_hash(ENGINE_SOURCES)} (builder, blocks, catalog, budget, data, spec, evaluate/). "
        f"Compute time of these results {compute / 60:.1f} min (sum of their recorded seconds); wall time of this "
        f"invocation {wall / 60:.1f} min ({cache.hits} cached results reused)."
    )
    if reduced_run:
        report.text(
            f"This is a reduced run, so its correlations are indicative only: with N={len(rows)} a Spearman rho has a "
            f"95% interval roughly +-{1.96 / math.sqrt(max(len(rows) - 3, 1)):.2f} wide. The default CPU run "
            f"(`python experiments/proxy_fidelity.py`) uses {DEFAULTS['n']} architectures and a "
            f"{DEFAULTS['reference_epochs']:g}-epoch reference (under an hour on 2 cores). The GPU run "
            f"(`--full`) uses {FULL['n']} architectures on CIFAR-10 at full width and resolution.")

    truth_all = [r["train"]["reference"].get("test_accuracy") for r in rows]
    truth_all = [t if t is not None else float("nan") for t in truth_all]
    n_ok = sum(t == t for t in truth_all)

    def corr_row(label, scores, cost, published=None):
        s, t = finite_pairs(scores, truth_all)
        if len(s) < 3:
            return [label, len(s), "", "", "", published if published is not None else "", cost]
        rho, tau = spearman(s, t), kendall(s, t)
        lo, hi = bootstrap_ci(s, t, spearman)
        return [label, len(s), f"{tau:.3f}", f"{rho:.3f}", f"[{lo:.2f}, {hi:.2f}]",
                "" if published is None else f"{published:.2f}", cost]

    corr = []
    for name in PROXIES:
        scores = [r["zc"]["scores"].get(name, float("nan")) if r["zc"]["status"] == "ok" else float("nan")
                  for r in rows]
        secs = median([r["zc"]["seconds"].get(name, float("nan")) for r in rows if r["zc"]["status"] == "ok"])
        corr.append(corr_row(f"zero-cost: {name}", scores, f"{secs:.3f}", PUBLISHED_NB201_C10_RHO.get(name)))
    corr.append(["zero-cost: jacob_cov", "", "", "", "", f"{PUBLISHED_NB201_C10_RHO['jacob_cov']:.2f}",
                 "not in nas (naswot is its successor)"])
    for label, _, is_ref in budgets:
        recs = [r["train"][label] for r in rows]
        cost = f"{median([x.get('wall_s') or float('nan') for x in recs]):.2f}"
        acc = [x["val_accuracy"] if x.get("status") == "ok" and x.get("val_accuracy") is not None else float("nan")
               for x in recs]
        nloss = [-x["val_loss"] if x.get("status") == "ok" and x.get("val_loss") is not None else float("nan")
                 for x in recs]
        name = "reference training, its own val" if is_ref else f"training {label}"
        corr.append(corr_row(f"{name} (val acc, {data.size('val')} imgs)", acc, cost))
        corr.append(corr_row(f"{name} (-val loss)", nloss, cost))

    report.text("## Rank correlation with the reference accuracy")
    report.text(f"Ground truth: test accuracy after the {opt.reference_epochs:g}-epoch reference training "
                f"({n_ok} of {len(rows)} architectures trained OK). `cost s` = median seconds per architecture "
                "(one proxy evaluation, or one training incl. its validation passes). The `reference training, its "
                "own val` rows show how well the small validation split reproduces the test-set ranking of the SAME "
                "trained models: a noise ceiling for every val-accuracy row.", echo=False)
    report.table(["scorer", "n", "Kendall tau", "Spearman rho", "rho 95% CI", "published rho (NB201 C10)", "cost s"],
                 corr, csv=f"{opt.name}.csv")

    arch_rows = []
    for r in rows:
        z = r["zc"]
        line = [r["seed"], r["hash"], r["summary"][:90], f"{z.get('params', 0):,}", f"{z.get('mflops', 0):.2f}"]
        line += [f"{z['scores'].get(nm, float('nan')):.4g}" if z["status"] == "ok" else z["status"] for nm in PROXIES]
        for label, _, is_ref in budgets:
            x = r["train"][label]
            if x.get("status") != "ok":
                line.append(f"{x.get('status')}")
                continue
            line.append(f"{x['val_accuracy']:.3f}" if not is_ref else f"{x['test_accuracy']:.3f}")
        line.append(f"{sum((r['train'][lb].get('wall_s') or 0) for lb, _, _ in budgets) + (z.get('wall_s') or 0):.1f}")
        arch_rows.append(line)
    report.text("## Per architecture")
    report.text("Budget columns: final val accuracy; `reference`: test accuracy. A reference accuracy near 0.10 is a "
                "network that did not learn: e.g. an FPN head over an instance-norm last stage "
                "(head=fpn with norm=instance: "
                "the fused map is instance-normalised and then globally average-pooled, so the logits do not depend on "
                "the input).",
                echo=False)
    report.table(["seed", "hash", "summary", "params", "MFLOPs", *PROXIES, *[lb for lb, _, _ in budgets], "total s"],
                 arch_rows, csv=f"{opt.name}_archs.csv")
    failures = [(r["hash"], lb, r["train"][lb].get("status"), r["train"][lb].get("reason"))
                for r in rows for lb, _, _ in budgets if r["train"][lb].get("status") != "ok"]
    failures += [(r["hash"], "zero-cost", r["zc"]["status"], r["zc"].get("reason")) for r in rows
                 if r["zc"]["status"] != "ok"]
    failures += [(r["hash"], f"proxy {nm}", "nan", "") for r in rows if r["zc"]["status"] == "ok"
                 for nm, v in r["zc"]["scores"].items() if v != v]
    if failures:
        report.table(["hash", "what", "status", "reason"], failures, title="Failures")
    report.write()


if __name__ == "__main__":
    main()
