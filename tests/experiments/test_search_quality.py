"""experiments/search_quality.py's verdict helpers (the script's steps themselves run for hours; these are the
parts whose logic decides what the results page says)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sq(experiment_script):
    return experiment_script("search_quality")


def model(acc, rounds):
    rounds = list(rounds)
    return {"test_accuracy": acc, "latency_ms": sorted(rounds)[len(rounds) // 2], "latency_rounds_ms": rounds}


def test_near_miss_slower_in_every_round_is_a_real_miss(sq):
    base = model(0.41, [1.50, 1.54, 1.50, 1.45, 1.47])
    found = {"knee": model(0.49, [1.63, 1.59, 1.55, 1.55, 1.58]),  # more accurate, slower: the nearest
             "slow": model(0.53, [2.56, 2.52, 2.44, 2.50, 2.47]),  # more accurate, slower still
             "fast": model(0.30, [1.0, 1.0, 1.0, 1.0, 1.0])}       # faster but less accurate: not a candidate
    assert not any(sq._dominates(f["test_accuracy"], f["latency_ms"], base["test_accuracy"], base["latency_ms"])
                   for f in found.values())
    text = sq._near_miss(found, base)
    assert text.startswith("knee: +0.080 acc, +0.08 ms")
    assert "slower in 5 of 5 paired rounds (+0.05 to +0.13 ms)" in text and "noise" not in text


def test_near_miss_slower_in_some_rounds_is_within_noise(sq):
    base = model(0.95, [0.93, 0.90, 0.97, 0.92, 0.95])
    found = {"f": model(1.0, [0.96, 0.88, 0.99, 0.91, 0.97])}
    assert "slower in 3 of 5 paired rounds" in sq._near_miss(found, base)
    assert sq._near_miss(found, base).endswith("within the measurement's noise")


def test_near_miss_none_when_no_found_net_is_as_accurate(sq):
    assert sq._near_miss({"f": model(0.70, [1.0] * 5)}, model(0.86, [4.4] * 5)) is None


def test_near_miss_without_paired_rounds_gives_the_gaps_only(sq):
    base = {"test_accuracy": 0.5, "latency_ms": 1.0}
    assert sq._near_miss({"f": {"test_accuracy": 0.6, "latency_ms": 1.2}}, base) == "f: +0.100 acc, +0.20 ms"


def test_paired_accuracy_names_the_deciding_trial_and_its_test(sq):
    import numpy as np
    import pandas as pd

    from nas.significance import mcnemar_p, pack_correct

    n = 300
    base = np.ones(n, bool)
    base[:30] = False  # 270 right
    tie = base.copy()
    tie[40] = False  # 269: one behind
    ahead = base.copy()
    ahead[:9] = True  # 279: 9 ahead, 9 vs 0 discordant
    baseline = {"objectives": {"accuracy": base.mean(), "latency_ms": 2.0}, "val_size": n,
                "val_correct": pack_correct(base)}

    def trials(*rows):
        return pd.DataFrame([{"number": k, "accuracy": c.mean(), "latency_ms": lat, "val_correct": pack_correct(c)}
                             for k, (c, lat) in enumerate(rows)])

    assert sq._paired_accuracy(trials((ahead, 1.0), (tie, 0.5)), baseline) == \
        f"#0: +9 of 300 examples, 9 vs 0 discordant, p={mcnemar_p(9, 0):.2g}"
    assert sq._paired_accuracy(trials((tie, 0.5), (ahead, 3.0)), baseline) == \
        "#0: -1 of 300 examples, 0 vs 1 discordant, p=1: within noise"
    assert sq._paired_accuracy(trials((ahead, 3.0)), baseline) == "no found net as fast"
    old = trials((ahead, 1.0)).drop(columns=["val_correct"])  # a study stored before session 10
    assert sq._paired_accuracy(old, baseline) == "-"
    assert sq._paired_accuracy(trials((ahead, 1.0)), {**baseline, "val_correct": None}) == "-"


def test_a_studys_settings_come_from_its_results_folder_first(sq, tmp_path, monkeypatch):
    """summarize's per-study settings must not need runs/ (gitignored): the config copy beside the results wins."""
    monkeypatch.setattr(sq, "OUT", tmp_path / "out")
    monkeypatch.setattr(sq, "WORK", tmp_path / "work")
    assert sq.study_config("copy_64") is None
    (tmp_path / "work" / "runs" / "copy_64").mkdir(parents=True)
    (tmp_path / "work" / "runs" / "copy_64" / "config.yaml").write_text("trials: 24\n")
    assert sq.study_config("copy_64") == {"trials": 24}  # a study run before the copy existed
    (tmp_path / "out" / "copy_64").mkdir(parents=True)
    (tmp_path / "out" / "copy_64" / "config.yaml").write_text("trials: 32\n")
    assert sq.study_config("copy_64") == {"trials": 32}


def test_every_committed_study_has_the_config_summarize_reads(sq):
    """A fresh checkout has no runs/: each study with committed results carries its run config beside them (the
    older ones reconstructed in session 12), and it says what the study's definition and the CPU profile say."""
    studies = [s for s in sq.STUDIES if (sq.OUT / s / f"trials-{sq.own_sampler(s)}.csv").exists()]
    assert len(studies) >= 20
    profile = sq.PROFILES["cpu"]
    for study in studies:
        cfg = sq.study_config(study)
        assert cfg is not None, study
        s = sq.STUDIES[study]
        assert (cfg["space"], cfg["dataset"], cfg["sampler"]) == (s["space"], s["dataset"], sq.own_sampler(study))
        assert cfg["budget"]["epochs"] == profile["epochs"] * s.get("epochs_factor", 1), study
        assert cfg["trials"] == s.get("trials", profile["trials"]), study
        subset = profile["seq_train_subset" if s["space"] == "sequence" else "train_subset"]
        assert cfg["train_subset"] == int(subset * s.get("subset_factor", 1)), study
        assert cfg.get("seed", 0) == s.get("seed", 0), study
        assert cfg["constraints"]["max_flops"] == s.get("max_flops", profile["max_flops"]), study
        assert bool(cfg.get("warm_start")) == bool(s.get("warm_start")), study
