"""Full training of an export: interruption and resume, the final test accuracy on the card, refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nas.errors import BudgetError, ExportError
from nas.export import CARD_FILE, ONNX_FILE, WEIGHTS_FILE, export_model, load, read_metrics
from nas.fulltrain import CHECKPOINT_DIR, train_full
from nas.spec import ArchSpec

SHAPE = (1, 8, 8)  # digits
# A small CNN that gets well above chance on digits in a few hundred steps (about 0.1 s per epoch on one core).
SPEC = ArchSpec.from_data({"input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3},
                           "stages": [{"depth": 1, "width": 16, "mixer": {"type": "dwsep"}}]})
OTHER = ArchSpec.from_data({"input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3},
                            "stages": [{"depth": 1, "width": 8, "mixer": {"type": "conv"}}]})
TRAIN = {"dataset": "digits", "epochs": 3, "batch_size": 32, "lr": 1e-2, "seed": 0}


def export(folder: Path, spec: ArchSpec = SPEC, **kwargs) -> Path:
    export_model(spec, folder, input_shape=SHAPE, num_classes=10, latency_repeats=2,
                 metrics={"accuracy": 0.5}, source={"run": "demo", "trial": 3, "dataset": "digits"}, **kwargs)
    return folder


def test_interrupted_training_resumes_and_finishes(tmp_path):
    folder = export(tmp_path / "a")
    lines: list[str] = []
    first = train_full(folder, **TRAIN, max_epochs_this_call=1, log=lines.append)
    assert first["status"] == "paused" and first["epochs_done"] == 1 and first["resumed_from"] is None
    assert len(first["curve"]) == 1 and "test_accuracy" not in first
    checkpoint = folder / CHECKPOINT_DIR
    latest = json.loads((checkpoint / "latest.json").read_text())
    assert latest["epoch"] == 1 and latest["hash"] == SPEC.hash()
    state = torch.load(checkpoint / latest["state"], weights_only=True)  # tensors, dicts and numbers only
    assert state["epoch"] == 1 and state["steps"] > 0 and "optimizer" in state and "generator" in state["rng"]
    assert load_file(str(checkpoint / latest["weights"]))
    assert not (folder / WEIGHTS_FILE).exists()  # nothing final yet

    second = train_full(folder, **TRAIN, log=lines.append)
    assert second["status"] == "done" and second["resumed_from"] == 1 and second["epochs_done"] == 3
    assert [point["epoch"] for point in second["curve"]] == [1, 2, 3]
    assert second["curve"][0] == first["curve"][0]
    assert any("resumed from the checkpoint of epoch 1/3" in line for line in lines)
    assert lines[0] == "loading digits ..." and lines[1].startswith("data: ") and " epochs of " in lines[1]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 3 and all(" s this epoch, " in line and " in all, ETA " in line for line in epochs)
    assert epochs[-1].endswith("ETA 0:00)")
    assert second["test_accuracy"] > 0.2  # 10 classes: chance is 0.1
    assert second["export_error"] is None

    record = read_metrics(folder)
    assert record["metrics"]["test_accuracy"] == second["test_accuracy"]
    low, high = record["metrics"]["test_accuracy_95ci"]  # Wilson, on the test split's size
    assert low < second["test_accuracy"] < high and high - low < 0.2
    assert any(f"95% interval {low:.4f}-{high:.4f}" in line for line in lines)
    assert record["metrics"]["accuracy"] == 0.5 and record["source"]["trial"] == 3  # kept from the export
    assert record["weights"]["trained"] is True and record["preprocessing"]["dataset"] == "digits"
    card = (folder / CARD_FILE).read_text()
    assert "test accuracy" in card and f"{second['test_accuracy']:.4f}" in card and "epochs=3" in card

    # the final weights are in the folder, loadable, and in the re-exported ONNX file
    model = load(folder)
    import onnxruntime as ort

    x = torch.randn(4, *SHAPE)
    session = ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert (torch.from_numpy(session.run(None, {"input": x.numpy()})[0]) - model(x)).abs().max() <= 1e-4

    # the same training without the interruption ends with the same weights (CPU, same seed)
    reference = train_full(export(tmp_path / "b"), **TRAIN, reexport=False)
    assert reference["curve"] == [dict(p, wall_s=q["wall_s"]) for p, q in zip(second["curve"], reference["curve"])]
    a, b = load_file(str(folder / WEIGHTS_FILE)), load_file(str(tmp_path / "b" / WEIGHTS_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert reference["test_accuracy"] == second["test_accuracy"]

    # a finished checkpoint: calling again trains nothing more
    again = train_full(folder, **TRAIN, reexport=False)
    assert again["resumed_from"] == 3 and again["test_accuracy"] == second["test_accuracy"]


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    folder = export(tmp_path / "a")
    train_full(folder, **TRAIN, max_epochs_this_call=1)
    export(folder, OTHER, formats=())  # another architecture exported into the same folder
    with pytest.raises(ExportError, match=rf"latest.json: hash: the checkpoint is of another architecture "
                                          rf"\({SPEC.hash()}; arch.json is {OTHER.hash()}\)"):
        train_full(folder, **TRAIN)
    result = train_full(folder, **TRAIN, max_epochs_this_call=1, restart=True)
    assert result["resumed_from"] is None and result["epochs_done"] == 1


def test_checkpoint_with_other_settings_is_refused(tmp_path):
    folder = export(tmp_path / "a", formats=())
    train_full(folder, **TRAIN, max_epochs_this_call=1)
    with pytest.raises(ExportError, match=r"epochs: the checkpoint was made with epochs=3, this call asks for 5"):
        train_full(folder, **{**TRAIN, "epochs": 5})


def test_tampered_checkpoint_weights_are_refused(tmp_path):
    from safetensors.torch import save_file

    folder = export(tmp_path / "a", formats=())
    train_full(folder, **TRAIN, max_epochs_this_call=1)
    latest = json.loads((folder / CHECKPOINT_DIR / "latest.json").read_text())
    weights = folder / CHECKPOINT_DIR / latest["weights"]
    state = load_file(str(weights))
    save_file({k: v for k, v in state.items() if not k.startswith("head.")}, str(weights),
              metadata={"spec_hash": SPEC.hash()})
    with pytest.raises(ExportError, match=r"epoch-0001.safetensors: head.fc.weight: missing tensor"):
        train_full(folder, **TRAIN)


def test_dataset_must_fit_the_architecture(tmp_path):
    folder = export(tmp_path / "a", formats=())
    with pytest.raises(ExportError, match=r"dataset: the architecture is for image input but dataset 'digits:rows' "
                                          r"is sequence data"):
        train_full(folder, **{**TRAIN, "dataset": "digits:rows"})
    export_model(SPEC, tmp_path / "b", input_shape=SHAPE, num_classes=3, latency_repeats=0, formats=())
    with pytest.raises(ExportError, match=r"num_classes: the architecture was exported for 3 classes"):
        train_full(tmp_path / "b", **TRAIN)
    with pytest.raises(BudgetError, match=r"epochs: epochs=0 must be an integer >= 1"):
        train_full(folder, **{**TRAIN, "epochs": 0})
    with pytest.raises(ExportError, match=r"not an export folder"):
        train_full(tmp_path, **TRAIN)


@pytest.mark.parametrize("reexport", [True, False])
def test_the_cli_names_the_folder_and_the_files_it_wrote(reexport, tmp_path, capsys):
    """`nas train DIR/arch.json` said 'weights, ONNX and MODEL.md in DIR/arch.json', and said ONNX under
    --no-reexport too, which removes model.onnx."""
    from nas import cli

    folder = export(tmp_path / "a")
    args = ["train", str(folder / "arch.json"), "--dataset", "digits", "--epochs", "1", "--train-subset", "200"]
    assert cli.main(args + ([] if reexport else ["--no-reexport"])) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    files = "weights, ONNX, TorchScript and MODEL.md" if reexport else "weights and MODEL.md"
    assert last.startswith("done: test accuracy ") and last.endswith(f"; {files} in {folder}"), last
    assert (folder / ONNX_FILE).exists() == reexport


def test_when_the_onnx_re_export_fails_the_cli_still_names_the_torchscript_file(tmp_path, capsys, monkeypatch):
    from nas import cli
    from nas.export import graph as export_module

    folder = export(tmp_path / "a")
    monkeypatch.setattr(export_module, "_onnx_diff", lambda *a: (0.5, 1.0))  # the ONNX check fails; TorchScript is kept
    assert cli.main(["train", str(folder), "--dataset", "digits", "--epochs", "1", "--train-subset", "200"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith(f"; weights, TorchScript and MODEL.md in {folder}"), out[-1]
    assert (folder / "model.ts").is_file() and not (folder / ONNX_FILE).exists()
