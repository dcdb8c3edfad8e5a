"""nas.registry: the named registries every extension point uses."""
from __future__ import annotations

import pytest

from nas.errors import ConfigError, DataError
from nas.registry import Registry


def test_register_get_and_list():
    reg: Registry = Registry("widget")

    @reg.register("alpha")
    def alpha():
        return 1

    reg.register("beta", len)
    assert reg.get("alpha") is alpha and reg.get("beta") is len
    assert reg.names() == ["alpha", "beta"] and "alpha" in reg and len(reg) == 2 and list(reg) == ["alpha", "beta"]


def test_unknown_name_is_one_line_listing_known_names_with_a_close_match():
    reg: Registry = Registry("dataset", error=DataError)
    reg.register("digits", object())
    reg.register("mnist", object())
    with pytest.raises(DataError) as info:
        reg.get("digts")
    message = str(info.value)
    assert "\n" not in message and message.startswith("dataset: unknown dataset 'digts'")
    assert "known: digits, mnist" in message and "did you mean 'digits'?" in message


def test_second_registration_is_refused_unless_replacing():
    reg: Registry = Registry("sampler")
    reg.register("tpe", min)
    reg.register("tpe", min)  # the same entry again (a module imported twice) is harmless
    with pytest.raises(TypeError, match="registered twice"):
        reg.register("tpe", max)
    reg.register("tpe", max, replace=True)
    assert reg.get("tpe") is max
    with pytest.raises(TypeError):
        reg.register("", max)


def test_unregister_and_snapshot_restore():
    reg: Registry = Registry("format")
    reg.register("onnx", 1)
    saved = reg.snapshot()
    reg.register("tflite", 2)
    assert reg.unregister("tflite") == 2 and reg.names() == ["onnx"]
    with pytest.raises(ConfigError, match="unknown format 'tflite'"):
        reg.unregister("tflite")
    reg.register("coreml", 3)
    reg.restore(saved)
    assert reg.names() == ["onnx"]


def test_mapping_access_for_code_that_reads_a_registry_as_a_dict():
    reg: Registry = Registry("proxy")
    reg.register("naswot", min)
    assert reg["naswot"] is min
    reg["naswot"] = max  # a stand-in replaces on purpose
    assert reg.get("naswot") is max
    del reg["naswot"]
    assert "naswot" not in reg
    with pytest.raises(KeyError):
        reg["naswot"]
