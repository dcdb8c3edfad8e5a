"""The model zoo (search_spaces/zoo/*.yaml): each published network at its published input, with the published
parameter count exactly and the MACs within 1% (torch's flop counter), its feature-map sizes and its layer order."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nas
from nas.archjson import read_network, read_spec
from nas.builder import build
from nas.errors import BuildError, SpaceError, SpecError
from nas.evaluate.measure import count_flops, count_params
from nas.grammar import Space
from nas.spec import ArchSpec

ZOO = Path(__file__).resolve().parents[1] / "search_spaces" / "zoo"
NETWORKS = sorted(p.stem for p in ZOO.glob("*.yaml"))
STAGE_SIZES = {"resnet18": [56, 28, 14, 7], "resnet50": [56, 28, 14, 7], "resnet20": [32, 16, 8],
               "resnet20_b": [32, 16, 8], "mobilenetv2": [112, 56, 28, 14, 14, 7, 7],
               "mobilenetv3_large": [112, 56, 28, 14, 14, 7],
               "mobilenetv3_small": [56, 28, 14, 14, 7],
               "efficientnet_b0": [112, 56, 28, 14, 14, 7, 7], "convnext_tiny": [56, 28, 14, 7], "deit_tiny": [197]}


def test_the_zoo_has_its_networks():
    assert {"resnet18", "resnet50", "resnet20", "resnet20_b", "mobilenetv2", "mobilenetv3_large", "mobilenetv3_small",
            "efficientnet_b0", "convnext_tiny", "deit_tiny"} == set(NETWORKS)
    assert set(STAGE_SIZES) == set(NETWORKS)


@pytest.fixture(scope="module", params=NETWORKS)
def member(request):
    path = ZOO / f"{request.param}.yaml"
    spec, (shape, classes), data = read_network(path)
    torch.manual_seed(0)
    return request.param, path, spec, shape, classes, data, nas.build(str(path)).eval()


def test_published_parameters_exactly_and_macs_within_one_percent(member):
    name, _, spec, shape, classes, data, model = member
    assert data["name"] == name
    assert model.input_shape == shape and model.num_classes == classes
    assert count_params(model) == data["published"]["params"]
    macs = count_flops(model, torch.randn(1, *shape)) / 2
    assert abs(macs / data["published"]["macs"] - 1) <= 0.01, macs


def test_feature_map_sizes_after_each_stage(member):
    name, _, spec, shape, _, _, model = member
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, *shape))
    assert [f.shape[-1] for f in features] == STAGE_SIZES[name]
    assert [f.shape[1] for f in features] == [s.width for s in spec.stages]


def test_counting_by_parts_gives_the_built_network_counts(member):
    from nas.evaluate.costs import network_costs

    _, _, spec, shape, classes, _, model = member
    whole = {"params": count_params(model), "flops": count_flops(model, torch.randn(1, *shape))}
    assert network_costs(spec, shape, classes) == whole


def test_a_network_file_builds_like_its_spec_with_its_recorded_input(member):
    _, path, spec, shape, classes, _, _ = member
    read, recorded = read_spec(path)
    assert read == spec and recorded == (shape, classes)


def kinds(module: nn.Module) -> list[str]:
    """The leaf layers in order, identities left out."""
    return [type(m).__name__ for m in module.modules() if not list(m.children()) and not isinstance(m, nn.Identity)]


def test_resnet_basic_block_layer_order_and_stride():
    model = build(str(ZOO / "resnet18.yaml")).eval()
    stem = model.stem
    assert kinds(stem) == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert stem[0].kernel_size == (7, 7) and stem[0].stride == (2, 2) and stem[0].padding == (3, 3)
    assert (stem[3].kernel_size, stem[3].stride, stem[3].padding) == (3, 2, 1)
    block = model.stages[1][0]  # the first block of stage 2: strided, with a projection
    assert kinds(block.mixer) == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d"]  # no ReLU before the add
    assert block.mixer[0][0].stride == (2, 2) and block.mixer[1][0].stride == (1, 1)
    assert kinds(block.shortcut) == ["Conv2d", "BatchNorm2d"] and block.shortcut[0].stride == (2, 2)
    assert isinstance(block.post, nn.ReLU)  # the ReLU after the add
    assert all(m.bias is None for m in block.modules() if isinstance(m, nn.Conv2d))
    assert kinds(model.head) == ["Dropout", "Linear"]


def test_resnet50_bottleneck_strides_its_3x3():
    block = build(str(ZOO / "resnet50.yaml")).stages[1][0]
    convs = [m for m in block.mixer.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.out_channels) for c in convs] == [((1, 1), (1, 1), 128),
                                                                          ((3, 3), (2, 2), 128),
                                                                          ((1, 1), (1, 1), 512)]


def test_mobilenetv2_block_layer_order_and_shortcuts():
    model = build(str(ZOO / "mobilenetv2.yaml")).eval()
    first, second = model.stages[1][0], model.stages[1][1]  # 16 -> 24 strided, then 24 -> 24
    assert kinds(first.mixer) == ["Conv2d", "BatchNorm2d", "ReLU6", "Conv2d", "BatchNorm2d", "ReLU6", "Conv2d",
                                  "BatchNorm2d"]
    assert first.mixer.depthwise[0].stride == (2, 2) and first.mixer.depthwise[0].groups == 96
    assert not first.adds and second.adds and isinstance(second.shortcut, nn.Identity)
    assert kinds(model.stages[0][0].mixer) == ["Conv2d", "BatchNorm2d", "ReLU6", "Conv2d", "BatchNorm2d"]
    assert kinds(model.head.conv) == ["Conv2d", "BatchNorm2d", "ReLU6"] and model.head.fc.in_features == 1280


def test_mobilenetv3_squeeze_excites_inside_the_block():
    model = build(str(ZOO / "mobilenetv3_large.yaml")).eval()
    block = model.stages[2][0]  # 24 -> 40, k5, exp 72, SE, ReLU, strided
    assert kinds(block.mixer) == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Linear", "ReLU",
                                  "Linear", "Hardsigmoid", "Conv2d", "BatchNorm2d"]
    assert block.mixer.excite.reduce.out_features == 24  # make_divisible(72 // 4, 8)
    assert block.mixer.depthwise[0].stride == (2, 2) and isinstance(block.attention, nn.Sequential)
    assert len(block.attention) == 0 and not block.adds
    hidden = [cell.mixer.hidden_channels for cell in model.stages[3]]  # one stage, expansions 6 / 2.5 / 2.3 / 2.3
    assert hidden == [240, 200, 184, 184] and [c.adds for c in model.stages[3]] == [False, True, True, True]
    head = model.head
    assert kinds(head) == ["Conv2d", "BatchNorm2d", "Hardswish", "Linear", "Hardswish", "Dropout",
                           "Linear"]
    assert model.stem[2].__class__ is nn.Hardswish  # the stem's own activation, not stage 1's ReLU


def test_efficientnet_squeezes_from_the_block_input():
    block = build(str(ZOO / "efficientnet_b0.yaml")).stages[1][0]  # 16 -> 24, exp 96: SE hidden 16 // 4
    assert block.mixer.excite.reduce.in_features == 96 and block.mixer.excite.reduce.out_features == 4
    assert isinstance(block.mixer.excite.act, nn.SiLU) and isinstance(block.mixer.excite.gate, nn.Sigmoid)


def test_convnext_downsamples_norm_first_and_ends_in_a_norm():
    model = build(str(ZOO / "convnext_tiny.yaml")).eval()
    assert kinds(model.stem) == ["Conv2d", "LayerNorm"] and model.stem.conv.bias is not None
    down = model.stages[1][0].op
    assert kinds(down) == ["LayerNorm", "Conv2d"] and down[1].kernel_size == (2, 2) and down[1].bias is not None
    assert down[0].norm.normalized_shape == (96,)  # the norm reads the input channels
    assert kinds(model.stages[1][1].mixer) == ["Conv2d", "LayerNorm", "Conv2d", "GELU", "Conv2d"]
    assert kinds(model.head) == ["LayerNorm", "Dropout", "Linear"]


def test_deit_has_one_class_token_and_one_position_table():
    model = build(str(ZOO / "deit_tiny.yaml")).eval()
    stem = model.stem
    assert stem.class_token.shape == (1, 192, 1) and stem.position.shape == (1, 192, 197)
    assert stem.conv.bias is not None and kinds(stem) == ["Conv2d"]
    assert not [m for m in model.stages.modules() if type(m).__name__ == "PositionEncoding" and m.table is not None]
    block = model.stages[0][0].mixer
    layers = [k for k in kinds(block) if k != "PositionEncoding"]  # a table-less one (pos_encoding none), as above
    assert layers == ["LayerNorm", "Linear", "Linear", "LayerNorm", "Linear", "GELU", "Linear"]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        tokens = model.forward_features(x)[-1]  # (N, C, 197)
        expected = model.head.fc(model.head.final_norm(tokens[:, :, :1]).squeeze(-1))
        assert torch.allclose(model(x), expected, atol=1e-5)  # the class token is what is classified


def test_a_network_file_exports_with_its_input(tmp_path):
    from nas.archjson import read_arch
    from nas.export import export_from

    paths = export_from(ZOO / "resnet20.yaml", tmp_path / "out", latency_repeats=2)
    spec, shape, classes, _ = read_arch(tmp_path / "out")
    assert (shape, classes) == ((3, 32, 32), 10) and spec == read_network(ZOO / "resnet20.yaml")[0]
    assert paths["onnx_max_abs_diff"] <= 1e-4


class ReferenceBlock(nn.Module):
    """He et al.'s CIFAR basic block with the option-A shortcut, written out independently of nas."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = (c_out - c_in) // 2
        self.stride = stride

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class ReferenceResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c_in = [], 16
        for width in (16, 32, 64):
            for i in range(3):
                blocks.append(ReferenceBlock(c_in, width, 2 if i == 0 and width != 16 else 1))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


def test_resnet20_computes_what_an_independent_resnet20_computes():
    torch.manual_seed(0)
    ours = build(str(ZOO / "resnet20.yaml"))
    reference = ReferenceResNet20()
    ours_state, ref_state = ours.state_dict(), reference.state_dict()
    assert [v.shape for v in ours_state.values()] == [v.shape for v in ref_state.values()]
    reference.load_state_dict(dict(zip(ref_state, ours_state.values())))
    x = torch.randn(4, 3, 32, 32)
    ours.train(), reference.train()
    assert torch.allclose(ours(x), reference(x), atol=1e-5)  # batch statistics
    ours.eval(), reference.eval()
    assert torch.allclose(ours(x), reference(x), atol=1e-5)


# -- the grammar features, refused where they cannot apply --------------------------------------------------------

def stage(**kw):
    return {"depth": 1, "width": 8, "mixer": {"type": "conv"}, **kw}


def spec_of(*stages, **top):
    return {"input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3}, "stages": list(stages), **top}


@pytest.mark.parametrize("data, key, words", [
    (spec_of(stage(downsample="stride", mixer={"type": "attention", "options": {"heads": 2}})), "downsample",
     "needs a mixer that can stride"),
    (spec_of(stage(downsample="stride", skip="dense", growth_rate=4)), "downsample", "not for a dense stage"),
    (spec_of(stage(skip="preact", post_act=True)), "post_act", "not for skip preact"),
    (spec_of(stage(se_reduction=4, se_place="inner")), "se_place", "needs a block with expanded features"),
    (spec_of(stage(), head={"pool": "token"}), "head.pool", "needs a class token"),
    ({"input": "image", "stem": {"type": "patchify", "width": 8, "patch_size": 2, "class_token": True},
      "stages": [stage(), stage(downsample="conv")]}, "stages.1.downsample", "keeps its tokens"),
    ({"input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3, "class_token": True},
      "stages": [stage()]}, "stem", "only for stem type patchify"),
    (spec_of(stage(shortcut="sideways")), "shortcut", ""),
    ({"input": "image", "stem": {"type": "patchify", "width": 8, "patch_size": 2, "stride": 2},
      "stages": [stage()]}, "stem", "only for stem type conv"),
])
def test_bad_uses_are_one_line_spec_errors(data, key, words):
    with pytest.raises(SpecError) as info:
        ArchSpec.from_data(data)
    assert key in (info.value.key or "") and words in str(info.value) and "\n" not in str(info.value)


def test_zeropad_cannot_narrow():
    spec = ArchSpec.from_data(spec_of(stage(width=16), stage(width=8, shortcut="zeropad")))
    with pytest.raises(BuildError, match="zeropad cannot narrow 16 channels to 8"):
        build(spec, (3, 8, 8), 10)


def test_new_fields_at_their_defaults_keep_the_hash():
    plain = ArchSpec.from_data(spec_of(stage()))
    explicit = ArchSpec.from_data({**spec_of(stage(shortcut="projection", post_act=False)),
                                   "stem": {"type": "conv", "width": 8, "kernel_size": 3, "stride": 1, "pool": "none"},
                                   "head": {"conv_width": 0, "hidden": 0}})
    assert plain.hash() == explicit.hash()
    assert "shortcut" not in plain.canonical()["stages"][0] and "stride" not in plain.canonical()["stem"]
    changed = ArchSpec.from_data(spec_of(stage(post_act=True)))
    assert changed.hash() != plain.hash()


def test_a_space_offering_stride_with_a_mixer_that_cannot_stride_is_refused():
    text = """
name: s
input: image
stem: {type: conv, width: 8, kernel_size: 3}
cell:
  mixer: {conv: {}, attention: {heads: [2]}}
stages:
  - {width: 8, depth: 1, downsample: [none, stride]}
"""
    with pytest.raises(SpaceError) as info:
        Space.from_text(text, file="s.yaml")
    message = str(info.value)
    assert message.startswith("s.yaml:8:") and "downsample" in message and "attention" in message


@pytest.mark.parametrize("stem, head, stages, line, words", [
    ("{type: patchify, width: 8, patch_size: 2, class_token: [false, true]}", "{type: pool}",
     "[none, conv]", 4, "stage 1 may not downsample"),
    ("{type: patchify, width: 8, patch_size: 2, class_token: [false, true]}", "{pool: token}", "none", 9,
     "pool token needs a class token"),
])
def test_a_space_whose_class_token_cannot_hold_is_refused(stem, head, stages, line, words):
    text = f"""name: s
input: image
cell: {{mixer: {{transformer: {{heads: [2]}}}}}}
stem: {stem}
stages:
  - {{width: 8, depth: 1, downsample: {stages}}}
head: {head}
"""
    text = text.replace("head: {pool: token}", "head:\n  type: pool\n  pool: token")
    with pytest.raises(SpaceError) as info:
        Space.from_text(text, file="s.yaml")
    assert str(info.value).startswith(f"s.yaml:{line}:") and words in str(info.value)


@pytest.mark.parametrize("place, refused", [
    ("inner", True), ("{values: [output, inner], when: {mixer: [mbconv]}}", False), ("[output, inner]", True)])
def test_se_inside_is_refused_beside_a_mixer_without_expanded_features(place, refused):
    text = f"""name: s
input: image
stem: {{type: conv, width: 8, kernel_size: 3}}
cell:
  mixer: {{dwsep: {{}}, mbconv: {{}}}}
  se_reduction: [0, 4]
  se_place: {place}
stages:
  - {{width: 8, depth: 1}}
"""
    if not refused:
        space = Space.from_text(text, file="s.yaml")
        for seed in range(16):
            build(space.sample(seed), (3, 8, 8), 10)
        return
    with pytest.raises(SpaceError) as info:
        Space.from_text(text, file="s.yaml")
    assert str(info.value).startswith("s.yaml:7: cell.se_place:") and "dwsep" in str(info.value)


def test_se_inside_set_by_a_stage_is_refused_at_that_stage():
    text = """name: s
input: image
stem: {type: conv, width: 8, kernel_size: 3}
cell:
  mixer: {dwsep: {}}
  se_reduction: 4
stages:
  - {width: 8, depth: 1, cell: {se_place: inner}}
"""
    with pytest.raises(SpaceError) as info:
        Space.from_text(text, file="s.yaml")
    assert str(info.value).startswith("s.yaml:8: stages.0.cell.se_place:") and "dwsep" in str(info.value)


def test_a_space_samples_and_builds_the_new_choices():
    text = """
name: s
input: image
stem: {type: conv, width: 8, kernel_size: 3, stride: [1, 2], pool: [none, max], act: [relu6, none]}
cell:
  mixer: {conv: {}, mbconv: {expansion_ratio: [2]}}
  act: [relu, relu6]
  shortcut: [projection, zeropad, none]
  post_act: [false, true]
stages:
  - {width: 8, depth: 1, downsample: none}
  - {width: 16, depth: 2, downsample: [conv, stride]}
head: {conv_width: [0, 32], hidden: [0, 16]}
"""
    space = Space.from_text(text, file="s.yaml")
    seen = set()
    for seed in range(24):
        spec = space.sample(seed)
        seen.add((spec.stem.stride, spec.stem.pool, spec.stages[1].downsample, spec.stages[1].shortcut,
                  spec.stages[1].post_act, spec.head.conv_width))
        model = build(spec, (3, 16, 16), 10)
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
        assert space.contains(spec)
    assert {s[2] for s in seen} == {"conv", "stride"} and {s[3] for s in seen} == {"projection", "zeropad", "none"}


def test_a_network_file_with_an_unknown_key_names_file_line_and_key(tmp_path):
    text = (ZOO / "resnet20.yaml").read_text().replace("num_classes: 10", "num_clases: 10")
    bad = tmp_path / "net.yaml"
    bad.write_text(text)
    with pytest.raises(SpecError) as info:
        read_network(bad)
    line = text.splitlines().index("num_clases: 10") + 1
    assert str(info.value).startswith(f"{bad}:{line}: num_clases: unknown key")
    missing = tmp_path / "missing.yaml"
    missing.write_text((ZOO / "resnet20.yaml").read_text().replace("num_classes: 10\n", ""))
    with pytest.raises(SpecError, match="num_classes"):
        read_network(missing)


BASELINES = Path(__file__).resolve().parents[1] / "search_spaces" / "baselines"
ZOO_BASELINES = sorted(p.stem for p in BASELINES.glob("*.yaml") if p.stem in NETWORKS)


def test_the_mobile_space_holds_its_published_networks():
    assert set(ZOO_BASELINES) >= {"mobilenetv2", "mobilenetv3_large", "mobilenetv3_small", "efficientnet_b0"}
    assert {name for name, spec in Space.load(ZOO.parent / "mobile.yaml").baselines.items()} == {
        "mobilenetv2", "mobilenetv3_large", "mobilenetv3_small", "efficientnet_b0"}


@pytest.mark.parametrize("name", ZOO_BASELINES)
def test_a_baseline_named_after_a_zoo_network_is_that_network(name):
    """At width 1.0 and the zoo network's input, a baseline has the zoo network's layers in order, each with the same
    parameter shapes (only strides and the width multiplier may differ: its CIFAR stride plan); at its space's
    reference input it is feasible under the space's constraints."""
    from nas.evaluate.costs import network_costs

    spec = ArchSpec.load(BASELINES / f"{name}.yaml")
    zoo_spec, (shape, classes), _ = read_network(ZOO / f"{name}.yaml")
    full = build(spec.model_copy(update={"width_multiplier": 1.0}), shape, classes)
    published = build(zoo_spec, shape, classes)

    def leaves(model):  # an unstrided block keeps its shape and adds the identity (DropPath at rate 0)
        return [(type(m).__name__, tuple(tuple(p.shape) for p in m.parameters(recurse=False)))
                for m in model.modules() if not list(m.children()) and type(m).__name__ not in ("DropPath", "Identity")]

    assert leaves(full) == leaves(published)
    space = Space.load(ZOO.parent / f"{spec.space}.yaml")
    assert space.contains(spec)
    at, k = space.reference_input
    assert space.violations(network_costs(spec, at, k)) == []
    features = build(spec, at, k).forward_features(torch.randn(1, *at))
    assert features[-1].shape[-1] == at[-1] // 8  # three halvings at CIFAR size


def test_the_vision_space_holds_resnet20_and_the_convnext_and_deit_designs():
    """vision's baselines are its families' published designs at 32x32: ResNet-20 (option A) is the zoo's network,
    layer for layer; ConvNeXt-atto and the DeiT-Ti-style ViT have the zoo ConvNeXt-T's and DeiT-Ti's blocks, stem
    and head, layer for layer, at their own widths and depths."""

    def leaves(model, widths=False):
        return [(type(m).__name__, tuple(tuple(p.shape) for p in m.parameters(recurse=False)) if widths else ())
                for m in model.modules() if not list(m.children()) and type(m).__name__ not in ("DropPath", "Identity")]

    space = Space.load(ZOO.parent / "vision.yaml")
    families = {name: space.assignment(spec)["family"] for name, spec in space.baselines.items()}
    assert families == {"resnet": "resnet", "preact_resnet": "resnet", "convnext": "convnext", "vit": "vit"}
    resnet, (shape, classes), _ = read_network(ZOO / "resnet20.yaml")
    assert leaves(build(space.baselines["resnet"], shape, classes), True) == leaves(build(resnet, shape, classes), True)
    assert count_params(build(space.baselines["resnet"], shape, classes)) == 269_722

    convnext = build(space.baselines["convnext"], (3, 32, 32), 10).eval()
    tiny = build(str(ZOO / "convnext_tiny.yaml")).eval()
    assert [len(s) for s in convnext.stages] == [2, 3, 7, 3]  # 2, 2, 6, 2 blocks; a downsample opens stages 2-4
    assert [s[-1].mixer.depthwise.out_channels for s in convnext.stages] == [40, 80, 160, 320]
    assert kinds(convnext.stem) == kinds(tiny.stem) and kinds(convnext.head) == kinds(tiny.head)
    for ours, theirs in ((convnext.stages[1][0], tiny.stages[1][0]), (convnext.stages[1][1], tiny.stages[1][1])):
        assert leaves(ours) == leaves(theirs)  # the downsample, then a block

    vit = build(space.baselines["vit"], (3, 32, 32), 10).eval()
    deit = build(str(ZOO / "deit_tiny.yaml")).eval()
    assert vit.stem.class_token.shape == (1, 192, 1) and vit.stem.position.shape == (1, 192, 65)
    assert leaves(vit.stages[0][0], True) == leaves(deit.stages[0][0], True)  # DeiT-Ti's block, weights alike
    assert len(vit.stages[0]) == 6 and kinds(vit.head) == kinds(deit.head)
