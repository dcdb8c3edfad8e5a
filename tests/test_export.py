"""Export folders: arch.json round trip, ONNX / TorchScript for every block type, the card, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas.archjson import ARCH_FILE, read_arch
from nas.blocks.registry import registered
from nas.builder import build
from nas.errors import ExportError, SpecError
from nas.export import (
    CARD_FILE,
    EXPORT_FORMATS,
    METRICS_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    WEIGHTS_FILE,
    export_from,
    export_model,
    export_onnx,
    load,
    read_metrics,
    update_card,
)
from nas.spec import ArchSpec

IMAGE = (1, 8, 8)
SEQUENCE = (16, 3)
TOKEN_MIXERS = ("attention", "transformer", "ssm", "lstm", "gru")


def spec_data(mixer: str, *, input: str = "image", options: dict | None = None, **stage) -> dict:
    """Two tiny stages (the second downsampled) of one mixer."""
    block = {"type": mixer, "options": options or ({"heads": 2} if mixer in ("attention", "transformer") else {})}
    return {
        "input": input,
        "stem": {"type": "conv", "width": 8, "kernel_size": 3},
        "stages": [{"depth": 1, "width": 8, "mixer": block, **stage},
                   {"depth": 1, "width": 8, "downsample": "conv", "mixer": block, **stage}],
    }


def make(data: dict) -> ArchSpec:
    return ArchSpec.from_data(data)


def model_of(spec: ArchSpec, shape, classes: int = 10, seed: int = 1):
    torch.manual_seed(seed)
    model = build(spec, shape, classes)
    # move BatchNorm statistics off their defaults so that a lost buffer would show
    model.train()
    with torch.no_grad():
        model(torch.randn(4, *shape))
    return model.eval()


def quick_export(spec, out, shape, model=None, **kwargs):
    kwargs.setdefault("latency_repeats", 2)
    state = model.state_dict() if model is not None else None
    return export_model(spec, out, input_shape=shape, num_classes=10, state_dict=state, **kwargs)


# -- ONNX / TorchScript for every block type ---------------------------------------------------------------------

CASES = {f"{name}-{'seq' if name in TOKEN_MIXERS else 'img'}": (
    spec_data(name, input="sequence" if name in TOKEN_MIXERS else "image"),
    SEQUENCE if name in TOKEN_MIXERS else IMAGE) for name in sorted(registered())}
CASES["fpn-add-resized"] = ({**spec_data("conv"), "head": {"type": "fpn", "fuse": "add", "fpn_stages": 2},
                              "resolution_multiplier": 1.5, "width_multiplier": 1.5}, IMAGE)
CASES["fpn-concat-layernorm"] = ({**spec_data("mbconv", norm="layer", se_reduction=4, spatial_attention=True),
                                  "head": {"type": "fpn", "fuse": "concat", "fpn_stages": 2}}, IMAGE)
CASES["patchify-preact-dense-groupnorm"] = ({
    "input": "image", "stem": {"type": "patchify", "width": 8, "patch_size": 2},
    "stages": [{"depth": 2, "width": 8, "skip": "preact", "norm": "group", "norm_groups": 2, "act": "gelu",
                "mixer": {"type": "dwsep"}},
               {"depth": 2, "width": 8, "downsample": "patch_merge", "skip": "dense", "growth_rate": 4,
                "norm": "instance", "act": "hardswish", "mixer": {"type": "bottleneck"}},
               {"depth": 1, "width": 8, "downsample": "pool", "mixer": {"type": "glu"}}]}, IMAGE)

CASES["resnet-stem-stride-pool-zeropad-post-act"] = ({
    "input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3, "stride": 2, "pool": "max"},
    "stages": [{"depth": 1, "width": 8, "mixer": {"type": "conv"}, "post_act": True},
               {"depth": 2, "width": 16, "downsample": "stride", "shortcut": "zeropad", "post_act": True,
                "mixer": {"type": "bottleneck"}}]}, (1, 16, 16))
CASES["mobilenet-stride-no-shortcut-relu6-head-conv"] = ({
    "input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3, "stride": 2, "act": "relu6"},
    "stages": [{"depth": 2, "width": 16, "downsample": "stride", "shortcut": "none", "act": "relu6",
                "mixer": {"type": "mbconv", "options": {"expansion_ratio": 6.0}}, "se_reduction": 4,
                "se_place": "inner", "se_divisor": 8, "se_gate": "hardsigmoid", "se_act": "relu"}],
    "head": {"conv_width": 32, "hidden": 24, "dropout": 0.2}}, (1, 16, 16))
CASES["vit-class-token-position-final-norm"] = ({
    "input": "image", "stem": {"type": "patchify", "width": 8, "patch_size": 4, "bias": True, "norm": "none",
                               "class_token": True, "position": "learned"},
    "stages": [{"depth": 2, "width": 8, "norm": "layer", "act": "gelu",
                "mixer": {"type": "transformer", "options": {"heads": 2, "pos_encoding": "none"}}}],
    "head": {"pool": "token", "final_norm": True}}, (3, 16, 16))
CASES["convnext-norm-patch-final-norm"] = ({
    "input": "image", "stem": {"type": "patchify", "width": 8, "patch_size": 2, "bias": True},
    "stages": [{"depth": 1, "width": 8, "norm": "layer", "act": "gelu", "mixer": {"type": "convnext"}},
               {"depth": 1, "width": 16, "norm": "layer", "act": "gelu", "downsample": "norm_patch",
                "mixer": {"type": "convnext"}}],
    "head": {"final_norm": True}}, (3, 16, 16))

def test_cases_cover_every_registered_block():
    covered = {data["stages"][0]["mixer"]["type"] for data, _ in CASES.values()}
    assert set(registered()) <= covered


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_and_torchscript_match_pytorch(case, tmp_path):
    data, shape = CASES[case]
    spec = make(data)
    model = model_of(spec, shape)
    paths = quick_export(spec, tmp_path, shape, model)
    assert paths["onnx_max_abs_diff"] <= 1e-4 and paths["torchscript_max_abs_diff"] <= 1e-4
    for key in ("arch", "weights", "onnx", "torchscript", "metrics", "card"):
        assert Path(paths[key]).is_file(), key

    # an independent run of each file, at a batch size the export never saw
    import onnxruntime as ort

    x = torch.randn(5, *shape, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model(x)
        loaded = load(tmp_path)(x)
        traced = torch.jit.load(str(tmp_path / TORCHSCRIPT_FILE))(x)
    session = ort.InferenceSession(str(tmp_path / ONNX_FILE), providers=["CPUExecutionProvider"])
    onnx_out = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    assert torch.equal(loaded, expected)
    assert (traced - expected).abs().max() <= 1e-4
    assert (onnx_out - expected).abs().max() <= 1e-4

    files = read_metrics(tmp_path)["files"]
    assert files["onnx"]["exporter"] == "torchscript" and files["onnx"]["opset"] == 17


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
def test_exported_ssm_is_right_where_a_chunk_would_overflow(tmp_path):
    """The ssm scan is traced as its loop: an input far larger than the export's check inputs drives the decay of a
    16-step chunk past float32's exp range, where a traced closed form would give inf / nan."""
    import onnxruntime as ort

    from nas.blocks.ssm import SelectiveSSM

    spec = make(spec_data("ssm", input="sequence", options={"state_size": 16}))
    shape = (32, 4)
    model = model_of(spec, shape)
    with torch.no_grad():
        for block in model.modules():
            if isinstance(block, SelectiveSSM):
                block.dt_proj.weight.fill_(5.0)  # Δ grows with the input
    quick_export(spec, tmp_path, shape, model)
    x = 30 * torch.randn(2, *shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(x)
        traced = torch.jit.load(str(tmp_path / TORCHSCRIPT_FILE))(x)
    assert torch.isfinite(expected).all()
    session = ort.InferenceSession(str(tmp_path / ONNX_FILE), providers=["CPUExecutionProvider"])
    onnx_out = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    scale = expected.abs().max()
    assert (onnx_out - expected).abs().max() <= 1e-4 * scale
    assert (traced - expected).abs().max() <= 1e-4 * scale


def test_dynamo_exporter_fallback_works_for_a_cnn(tmp_path):
    spec = make(spec_data("conv"))
    model = model_of(spec, IMAGE)
    # opset 18: the dynamo exporter's own (its conversion of this CNN to the default 17 fails, see below)
    info = export_onnx(model, IMAGE, tmp_path / "m.onnx", opset=18, exporters=("dynamo",))
    assert info["exporter"] == "dynamo" and info["max_abs_diff"] <= 1e-4 and (tmp_path / "m.onnx").is_file()
    assert info["opset"] == 18


# -- round trip -----------------------------------------------------------------------------------------------------


def test_arch_json_rebuilds_an_identical_model(tmp_path):
    spec = make(spec_data("mbconv", se_reduction=4))
    model = model_of(spec, IMAGE)
    quick_export(spec, tmp_path, IMAGE, model, metrics={"accuracy": 0.875}, source={"run": "demo", "trial": 7},
                 formats=())
    record = json.loads((tmp_path / ARCH_FILE).read_text())
    assert record["format"] == "patternnas-arch" and record["format_version"] == 1
    assert record["hash"] == spec.hash() and record["summary"] == spec.summary()
    assert record["input_shape"] == list(IMAGE) and record["num_classes"] == 10

    rebuilt = build(tmp_path / ARCH_FILE)  # no input shape / classes needed: the file records them
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert build(tmp_path).input_shape == IMAGE

    spec2, shape, classes, _ = read_arch(tmp_path)
    assert spec2 == spec and spec2.hash() == spec.hash() and shape == IMAGE and classes == 10

    x = torch.randn(3, *IMAGE)
    loaded = load(tmp_path / ARCH_FILE)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not (tmp_path / ONNX_FILE).exists() and not (tmp_path / TORCHSCRIPT_FILE).exists()


def test_export_without_weights_says_so(tmp_path):
    spec = make(spec_data("conv"))
    paths = quick_export(spec, tmp_path, IMAGE, formats=("onnx",))
    assert paths["weights"] is None and not (tmp_path / WEIGHTS_FILE).exists()
    card = (tmp_path / CARD_FILE).read_text()
    assert "**none**: architecture only" in card and "nas train" in card
    assert read_metrics(tmp_path)["weights"]["trained"] is False
    import onnxruntime as ort

    torch.manual_seed(123)
    x = torch.randn(2, *IMAGE)
    state = torch.random.get_rng_state()
    loaded = load(tmp_path)  # untrained, initialised as model.onnx was; the caller's random state untouched
    assert torch.equal(torch.random.get_rng_state(), state)
    session = ort.InferenceSession(str(tmp_path / ONNX_FILE), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert torch.allclose(loaded(x), torch.from_numpy(onnx_out), atol=1e-5)


def test_card_and_update_card(tmp_path):
    spec = make(spec_data("convnext", norm="layer"))
    quick_export(spec, tmp_path, IMAGE, model_of(spec, IMAGE), metrics={"accuracy": 0.8125},
                 source={"run": "digits_demo", "trial": 12, "dataset": "digits"}, formats=("onnx",))
    card = (tmp_path / CARD_FILE).read_text()
    record = read_metrics(tmp_path)
    for needle in (spec.summary(), spec.hash(), f"{record['cost']['params']:,}", f"{record['cost']['flops']:,}",
                   "median", "IQR", "batch 1", "1 thread(s)", "proxy accuracy", "0.8125", "run `digits_demo`",
                   "trial #12", "(N, 1, 8, 8)", "| classes | 10", "nas.export.load", "build(", "onnxruntime",
                   "nas train", "--dataset digits", "ONNX opset 17"):
        assert needle in card, needle

    update_card(tmp_path, test_accuracy=0.96875, training={"dataset": "digits", "epochs": 3})
    card = (tmp_path / CARD_FILE).read_text()
    assert "test accuracy" in card and "0.9688" in card and "0.8125" in card and "epochs=3" in card
    assert read_metrics(tmp_path)["metrics"]["test_accuracy"] == 0.96875
    update_card(tmp_path, test_accuracy=None)
    assert "test_accuracy" not in read_metrics(tmp_path)["metrics"]
    assert "test accuracy" not in (tmp_path / CARD_FILE).read_text()


# -- bad input ------------------------------------------------------------------------------------------------------


@pytest.fixture
def exported(tmp_path) -> Path:
    spec = make(spec_data("conv"))
    quick_export(spec, tmp_path / "exp", IMAGE, model_of(spec, IMAGE), formats=())
    return tmp_path / "exp"


def _edit_arch(folder: Path, change) -> None:
    record = json.loads((folder / ARCH_FILE).read_text())
    change(record)
    (folder / ARCH_FILE).write_text(json.dumps(record))


def test_tampered_arch_json_is_refused(exported):
    _edit_arch(exported, lambda r: r["spec"]["stages"][0].update(width=16))
    for fn in (read_arch, load):
        with pytest.raises(ExportError, match=r"arch.json: hash: hash mismatch: the file records \w+ but its spec "
                                              r"hashes to \w+"):
            fn(exported)


def test_foreign_json_is_refused(exported, tmp_path):
    bare = tmp_path / "bare.json"
    make(spec_data("conv")).save(bare)  # a spec, not an export
    with pytest.raises(ExportError, match=r"bare.json: format: not an exported architecture: no 'format' field"):
        load(bare)
    _edit_arch(exported, lambda r: r.update(format="something-else"))
    with pytest.raises(ExportError, match=r"format: not an exported architecture: format is 'something-else'"):
        read_arch(exported)
    (exported / ARCH_FILE).write_text("{not json")
    with pytest.raises(ExportError, match=r"arch.json:1: not valid JSON"):
        load(exported)
    with pytest.raises(ExportError, match=r"not an export folder: no arch.json"):
        load(tmp_path)
    with pytest.raises(ExportError, match="no such file or folder"):
        read_arch(tmp_path / "missing" / ARCH_FILE)
    with pytest.raises(ExportError, match="no such file or folder"):
        load(tmp_path / "missing")


def test_bad_records_name_the_key(exported):
    _edit_arch(exported, lambda r: r.update(format_version=2))
    with pytest.raises(ExportError, match=r"format_version: format_version 2 is newer"):
        read_arch(exported)
    _edit_arch(exported, lambda r: r.update(format_version=1, input_shape=[1, 8]))
    with pytest.raises(ExportError, match=r"input_shape: must be \[C, H, W\]"):
        read_arch(exported)
    _edit_arch(exported, lambda r: r.update(input_shape=[1, 8, 8], num_classes=0))
    with pytest.raises(ExportError, match=r"num_classes: must be an integer >= 1"):
        read_arch(exported)
    _edit_arch(exported, lambda r: r.update(input_shape=[1, 8, 100000], num_classes=10))
    with pytest.raises(ExportError, match=r"input_shape: each entry must be at most 4096 for image input"):
        read_arch(exported)
    _edit_arch(exported, lambda r: r.update(input_shape=[1, 8, 8], num_classes=10**11))
    with pytest.raises(ExportError, match=r"num_classes: must be at most 1,000,000"):
        read_arch(exported)


def test_an_unknown_key_in_arch_json_is_refused_naming_its_line(exported):
    record = json.loads((exported / ARCH_FILE).read_text())
    record["num_clases"] = record.pop("num_classes")  # a typo: the file is not read with a default instead
    (exported / ARCH_FILE).write_text(json.dumps(record, indent=2))
    line = next(i for i, text in enumerate((exported / ARCH_FILE).read_text().splitlines(), 1) if "num_clases" in text)
    for fn in (read_arch, load):
        with pytest.raises(ExportError) as info:
            fn(exported)
        assert info.value.one_line() == (
            f"{exported / ARCH_FILE}:{line}: unknown key 'num_clases' (did you mean 'num_classes'? expected one of: "
            "format, format_version, hash, summary, spec, input_shape, num_classes)")


def test_invalid_spec_raises_spec_error_with_the_key(exported):
    _edit_arch(exported, lambda r: r["spec"]["stages"][0].update(depth=0))
    with pytest.raises(SpecError, match=r"arch.json: spec.stages.0.depth: "):
        read_arch(exported)


def test_mismatched_weights_are_refused(exported, tmp_path):
    from safetensors.torch import save_file

    other = make({**spec_data("conv"), "stages": [{"depth": 1, "width": 16, "mixer": {"type": "conv"}}]})
    save_file(model_of(other, IMAGE).state_dict(), str(exported / WEIGHTS_FILE))
    with pytest.raises(ExportError, match=r"model.safetensors: stages.0.0.mixer.*: shape \[16, 8, 3, 3\] does not "
                                          r"match the architecture's \[8, 8, 3, 3\]"):
        load(exported)

    state = model_of(make(spec_data("conv")), IMAGE).state_dict()
    first = next(iter(state))
    save_file({k: v for k, v in state.items() if k != first}, str(exported / WEIGHTS_FILE))
    with pytest.raises(ExportError, match=rf"model.safetensors: {first}: missing tensor"):
        load(exported)
    save_file({**state, "extra.weight": torch.zeros(2)}, str(exported / WEIGHTS_FILE))
    with pytest.raises(ExportError, match=r"model.safetensors: extra.weight: unexpected tensor"):
        load(exported)
    save_file(state, str(exported / WEIGHTS_FILE), metadata={"spec_hash": "0123456789ab"})
    with pytest.raises(ExportError, match=r"spec_hash: these weights are for architecture 0123456789ab"):
        load(exported)
    (exported / WEIGHTS_FILE).write_bytes(b"\x80\x04 not a safetensors file")
    with pytest.raises(ExportError, match=r"model.safetensors: not a readable safetensors file"):
        load(exported)
    assert load(exported, weights=False) is not None

    with pytest.raises(ExportError, match=r"^stages.0.0.mixer.*: shape \[16, 8, 3, 3\] does not match"):
        export_model(make(spec_data("conv")), tmp_path / "x", input_shape=IMAGE, num_classes=10,
                     state_dict=model_of(other, IMAGE).state_dict())


def test_onnx_failure_keeps_the_other_files(tmp_path, monkeypatch):
    spec = make(spec_data("conv"))

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError, match=r"model.onnx: ONNX export failed: torchscript exporter: RuntimeError: "
                                          r"exporter exploded"):
        quick_export(spec, tmp_path, IMAGE, model_of(spec, IMAGE))
    for name in (ARCH_FILE, WEIGHTS_FILE, TORCHSCRIPT_FILE, METRICS_FILE, CARD_FILE):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / ONNX_FILE).exists()
    assert "ONNX export failed" in (tmp_path / CARD_FILE).read_text()
    assert "error" in read_metrics(tmp_path)["files"]["onnx"]


def test_onnx_mismatch_is_an_export_error(tmp_path, monkeypatch):
    import nas.export.graph as export

    monkeypatch.setattr(export, "_onnx_diff", lambda *a: (0.5, 1.0))
    spec = make(spec_data("conv"))
    with pytest.raises(ExportError, match=r"model.onnx: ONNX check failed: onnxruntime output differs from PyTorch "
                                          r"by 0.5 \(max abs, tolerance 0.0011 for logits up to 1\)"):
        quick_export(spec, tmp_path, IMAGE, model_of(spec, IMAGE), formats=("onnx",))
    assert not (tmp_path / ONNX_FILE).exists() and (tmp_path / ARCH_FILE).is_file()


@pytest.mark.parametrize("diff,scale,kept", [(1.34e-4, 30.0, True), (1.34e-4, 0.01, False), (0.02, 30.0, True),
                                             (0.05, 30.0, False), (float("inf"), 30.0, False)])
def test_the_onnx_tolerance_grows_with_the_logits(tmp_path, monkeypatch, diff, scale, kept):
    """A trained net's logits reach tens, and float32 kernels summing in another order differ in proportion: a fixed
    1e-4 dropped the ONNX file of a sound export (1.34e-4 off). The tolerance is 1e-4 + 1e-3 x the largest |logit|;
    a real mismatch (or a non-finite output) is still refused."""
    import nas.export.graph as export

    monkeypatch.setattr(export, "_onnx_diff", lambda *a: (diff, scale))
    spec = make(spec_data("conv"))
    if kept:
        info = export.export_onnx(model_of(spec, IMAGE), IMAGE, tmp_path / ONNX_FILE)
        assert info["tolerance"] == pytest.approx(1e-4 + 1e-3 * scale) and (tmp_path / ONNX_FILE).is_file()
    else:
        with pytest.raises(ExportError, match="ONNX check failed"):
            export.export_onnx(model_of(spec, IMAGE), IMAGE, tmp_path / ONNX_FILE)
        assert not (tmp_path / ONNX_FILE).exists()


def test_the_onnx_check_reports_the_logits_scale(tmp_path):
    """On a real export: the check's scale is the largest |logit| PyTorch gave, and the card states the rule."""
    import nas.export.graph as export

    spec = make(spec_data("conv"))
    model = model_of(spec, IMAGE)
    info = export.export_onnx(model, IMAGE, tmp_path / ONNX_FILE)
    with torch.no_grad():
        scale = max(float(model(x).abs().max()) for x in export._check_inputs(IMAGE))
    assert info["tolerance"] == pytest.approx(export.tolerance_for(scale)) and info["max_abs_diff"] <= info["tolerance"]


# -- nas export's entry point: a search run or a spec file -----------------------------------------------------------

# As tests/control/control_helpers.py's TINY: 8 small CNNs on 8x8 digits, seconds per run.
TINY_RUN = {
    "name": "tiny", "space": str(Path(__file__).parent / "control" / "tiny_space.yaml"), "dataset": "digits",
    "train_subset": 200, "objectives": ["accuracy", "latency_ms"], "budget": {"epochs": 0.5, "batch_size": 32},
    "sampler": "random", "trials": 2, "seed": 0, "device": "cpu", "latency_repeats": 2, "latency_warmup": 0,
    "train_threads": 1, "zero_cost": False,
}



def test_export_from_a_run_and_from_a_spec_file(tmp_path):
    import nas

    nas.search({**TINY_RUN, "zero_cost": ["naswot"]}, runs_dir=tmp_path / "runs", quiet=True)
    run = tmp_path / "runs" / "tiny"
    paths = export_from(run, latency_repeats=2)
    folder = Path(paths["dir"])
    assert folder.parent == run / "exports" and paths["weights"] is None
    record = read_metrics(folder)
    assert record["source"]["run"] == "tiny" and record["source"]["dataset"] == "digits"
    assert "accuracy" in record["metrics"]
    spec, shape, classes, _ = read_arch(folder)
    assert shape == (1, 8, 8) and classes == 10

    paths = export_from(run, tmp_path / "t1", trial=1, latency_repeats=2)
    assert read_metrics(paths["dir"])["source"]["trial"] == 1
    paths = export_from(run, tmp_path / "ranked", rank_with="naswot", latency_repeats=2)
    assert read_metrics(paths["dir"])["source"]["selected"].startswith("best mean rank under accuracy and the "
                                                                        "zero-cost proxy naswot of ")
    with pytest.raises(ExportError, match=r"--rank-with: no complete trial recorded the zero-cost proxy 'nope'; "
                                          r"recorded: naswot$"):
        export_from(run, tmp_path / "t97", rank_with="nope")
    with pytest.raises(ExportError, match=r"choose one of --trial, .*--rank-with"):
        export_from(run, tmp_path / "t96", trial=1, rank_with="naswot")
    with pytest.raises(ExportError, match=r"--trial: no trial #99"):
        export_from(run, tmp_path / "t99", trial=99)
    for kwargs, key in (({"dataset": "digits"}, "--dataset"), ({"input_shape": (1, 8, 8)}, "--input-shape"),
                        ({"num_classes": 3}, "--num-classes")):
        with pytest.raises(ExportError, match=rf"tiny: {key}: for a spec file only"):
            export_from(run, tmp_path / "t98", **kwargs)

    spec_file = tmp_path / "spec.json"
    make(spec_data("dwsep")).save(spec_file)
    with pytest.raises(ExportError, match=r"--dataset: a spec file needs --dataset"):
        export_from(spec_file, tmp_path / "s")
    paths = export_from(spec_file, tmp_path / "s", dataset="digits", latency_repeats=2)
    assert read_arch(paths["dir"])[1:3] == ((1, 8, 8), 10)
    with pytest.raises(ExportError, match=r"already holds another export"):
        export_from(spec_file, tmp_path / "t1", dataset="digits")  # t1 holds trial 1's architecture
    paths = export_from(spec_file, tmp_path / "t1", dataset="digits", force=True, latency_repeats=2)
    assert read_arch(paths["dir"])[0].hash() == make(spec_data("dwsep")).hash()
    (tmp_path / "t1" / WEIGHTS_FILE).write_bytes(b"trained weights")  # as nas train leaves them
    with pytest.raises(ExportError, match=r"already holds this architecture with trained weights"):
        export_from(spec_file, tmp_path / "t1", dataset="digits")


# -- what `nas export` writes, its own commands read back; option checks before anything is written ------------------


def test_read_spec_takes_an_export_and_a_bare_spec(tmp_path):
    from nas.archjson import read_spec
    from nas.control.warmstart import _read_spec

    spec = make(spec_data("conv"))
    quick_export(spec, tmp_path / "e", IMAGE, formats=(), latency_repeats=0)
    for target in (tmp_path / "e", tmp_path / "e" / ARCH_FILE):
        got, recorded = read_spec(target)
        assert got.hash() == spec.hash() and recorded == (IMAGE, 10)
        assert _read_spec(target).hash() == spec.hash()  # warm_start reads it the same way
    spec.save(tmp_path / "bare.json")
    assert read_spec(tmp_path / "bare.json") == (spec, None)
    _edit_arch(tmp_path / "e", lambda r: r.update(hash="0" * 12))
    with pytest.raises(ExportError, match=r"arch.json: hash: hash mismatch"):
        read_spec(tmp_path / "e" / ARCH_FILE)


def test_an_export_can_be_exported_again(tmp_path):
    spec = make(spec_data("dwsep"))
    quick_export(spec, tmp_path / "e", IMAGE, formats=(), latency_repeats=0)
    paths = export_from(tmp_path / "e" / ARCH_FILE, tmp_path / "d", dataset="digits", latency_repeats=0)
    assert read_arch(paths["dir"])[0].hash() == spec.hash()
    paths = export_from(tmp_path / "e", tmp_path / "r", latency_repeats=0)  # no --dataset: the recorded input
    assert read_arch(paths["dir"])[1:3] == (IMAGE, 10)


@pytest.mark.parametrize("opset", [5, 6, 21, 999, True])
def test_an_opset_the_exporter_cannot_write_is_refused_before_writing(tmp_path, opset):
    spec_file = tmp_path / "spec.json"
    make(spec_data("conv")).save(spec_file)
    with pytest.raises(ExportError, match=r"^--opset: ONNX opset .* is not supported: the TorchScript-based "
                                          r"exporter of torch \S+ writes opsets 7 to 20"):
        export_from(spec_file, tmp_path / "out", dataset="digits", opset=opset)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ExportError, match=r"--opset"):
        quick_export(make(spec_data("conv")), tmp_path / "direct", IMAGE, opset=opset)
    assert not (tmp_path / "direct").exists()


def test_the_recorded_opset_is_the_one_in_the_file(tmp_path):
    import onnx

    spec = make(spec_data("conv"))
    quick_export(spec, tmp_path, IMAGE, model_of(spec, IMAGE), opset=13, formats=("onnx",))
    written = {o.domain: o.version for o in onnx.load(str(tmp_path / ONNX_FILE)).opset_import}[""]
    assert written == 13 and read_metrics(tmp_path)["files"]["onnx"]["opset"] == 13
    assert "ONNX opset 13 " in (tmp_path / CARD_FILE).read_text()


def test_an_exporter_writing_another_opset_counts_as_failed(tmp_path):
    # the dynamo exporter writes opset 18 and keeps it when its conversion to an older opset fails
    spec = make(spec_data("conv"))
    with pytest.raises(ExportError, match=r"m.onnx: ONNX export failed: dynamo exporter: RuntimeError: wrote ONNX "
                                          r"opset 18, not the 13 asked for"):
        export_onnx(model_of(spec, IMAGE), IMAGE, tmp_path / "m.onnx", opset=13, exporters=("dynamo",))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (0, 8, 8), "num_classes": 10}, r"--input-shape: must be 3 positive integers C,H,W .* got 0,8,8"),
    ({"input_shape": (8, 8), "num_classes": 10}, r"--input-shape: must be 3 positive integers .* got 8,8"),
    ({"input_shape": (1, 8, 8), "num_classes": 1}, r"--num-classes: must be an integer >= 2, got 1"),
    ({"input_shape": (1, 8, 8), "num_classes": 0}, r"--num-classes: must be an integer >= 2, got 0"),
    # held to a space's bounds on its reference input (nas.grammar): a huge one was a traceback from torch's allocator
    ({"input_shape": (1, 100000, 100000), "num_classes": 10},
     r"--input-shape: each entry must be at most 4096 for image input \(as a space's reference input\), "
     r"got 1,100000,100000"),
    ({"input_shape": (1, 8, 8), "num_classes": 10**11},
     r"--num-classes: must be at most 1,000,000 \(as a space's reference input\), got 100000000000"),
    ({"knee": True}, r"--knee: for a search run folder only"),
    ({"max_latency_ms": 2.0}, r"--max-latency-ms: for a search run folder only"),
    ({"min_accuracy": 0.5}, r"--min-accuracy: for a search run folder only"),
    ({"trial": 1}, r"--trial: for a search run folder only"),
    ({"rank_with": "naswot"}, r"--rank-with: for a search run folder only"),
])
def test_bad_spec_file_options_are_one_line_errors(tmp_path, kwargs, message):
    spec_file = tmp_path / "spec.json"
    make(spec_data("conv")).save(spec_file)
    with pytest.raises(ExportError, match=message) as caught:
        export_from(spec_file, tmp_path / "out", **kwargs)
    assert caught.value.one_line().startswith(f"{spec_file}: ")
    assert not (tmp_path / "out").exists()


def test_sequence_input_shape_needs_two_numbers(tmp_path):
    spec_file = tmp_path / "seq.json"
    make(spec_data("lstm", input="sequence")).save(spec_file)
    with pytest.raises(ExportError, match=r"--input-shape: must be 2 positive integers L,C .* got 1,16,3"):
        export_from(spec_file, tmp_path / "out", input_shape=(1, 16, 3), num_classes=10)
    with pytest.raises(ExportError, match=r"--input-shape: each entry must be at most 65536 for sequence input"):
        export_from(spec_file, tmp_path / "out", input_shape=(70000, 3), num_classes=10)
    assert not (tmp_path / "out").exists()


def _fake_study(rows, zero_cost=None):
    from types import SimpleNamespace

    trials = [SimpleNamespace(number=i, state=SimpleNamespace(name="COMPLETE"), values=[acc, lat],
                              user_attrs={"spec": "{}", **({"zero_cost": zero_cost[i]} if zero_cost else {})})
              for i, (acc, lat) in enumerate(rows)]
    return SimpleNamespace(get_trials=lambda deepcopy=False: trials)


def test_two_bounds_that_no_trial_meets_together_say_so():
    from nas.export import select_trial

    study = _fake_study([(0.9, 5.0), (0.2, 1.5), (0.5, 3.0)])
    objectives = ["accuracy", "latency_ms"]
    with pytest.raises(ExportError, match=r"^run: --max-latency-ms/--min-accuracy: no trial both runs within 2 ms "
                                          r"and reaches accuracy 0.6: the most accurate of the 1 within 2 ms is "
                                          r"trial #1 with 1.5 ms at accuracy 0.2000; the fastest of the 1 reaching "
                                          r"0.6 is trial #0 with 5 ms at accuracy 0.9000$"):
        select_trial(study, objectives, max_latency_ms=2, min_accuracy=0.6, where="run")
    with pytest.raises(ExportError, match=r"--max-latency-ms: no trial runs within 1 ms; the closest is trial #1"):
        select_trial(study, objectives, max_latency_ms=1, min_accuracy=0.6, where="run")
    with pytest.raises(ExportError, match=r"--min-accuracy: no trial reaches accuracy 0.95; the closest is trial #0"):
        select_trial(study, objectives, max_latency_ms=4, min_accuracy=0.95, where="run")
    chosen, _ = select_trial(study, objectives, max_latency_ms=4, min_accuracy=0.4, where="run")
    assert chosen.number == 2


def test_rank_with_picks_the_best_mean_rank_of_the_first_objective_and_the_proxy():
    from nas.export import select_trial

    rows = [(0.90, 5.0), (0.88, 1.0), (0.70, 2.0), (0.95, 3.0)]
    proxy = [{"naswot": 10.0}, {"naswot": 30.0}, {"naswot": 40.0}, {"naswot": float("nan")}]
    # accuracy ranks (of the 3 scored) 2, 1, 0 and naswot ranks 0, 1, 2: trials 0 and 1 tie, the more accurate wins
    chosen, why = select_trial(_fake_study(rows, proxy), ["accuracy", "latency_ms"], rank_with="naswot", where="run")
    assert chosen.number == 0
    assert why == "best mean rank under accuracy and the zero-cost proxy naswot of 3 complete trials; 1 without a " \
                  "finite naswot left out"
    # a minimized first objective ranks the other way: latency ranks 0 (5 ms), 2 (1 ms), 1 (2 ms) and naswot ranks
    # 1, 0, 2 give trial 2 the best mean; were latency maximized, trial 0 would win
    proxy[0]["naswot"] = 35.0
    chosen, _ = select_trial(_fake_study(rows, proxy), ["latency_ms", "accuracy"], rank_with="naswot", where="run")
    assert chosen.number == 2
    with pytest.raises(ExportError, match=r"^run: --rank-with: no complete trial recorded the zero-cost proxy "
                                          r"'synflow'; recorded: naswot$"):
        select_trial(_fake_study(rows, proxy), ["accuracy"], rank_with="synflow", where="run")
    with pytest.raises(ExportError, match=r"recorded: none \(the run was configured with zero_cost: \[\]\)$"):
        select_trial(_fake_study(rows), ["accuracy"], rank_with="naswot", where="run")


# -- the export formats registry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(EXPORT_FORMATS))
def test_every_registered_format_writes_a_checked_file_alone(tmp_path, fmt):
    """Each format asked alone writes its file, checked against PyTorch, and no other format's file."""
    spec = make(spec_data("conv"))
    paths = quick_export(spec, tmp_path, IMAGE, model_of(spec, IMAGE), formats=(fmt,), latency_repeats=0)
    entry = EXPORT_FORMATS.get(fmt)
    assert paths[fmt] == str(tmp_path / entry.file) and (tmp_path / entry.file).is_file()
    assert paths[f"{fmt}_max_abs_diff"] is not None and paths[f"{fmt}_max_abs_diff"] < 1e-3
    others = [e.file for name, e in EXPORT_FORMATS.items() if name != fmt]
    assert not any((tmp_path / f).exists() for f in others)
    assert read_metrics(tmp_path)["files"][fmt]["max_abs_diff"] == paths[f"{fmt}_max_abs_diff"]


def test_an_unknown_format_is_one_line_listing_the_registered_ones(tmp_path):
    spec = make(spec_data("conv"))
    with pytest.raises(ExportError, match=r"unknown export format 'tflite' \(known: torchscript, onnx\)"):
        quick_export(spec, tmp_path, IMAGE, formats=("onnx", "tflite"))
    assert not (tmp_path / "arch.json").exists()  # refused before anything is written
