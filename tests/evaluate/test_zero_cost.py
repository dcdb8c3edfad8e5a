"""Zero-cost proxies on conv, attention, recurrent and selective-scan models."""
import copy
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from nas.evaluate import zero_cost
from nas.evaluate.zero_cost import PROXIES, score_all

NAMES = ["synflow", "naswot", "grad_norm", "snip", "params", "flops"]
B, L, D, C = 6, 5, 8, 3


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, C))

    def forward(self, x):
        return self.body(x)


class AttnNet(nn.Module):
    """Pure attention (no activation module): exercises NASWOT's fallback."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(D, 2, batch_first=True)
        self.norm = nn.LayerNorm(D)
        self.qkv = nn.Linear(D, 3 * D)
        self.head = nn.Linear(D, C)

    def forward(self, x):
        x = self.norm(x + self.attn(x, x, x, need_weights=False)[0])
        q, k, v = self.qkv(x).view(x.shape[0], x.shape[1], 3, 2, D // 2).permute(2, 0, 3, 1, 4)
        x = x + F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape)
        return self.head(x.mean(1))


class GRUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(D, 12, batch_first=True)
        self.head = nn.Linear(12, C)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


class SelectiveScan(nn.Module):
    """Minimal Mamba-style block: input-dependent (dt, B, C), diagonal A, elementwise scan in a Python loop."""

    def __init__(self, d=D, n=4):
        super().__init__()
        self.in_proj = nn.Linear(d, 2 * d)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(d, 1 + 2 * n)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1).float()).repeat(d, 1))
        self.D = nn.Parameter(torch.ones(d))
        self.out_proj = nn.Linear(d, d)
        self.n = n

    def forward(self, x):  # (B, L, d)
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = self.act(u)
        dt, b, c = self.x_proj(u).split([1, self.n, self.n], dim=-1)
        dt = F.softplus(dt)  # (B, L, 1)
        a = -torch.exp(self.A_log)  # (d, n)
        h = x.new_zeros(x.shape[0], x.shape[2], self.n)
        ys = []
        for t in range(x.shape[1]):
            da = torch.exp(dt[:, t, :, None] * a)  # (B, d, n)
            h = da * h + dt[:, t, :, None] * b[:, t, None, :] * u[:, t, :, None]
            ys.append((h * c[:, t, None, :]).sum(-1) + self.D * u[:, t])
        y = torch.stack(ys, 1) * self.act(z)
        return self.out_proj(y)

    def extra_flops(self, inputs, output):
        bsz, length, d = inputs[0].shape
        return 8 * bsz * length * d * self.n


class ScanNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = SelectiveScan()
        self.head = nn.Linear(D, C)

    def forward(self, x):
        return self.head(self.block(x).mean(1))


def _batch(kind, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 3, 6, 6, generator=g) if kind == "conv" else torch.randn(B, L, D, generator=g)
    return x, torch.randint(0, C, (B,), generator=g)


MODELS = {"conv": ConvNet, "attn": AttnNet, "gru": GRUNet, "scan": ScanNet}


@pytest.fixture(params=list(MODELS))
def case(request):
    torch.manual_seed(0)
    return MODELS[request.param](), _batch("conv" if request.param == "conv" else "seq"), request.param


def test_every_proxy_finite_deterministic_and_leaves_weights_alone(case):
    model, batch, kind = case
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    first = score_all(model, batch, seed=0)
    second = score_all(model, batch, seed=0)
    assert list(first) == NAMES
    for name in NAMES:
        assert math.isfinite(first[name]), (kind, name, first[name])
        assert first[name] == second[name], (kind, name)
    assert first["params"] > 0 and first["flops"] > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in model.parameters())
    assert model.training and torch.equal(torch.get_rng_state(), rng)


def test_synflow_independent_of_input_data(case):
    model, _, kind = case
    shape_kind = "conv" if kind == "conv" else "seq"
    a = zero_cost.synflow(model, _batch(shape_kind, seed=1))
    b = zero_cost.synflow(model, _batch(shape_kind, seed=2))
    assert a == b and a > 0


def _synflow_whole_batch(model, x):
    """SynFlow as defined, on the whole all-ones batch (what ``synflow`` computed before it scored one example)."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net(torch.ones_like(x, dtype=torch.float64)).sum().backward()
    return float(sum((p.detach() * p.grad).abs().sum() for p in net.parameters() if p.grad is not None))


def test_synflow_scores_one_example_and_scales_to_the_batch(case):
    model, batch, kind = case
    torch.manual_seed(0)
    expected = _synflow_whole_batch(model, batch[0])
    assert zero_cost.synflow(model, batch) == pytest.approx(expected, rel=1e-9), kind
    assert zero_cost.synflow(model, (batch[0][:2], batch[1][:2])) == pytest.approx(expected * 2 / B, rel=1e-9)


BASELINES = sorted((Path(__file__).parents[2] / "search_spaces" / "baselines").glob("*.yaml"))


@pytest.mark.parametrize("path", BASELINES, ids=[p.stem for p in BASELINES])
def test_synflow_of_a_shipped_baseline_equals_the_whole_batch_score(path):
    from nas.builder import build, example_input
    from nas.spec import ArchSpec

    spec = ArchSpec.load(path)
    shape = (3, 16, 16) if spec.input == "image" else (16, 4)
    torch.manual_seed(0)
    model = build(spec, shape, 5)
    x = example_input(model, 4)
    assert zero_cost.synflow(model, (x, None)) == pytest.approx(_synflow_whole_batch(model, x), rel=1e-6)


def test_data_dependent_proxies_see_the_data():
    model = ConvNet()
    assert zero_cost.naswot(model, _batch("conv", 1)) != zero_cost.naswot(model, _batch("conv", 2))
    assert zero_cost.snip(model, _batch("conv", 1)) != zero_cost.snip(model, _batch("conv", 2))


def test_flops_proxy_counts_the_scan_through_extra_flops():
    model = ScanNet()
    x, y = _batch("seq")
    with_extra = zero_cost.flops(model, (x, y))
    SelectiveScan.extra_flops, saved = (lambda self, i, o: 0), SelectiveScan.extra_flops
    try:
        without = zero_cost.flops(model, (x, y))
    finally:
        SelectiveScan.extra_flops = saved
    assert with_extra - without == 8 * B * L * D * 4


def test_failing_proxy_gives_nan_and_is_logged(caplog, monkeypatch):
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            raise RuntimeError("boom")

    batch = (torch.randn(2, 2), torch.tensor([0, 1]))
    with caplog.at_level(logging.WARNING, logger="nas.evaluate.zero_cost"):
        scores = score_all(Broken(), batch)
    assert scores["params"] == 6.0
    assert all(math.isnan(scores[n]) for n in NAMES if n != "params")
    assert "boom" in caplog.text

    def raising(model, batch, *, seed=0):
        raise ValueError("inside")

    monkeypatch.setitem(PROXIES, "snip", raising)
    scores = score_all(ConvNet(), _batch("conv"), names=["snip", "params"])
    assert list(scores) == ["snip", "params"] and math.isnan(scores["snip"]) and scores["params"] > 0


def test_unknown_proxy_name_is_a_user_error():
    with pytest.raises(ConfigError):
        score_all(ConvNet(), _batch("conv"), names=["nope"])


def test_sequence_targets_and_different_seeds():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(D, C)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.lin(self.drop(x))  # (B, L, C)

    x = torch.randn(B, L, D)
    y = torch.randint(0, C, (B, L))
    model = Tagger()
    a, b = zero_cost.snip(model, (x, y), seed=0), zero_cost.snip(model, (x, y), seed=1)
    assert math.isfinite(a) and math.isfinite(b) and a != b  # the seed drives the dropout masks
    assert zero_cost.snip(model, (x, y), seed=1) == b
