"""Which trial a run should pick: the proxy accuracy alone, or its mean rank with NASWOT (config ``rank_with``).

Reads the per-architecture tables that experiments/proxy_fidelity.py wrote for our own spaces (each architecture's
zero-cost scores, its proxy trainings' validation accuracy and its 10-epoch reference test accuracy) and ranks the
architectures three ways against the reference: by a proxy training's accuracy alone, by NASWOT alone, and by the
mean of each architecture's ranks under the two (:func:`nas.control.pick.mean_rank`, what a run's pick uses;
architectures whose NASWOT is not finite are left out, as the pick leaves them out). Kendall tau-b, with a paired
bootstrap over architectures (2000 resamples): the share of resamples in which the mean rank's tau is above the
accuracy's alone.

No training: the tables are committed results. NAS-Bench-201's numbers for the same rule come from
experiments/nb201_proxies.py (experiments/results/nb201_fidelity.md, the column "tau, mean rank with naswot").

    python experiments/pick_rules.py            # seconds; writes experiments/results/pick_rules.md and .csv
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, Report, machine_info  # noqa: E402

RESULTS = REPO_ROOT / "experiments" / "results"
# (space, per-architecture table of proxy_fidelity.py, the page it belongs to)
TABLES = [("vision", "proxy_fidelity_archs.csv", "proxy_fidelity.md"),
          ("mobile", "proxy_fidelity_mobile_archs.csv", "proxy_fidelity_mobile.md")]
REPS = 2000


def read_table(path: Path) -> tuple[list[str], list[dict[str, float]]]:
    """(the proxy-training budget columns, one row per architecture: budgets, naswot, reference as floats)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    budgets = [c for c in rows[0] if c.endswith(" ep")]

    def number(text: str) -> float:
        try:
            return float(text.replace(",", ""))
        except ValueError:  # "-inf" parses; a failed training's status does not
            return float("nan")

    return budgets, [{k: number(r[k]) for k in [*budgets, "naswot", "reference"]} for r in rows]


def taus(rows: list[dict[str, float]], budget: str) -> tuple[int, float, float, float] | None:
    """(rows used, then Kendall tau against the reference of the budget's accuracy, of naswot and of their mean
    rank), over the rows where all three are finite."""
    import math

    from scipy.stats import kendalltau

    from nas.control.pick import mean_rank

    keep = [r for r in rows if all(math.isfinite(r[k]) for k in (budget, "naswot", "reference"))]
    if len(keep) < 4:
        return None
    truth = [r["reference"] for r in keep]
    acc = [r[budget] for r in keep]
    naswot = [r["naswot"] for r in keep]
    return (len(keep), kendalltau(acc, truth)[0], kendalltau(naswot, truth)[0],
            kendalltau(mean_rank(acc, naswot), truth)[0])


def paired_share(rows: list[dict[str, float]], budget: str, reps: int = REPS, seed: int = 0) -> float:
    """Share of bootstrap resamples (architectures drawn with replacement) where the mean rank's tau beats the
    accuracy's alone."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wins = total = 0
    for _ in range(reps):
        sample = [rows[i] for i in rng.integers(0, len(rows), len(rows))]
        found = taus(sample, budget)
        if found is None or any(t != t for t in found):
            continue
        total += 1
        wins += found[3] > found[1]
    return wins / total if total else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=REPS, help=f"bootstrap resamples (default {REPS})")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    report = Report("pick_rules", "Which trial a run picks: proxy accuracy alone or its mean rank with NASWOT",
                    info=machine_info())
    report.text("Kendall tau-b against the 10-epoch reference test accuracy of experiments/proxy_fidelity.py's "
                "architectures; `n`: architectures with a finite NASWOT and a finished training. `mean rank beats "
                f"alone`: share of {args.reps} paired bootstrap resamples in which the mean rank's tau is higher.")
    rows_out = []
    for space, table, page in TABLES:
        budgets, rows = read_table(RESULTS / table)
        for budget in budgets:
            found = taus(rows, budget)
            if found is None:
                continue
            n, alone, naswot, ranked = found
            rows_out.append([space, page, budget, n, f"{alone:.3f}", f"{naswot:.3f}", f"{ranked:.3f}",
                             f"{paired_share(rows, budget, args.reps):.2f}"])
    report.table(["space", "source", "proxy training", "n", "tau: accuracy alone", "tau: naswot alone",
                  "tau: mean rank (rank_with: naswot)", "mean rank beats alone"], rows_out,
                 csv=None if args.no_write else "pick_rules.csv")
    if not args.no_write:
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
