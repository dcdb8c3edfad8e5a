"""GPU paths: bf16 autocast training (default layout, and channels-last when asked), CUDA-event latency, peak memory.
Skipped without a GPU."""
from __future__ import annotations

import pytest
import torch

from nas.budget import Budget
from nas.evaluate.evaluate import EvalConfig, evaluate
from tests.conftest import requires_gpu
from tests.evaluate.test_evaluate import spec_with

pytestmark = [pytest.mark.gpu, requires_gpu]


def test_trains_on_cuda_with_bf16_and_beats_chance():
    config = EvalConfig(dataset="digits", device="cuda", latency_device="cuda", budget=Budget(epochs=3, batch_size=64),
                        latency_repeats=10)
    result = evaluate(spec_with("conv"), config)
    assert result.status == "ok", result.reason
    assert result.training["device"].startswith("cuda")
    assert result.objectives["accuracy"] > 0.5
    assert result.cost["latency"]["device"].startswith("cuda") and result.cost["latency"]["median_ms"] > 0


def test_channels_last_when_asked_trains_on_cuda_and_beats_chance():
    from nas.builder import build
    from nas.data import load_dataset
    from nas.evaluate.train import train

    data = load_dataset("digits", device="cuda")
    torch.manual_seed(0)
    model = build(spec_with("conv"), data.input_shape, data.num_classes)
    result = train(model, data, Budget(epochs=3, batch_size=64), device="cuda", channels_last=True)
    assert result.status == "ok", result.reason
    assert next(p for p in model.parameters() if p.ndim == 4).is_contiguous(memory_format=torch.channels_last)
    assert result.final.val_accuracy > 0.5


def test_cuda_latency_uses_events_and_peak_memory_is_positive():
    from nas.builder import build, example_input
    from nas.evaluate.measure import measure_latency, peak_memory_bytes

    model = build(spec_with("mbconv"), (3, 32, 32), 10)
    latency = measure_latency(model, (3, 32, 32), device="cuda", repeats=10, warmup=3)
    assert latency.median_ms > 0 and latency.iqr_ms >= 0
    assert peak_memory_bytes(model.cuda(), example_input(model, 8).cuda()) > 0


def test_out_of_memory_fails_with_oom_and_releases_memory():
    before = torch.cuda.memory_allocated()
    huge = spec_with("conv")
    config = EvalConfig(dataset="digits", device="cuda", budget=Budget(epochs=1, batch_size=64, resolution=8.0),
                        zero_cost=(), latency_repeats=2)
    result = evaluate(huge, config)
    assert result.status in ("ok", "oom")
    assert torch.cuda.memory_allocated() - before < 64 * 2**20
