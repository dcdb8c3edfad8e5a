"""evaluate(spec, config): one call builds, measures, scores and proxy-trains; failures become a status."""
from __future__ import annotations

import json

import pytest
import torch

from nas.budget import Budget
from nas.evaluate.evaluate import EvalConfig, TrialResult, evaluate, load_data
from nas.spec import ArchSpec


def spec_with(mixer: str, options: dict | None = None, *, skip: str = "residual", norm: str = "batch",
              input_kind: str = "image") -> ArchSpec:
    return ArchSpec.from_data({
        "input": input_kind,
        "stem": {"type": "conv", "width": 32, "kernel_size": 3},
        "stages": [{"depth": 1, "width": 32, "mixer": {"type": mixer, "options": options or {}}, "skip": skip,
                    "norm": norm}],
    })


def fast_config(**budget) -> EvalConfig:
    return EvalConfig(dataset="digits", budget=Budget(**{"epochs": 3, "batch_size": 64, "lr": 3e-3, **budget}),
                      latency_repeats=5, latency_warmup=1, latency_min_time_s=0.0, throughput_batch_size=8,
                      zero_cost_batch_size=16, train_threads=1)


@pytest.mark.parametrize("mixer,options,norm", [
    ("conv", {"kernel_size": 3}, "batch"),
    ("attention", {"heads": 4, "pos_encoding": "learned"}, "batch"),  # LN attention needs ~8 epochs here
    ("ssm", {"state_size": 8}, "layer"),
], ids=["conv", "attention", "ssm"])
def test_beats_chance_clearly_on_digits(mixer, options, norm):
    result = evaluate(spec_with(mixer, options, norm=norm), fast_config())
    assert result.status == "ok", result.reason
    assert result.objectives["accuracy"] > 0.5  # chance is 0.1
    assert len(result.curve) == 3
    assert result.curve[-1]["train_loss"] < result.curve[0]["train_loss"]


def test_result_is_plain_data_with_every_measure():
    result = evaluate(spec_with("mbconv"), fast_config(epochs=0.5))
    data = json.loads(json.dumps(result.to_dict()))
    again = TrialResult.from_dict(data)
    assert again == result
    assert set(result.objectives) >= {"accuracy", "latency_ms", "params", "flops", "activation_mb"}
    assert result.cost["latency"]["threads"] == 1 and result.cost["latency"]["repeats"] == 5
    assert set(result.zero_cost) == {"synflow", "naswot", "grad_norm", "snip"}
    assert result.input_shape == (1, 8, 8) and result.num_classes == 10
    assert result.training["threads"] == 1 and result.training["samples_per_s"] > 0


def test_resolution_budget_builds_the_model_for_the_resized_input():
    result = evaluate(spec_with("conv"), fast_config(epochs=0.25, resolution=2.0))
    assert result.status == "ok" and result.input_shape == (1, 16, 16)
    small = evaluate(spec_with("conv"), fast_config(epochs=0.25))
    assert result.objectives["flops"] > 3 * small.objectives["flops"]


def test_a_candidate_that_cannot_be_built_fails_without_raising():
    bad = ArchSpec.from_data({"input": "image", "stem": {"type": "patchify", "width": 16, "patch_size": 16},
                              "stages": [{"depth": 1, "width": 16, "mixer": {"type": "conv"}}]})
    result = evaluate(bad, fast_config())
    assert result.status == "error" and "patch size 16 is larger than the input" in result.reason


def test_pruning_callback_stops_training():
    result = evaluate(spec_with("conv"), fast_config(), callback=lambda stats: True)
    assert result.status == "pruned" and len(result.curve) == 1


def test_weights_are_saved_as_safetensors(tmp_path):
    from safetensors.torch import load_file

    from nas.builder import build

    path = tmp_path / "w.safetensors"
    spec = spec_with("dwsep")
    result = evaluate(spec, fast_config(epochs=0.25), weights_path=path)
    state = load_file(str(path))
    model = build(spec, result.input_shape, result.num_classes)
    model.load_state_dict(state)


def test_sequence_spec_on_a_sequence_view():
    config = EvalConfig(dataset="digits:rows", budget=Budget(epochs=1, batch_size=64), latency_repeats=3,
                        latency_warmup=1, throughput_batch_size=4, zero_cost=())
    result = evaluate(spec_with("gru", input_kind="sequence", norm="layer"), config)
    assert result.status == "ok" and result.input_shape == (8, 8)


def test_data_is_cached_per_process():
    config = fast_config()
    assert load_data(config, "cpu") is load_data(config, "cpu")


def test_precheck_runs_first_on_the_model_that_is_then_evaluated(monkeypatch):
    import nas.builder
    from nas.builder import example_input
    from nas.evaluate.measure import count_flops, count_params

    built = []
    real_build = nas.builder.build
    monkeypatch.setattr(nas.builder, "build", lambda *a, **k: built.append(real_build(*a, **k)) or built[-1])
    seen = {}

    def precheck(spec, get_model):
        model = get_model()
        assert get_model() is model  # built once
        seen["model"] = model
        return [], {}, {"params": count_params(model), "flops": count_flops(model, example_input(model, 1))}

    result = evaluate(spec_with("conv"), fast_config(epochs=0.25), precheck=precheck)
    assert result.status == "ok" and len(built) == 1 and built[0] is seen["model"]
    assert result.precheck == {"params": result.cost["params"], "flops": result.cost["flops"]}
    assert result.objectives["flops"] == count_flops(built[0], example_input(built[0], 1))


def test_an_infeasible_precheck_stops_before_measuring_or_training(monkeypatch):
    import nas.evaluate.evaluate as ev

    monkeypatch.setattr(ev, "train", lambda *a, **k: pytest.fail("trained an infeasible candidate"))
    result = evaluate(spec_with("conv"), fast_config(),
                      precheck=lambda spec, get_model: (["params 9 > max_params 1"], {"max_params": 8.0},
                                                        {"params": 9}))
    assert result.status == "infeasible" and result.reason == "params 9 > max_params 1"
    assert result.constraint_excess == {"max_params": 8.0} and result.precheck == {"params": 9}
    assert result.curve == [] and result.cost == {} and result.objectives == {}
    assert TrialResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_repeat_trains_the_same_architecture_from_another_seed_on_the_same_examples():
    """EvalConfig.repeat (confirm_best): another initialisation and training order, the same validation split and
    zero-cost batch; the same repeat again gives the same result."""
    import dataclasses

    config = fast_config(epochs=0.5)
    first = evaluate(spec_with("conv"), config)
    again = evaluate(spec_with("conv"), dataclasses.replace(config, repeat=1))
    twice = evaluate(spec_with("conv"), dataclasses.replace(config, repeat=1))
    assert first.ok and again.ok
    assert [p["train_loss"] for p in again.curve] == [p["train_loss"] for p in twice.curve]
    assert [p["train_loss"] for p in again.curve] != [p["train_loss"] for p in first.curve]
    assert again.training["val_size"] == first.training["val_size"]


@pytest.mark.parametrize("field", ["depth", "width"])
def test_a_reduced_budget_trains_a_smaller_network_and_counts_the_whole_one(monkeypatch, tmp_path, field):
    """budget.depth 0.25 of a 4-block stage trains the 1-block network, budget.width 0.25 the 8-channel one (from the
    same seed), while params, FLOPs and latency are the whole network's; the weights of that proxy are not saved as
    the spec's."""
    import nas.evaluate.evaluate as ev
    from nas.evaluate.evaluate import trained_spec

    spec = ArchSpec.from_data({
        "input": "image", "stem": {"type": "conv", "width": 32, "kernel_size": 3},
        "stages": [{"depth": 4, "width": 32, "mixer": {"type": "conv", "options": {"kernel_size": 3}}}]})
    seen = []
    real_train = ev.train
    monkeypatch.setattr(ev, "train", lambda model, *a, **k: seen.append(model) or real_train(model, *a, **k))
    whole = evaluate(spec, fast_config(epochs=1))
    reduced = evaluate(spec, fast_config(epochs=1, **{field: 0.25}), weights_path=tmp_path / "w.safetensors")
    assert whole.status == reduced.status == "ok"
    assert reduced.objectives["params"] == whole.objectives["params"]
    assert reduced.objectives["flops"] == whole.objectives["flops"]
    trained_params = [sum(p.numel() for p in m.parameters()) for m in seen]
    assert trained_params[0] == whole.objectives["params"] > trained_params[1]
    small = trained_spec(spec, Budget(**{field: 0.25}))
    assert getattr(small, f"{field}_multiplier") == 0.25
    convs = [m for m in seen[1].modules() if isinstance(m, torch.nn.Conv2d)]
    if field == "width":
        assert {c.out_channels for c in convs} == {8}
    else:
        assert {c.out_channels for c in convs} == {32} and len(convs) < len(
            [m for m in seen[0].modules() if isinstance(m, torch.nn.Conv2d)])
    assert trained_spec(spec, Budget()) is spec
    assert not (tmp_path / "w.safetensors").exists()


@pytest.mark.parametrize("field", ["depth", "width"])
def test_a_depth_or_width_outside_0_1_is_a_budget_error(field):
    from nas.errors import BudgetError

    for bad in (0.0, 1.5):
        with pytest.raises(BudgetError, match=field):
            Budget(**{field: bad})
