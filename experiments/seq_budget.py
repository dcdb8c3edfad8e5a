"""Is a sequence mixer's low proxy score the mixer or the budget? Selective copying at length 256, trained longer.

At the search's proxy budget (2 epochs on 3000 examples) only recurrent nets learn selective copying at length 256
(search_quality.md, study ``copy_256``): the Mamba baseline and every searched net with an ssm stage stay near
chance (1/16), although selective copying is the task Mamba's input-dependent Δ, B, C were designed for. This
script trains the sequence space's two baselines, the study's best net and its best net with an ssm stage under
the same recipe (``evaluate`` with the study's settings) at the proxy budget and at ``--epochs`` more, and reports
validation accuracy and training time side by side: if the ssm nets catch up with more epochs, the proxy budget,
not the mixer, put them at the bottom of the front.

    python experiments/seq_budget.py                      # 2 and 8 epochs (about 20 min on one CPU core)
    python experiments/seq_budget.py --epochs 2 4 --no-write

Reads the study's run (runs/search_quality/runs/copy_256, from ``search_quality.py search copy_256``) for the two
searched nets. Writes experiments/results/seq_budget.md and .csv.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, Report, machine_info  # noqa: E402

NAME = "seq_budget"
STUDY_RUN = REPO_ROOT / "runs" / "search_quality" / "runs" / "copy_256"


def searched_specs(run_dir: Path) -> dict[str, object]:
    """The study's most accurate trial and its most accurate trial with an ssm stage, as specs."""
    import optuna

    from nas.control.rundir import RunDir
    from nas.report import report_data
    from nas.spec import ArchSpec

    trials = report_data(run_dir, baselines=False).trials
    done = trials[trials["status"] == "ok"].sort_values(["accuracy", "latency_ms"], ascending=[False, True])
    best = done.iloc[0]
    ssm = done[done["summary"].str.contains("ssm(", regex=False)].iloc[0]
    run = RunDir.open(run_dir)
    study = optuna.load_study(study_name=run.study_name, storage=run.storage())
    specs = {}
    for label, row in (("best searched", best), ("best searched with ssm", ssm)):
        number = int(row["number"])
        specs[f"{label} (#{number})"] = ArchSpec.from_json(study.trials[number].user_attrs["spec"])
    return specs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=float, nargs="+", default=[2.0, 8.0])
    p.add_argument("--dataset", default="selective_copy:256")
    p.add_argument("--train-subset", type=int, default=3000)
    p.add_argument("--run", default=str(STUDY_RUN), help="the study's run directory")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    import torch

    from nas.evaluate.evaluate import EvalConfig, evaluate
    from nas.grammar import load_space, shipped_spaces_dir

    torch.set_num_threads(args.threads)
    space = load_space("sequence")
    space.load_baselines(shipped_spaces_dir() / "baselines")
    models = {f"baseline {name}": spec for name, spec in space.baselines.items()}
    models.update(searched_specs(Path(args.run)))
    report = Report(NAME, "Sequence mixers at the proxy budget and trained longer (selective copying, length 256)",
                    info=machine_info())
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    rows = []
    for label, spec in models.items():
        for epochs in args.epochs:
            config = EvalConfig.from_options(dataset=args.dataset, train_subset=args.train_subset, zero_cost=False,
                                             budget={"epochs": epochs, "batch_size": 64, "lr": 0.003},
                                             device="cpu", train_threads=args.threads, latency_repeats=5,
                                             latency_min_time_s=0.0)
            start = time.time()
            result = evaluate(spec, config)
            seconds = time.time() - start
            accuracy = result.objectives.get("accuracy", float("nan"))
            rows.append([label, spec.summary(), epochs, result.status, f"{accuracy:.3f}", f"{seconds:.0f}"])
            print(*rows[-1], sep="\t", flush=True)
    report.table(["model", "architecture", "epochs", "status", "validation accuracy", "seconds (evaluate)"], rows,
                 csv=None if args.no_write else f"{NAME}.csv")
    report.text(f"Data: {args.dataset}, a class-balanced subset of {args.train_subset} training sequences, batch 64, "
                f"lr 0.003 (the search_quality CPU profile), seed 0, {args.threads} thread(s). Chance is 1/16.")
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
