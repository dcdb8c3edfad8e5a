"""Cost meters: closed forms for params/FLOPs, attention/recurrent corrections, memory, latency record."""
import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError, NasError
from nas.evaluate.measure import (
    Latency,
    activation_memory_bytes,
    count_flops,
    count_params,
    measure_latency,
    measure_throughput,
    peak_memory_bytes,
    rnn_flops,
)
from nas.grammar import shipped_spaces_dir


def test_conv2d_params_and_flops_closed_form():
    m_in, n_out, k, b, h = 3, 8, 3, 2, 10
    conv = nn.Conv2d(m_in, n_out, k, bias=False)
    assert count_params(conv) == n_out * m_in * k * k
    h_out = h - k + 1
    assert count_flops(conv, torch.randn(b, m_in, h, h)) == 2 * n_out * m_in * k * k * h_out * h_out * b


def test_linear_params_and_flops():
    lin = nn.Linear(5, 7)
    assert count_params(lin) == 5 * 7 + 7
    assert count_flops(lin, torch.randn(3, 5)) == 2 * 5 * 7 * 3


def test_depthwise_conv_params_and_flops():
    m, k = 6, 3
    conv = nn.Conv2d(m, m, k, groups=m, bias=False, padding=1)
    assert count_params(conv) == m * k * k
    assert count_flops(conv, torch.randn(1, m, 4, 4)) == 2 * m * k * k * 4 * 4


def test_frozen_params_not_counted_and_training_flag_restored():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    net[0].weight.requires_grad_(False)
    assert count_params(net) == 4 + 4 * 2 + 2
    net.train()
    count_flops(net, torch.randn(1, 4))
    assert all(m.training for m in net.modules())


class _Scan(nn.Module):
    """Declares work the counter cannot see."""

    def forward(self, x):
        return x * 2.0 + 1.0

    def extra_flops(self, inputs, output):
        return 2 * inputs[0].numel()


def test_extra_flops_is_added_for_every_module_that_defines_it():
    net = nn.Sequential(nn.Linear(4, 4, bias=False), _Scan(), nn.Sequential(_Scan()))
    x = torch.randn(3, 4)
    assert count_flops(net, x) == 2 * 4 * 4 * 3 + 2 * (2 * 12)


class _SDPA(nn.Module):
    def forward(self, x):  # (B, H, L, D)
        return F.scaled_dot_product_attention(x, x, x)


class _MHA(nn.Module):
    def __init__(self, e=16, heads=4, need_weights=False):
        super().__init__()
        self.attn = nn.MultiheadAttention(e, heads, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x):
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


def test_sdpa_flops_positive_and_quadratic_in_length():
    f = [count_flops(_SDPA(), torch.randn(2, 2, n, 8)) for n in (4, 8)]
    assert f[0] == 4 * 2 * 2 * 4 * 4 * 8  # two bmm: QK^T and AV
    assert f[1] == 4 * f[0]


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_attention_flops_closed_form_and_quadratic(need_weights):
    b, e = 2, 16
    mha = _MHA(e, 4, need_weights)
    f = {n: count_flops(mha, torch.randn(b, n, e)) for n in (4, 8, 16)}
    assert f[4] == 4 * 2 * b * 4 * e * e + 4 * b * 4 * 4 * e  # q,k,v,out projections + attention
    # a*L^2 + c*L: second difference is quadratic and non-zero
    assert f[16] - 2 * f[8] == 4 * (f[8] - 2 * f[4]) > 0
    assert torch.backends.mha.get_fastpath_enabled()  # restored


def test_lstm_flops_positive_linear_in_length_and_closed_form():
    lstm = nn.LSTM(8, 16, batch_first=True)
    f5 = count_flops(lstm, torch.randn(2, 5, 8))
    f10 = count_flops(lstm, torch.randn(2, 10, 8))
    assert f5 > 0 and f10 == 2 * f5
    assert f5 == 2 * 4 * 16 * (8 + 16) * 2 * 5


def test_gru_closed_form_equals_what_the_counter_sees_when_decomposed():
    from torch.utils.flop_counter import FlopCounterMode

    gru = nn.GRU(8, 16, num_layers=2, bidirectional=True, batch_first=True).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        gru(x)
    raw = fc.get_total_flops()
    assert raw > 0  # GRU is decomposed into mm/addmm on CPU; the closed form must agree with it
    assert count_flops(gru, x) == raw == rnn_flops(gru, 2 * 5)


def test_rnn_inside_a_model_and_packed_sequence():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 6, batch_first=True)
            self.head = nn.Linear(6, 3)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    assert count_flops(Net(), torch.randn(2, 3, 4)) == 2 * 4 * 6 * 10 * 6 + 2 * 6 * 3 * 2
    lstm = nn.LSTM(4, 6)
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 4), [5, 2])
    assert count_flops(lstm, packed) == 2 * 4 * 6 * 10 * 7


def test_activation_memory_positive_and_linear_in_batch():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 5))
    before = [t.clone() for t in net.state_dict().values()]
    m = [activation_memory_bytes(net, torch.randn(b, 3, 6, 6)) for b in (1, 2, 4)]
    assert 0 < m[0] < m[1] < m[2]
    assert m[2] - m[1] == 2 * (m[1] - m[0])
    assert activation_memory_bytes(net, torch.randn(2, 3, 6, 6)) == m[1]  # deterministic
    after = list(net.state_dict().values())
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # BN running stats restored


def test_activation_memory_counts_a_storage_once():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x):
            y = x * self.w  # saves x
            return y * self.w + x * self.w  # saves y, x again

    x = torch.randn(4, 8)
    # x and y, each once; the parameter is excluded
    assert activation_memory_bytes(Twice(), x) == 2 * 4 * 8 * 4


def test_latency_record():
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    threads_before = torch.get_num_threads()
    lat = measure_latency(net, (8,), batch_size=2, warmup=1, repeats=5, threads=1)
    assert isinstance(lat, Latency)
    assert math.isfinite(lat.median_ms) and lat.median_ms > 0 and lat.iqr_ms >= 0
    assert lat.threads == 1 and lat.repeats == 5 and lat.warmup == 1 and lat.batch_size == 2
    assert lat.device == "cpu"
    assert torch.get_num_threads() == threads_before
    d = lat.to_dict()
    assert d["threads"] == 1 and d["samples_per_s"] > 0
    assert Latency.from_dict(d) == lat  # what the constraint pre-check stores is read back whole


def test_throughput_record():
    lat = measure_throughput(nn.Linear(4, 2), (4,), batch_size=8, warmup=0, repeats=2)
    assert lat.batch_size == 8 and lat.samples_per_s > 0


def test_latency_min_time_extends_the_window():
    """``min_time_s`` keeps timing until the timed calls add up to that long; the count is recorded. Checked by
    what holds on a loaded machine too: each call's own time (a timed call spans at least that), and the wall time."""
    calls: list[float] = []

    class Slow(nn.Module):
        def forward(self, x):
            t0 = time.perf_counter()
            time.sleep(0.002)
            calls.append(time.perf_counter() - t0)
            return x

    started = time.perf_counter()
    lat = measure_latency(Slow(), (4,), warmup=0, repeats=2, min_time_s=0.05)
    wall = time.perf_counter() - started
    assert lat.repeats == len(calls) >= 10  # >= 0.05 s of ~2+ ms calls, far more than the 2 asked for
    assert wall >= 0.05  # the window was filled
    assert sum(calls[:-1]) < 0.05  # and timing stopped once it was: the calls before the last one did not fill it
    assert measure_latency(Slow(), (4,), warmup=0, repeats=3, min_time_s=0.0).repeats == 3


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"batch_size": 0}, {"device": "nonsense"}, {"threads": 0},
                                    {"min_time_s": -1}, {"min_time_s": "1"}])
def test_latency_bad_settings_are_user_errors(kwargs):
    with pytest.raises(ConfigError):
        measure_latency(nn.Linear(2, 2), (2,), **kwargs)


@pytest.mark.parametrize("kwargs, key", [({"runtime": "tensorrt"}, "runtime"),
                                         ({"runtime": "onnxruntime", "device": "cuda"}, "device")])
def test_latency_runtime_errors_name_the_key(kwargs, key):
    with pytest.raises(ConfigError) as e:
        measure_latency(nn.Linear(2, 2), (2,), **kwargs)
    assert e.value.key == key


def _baselines():
    from nas.grammar import load_space

    for name in ("vision", "mobile", "sequence"):
        space = load_space(name)
        for label, spec in sorted(space.baselines.items()):
            yield pytest.param(spec, space.reference_input, id=f"{name}-{label}")


@pytest.mark.parametrize("spec, reference", list(_baselines()))
def test_onnxruntime_times_the_graph_of_every_baseline(spec, reference):
    """Every baseline of the shipped spaces (conv, MBConv with SE, ConvNeXt, attention, transformer, Mamba) is timed by
    onnxruntime on its ONNX graph written in memory, which computes what the torch model computes; the record says
    which runtime ran it and is read back whole (an older record without the runtime reads as torch)."""
    from nas.builder import build
    from nas.evaluate.onnx_graph import onnx_bytes, ort_session

    shape, classes = reference
    torch.manual_seed(0)
    model = build(spec, shape, classes).eval()
    lat = measure_latency(model, shape, warmup=1, repeats=3, threads=1, runtime="onnxruntime")
    assert lat.runtime == "onnxruntime" and lat.threads == 1 and lat.device == "cpu" and lat.median_ms > 0
    assert Latency.from_dict(lat.to_dict()) == lat
    older = {k: v for k, v in lat.to_dict().items() if k != "runtime"}
    assert Latency.from_dict(older).runtime == "torch"
    assert not model.training  # the caller's model is left as it was
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    session = ort_session(onnx_bytes(model, x[:1])[0], threads=1)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert float((model(x) - torch.from_numpy(got)).abs().max()) < 1e-3


def test_peak_memory_needs_cuda():
    if torch.cuda.is_available():
        net = nn.Linear(64, 64).cuda()
        assert peak_memory_bytes(net, torch.randn(8, 64, device="cuda")) > 0
    else:
        with pytest.raises(NasError):
            peak_memory_bytes(nn.Linear(2, 2), torch.randn(1, 2))


def _space_specs(name: str, samples: int = 6):
    import random

    from nas.grammar import RandomSuggest, SmallestSuggest, Space, shipped_spaces_dir

    space = Space.load(shipped_spaces_dir() / f"{name}.yaml")
    rng = random.Random(7)
    specs = [space.sample(SmallestSuggest())] + list(space.baselines.values())
    specs += [space.sample(RandomSuggest(rng)) for _ in range(samples)]
    return space, specs


@pytest.mark.parametrize("space_name", sorted(p.stem for p in shipped_spaces_dir().glob("*.yaml")))
def test_the_total_only_counter_agrees_with_the_stock_counter_on_every_shipped_space(space_name):
    """count_flops counts without FlopCounterMode's module tracking (faster); the total must be the stock one's."""
    from nas.builder import build, example_input

    space, specs = _space_specs(space_name)
    shape, classes = space.reference_input
    for spec in specs:
        model = build(spec, input_shape=shape, num_classes=classes)
        x = example_input(model, batch_size=2)
        lean, stock = count_flops(model, x), count_flops(model, x, per_module=True)
        assert lean == stock > 0, spec.summary()
