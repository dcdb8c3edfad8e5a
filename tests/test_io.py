"""nas.io.read_text: every way a user file cannot be read is one NasError naming the file (and line)."""
from __future__ import annotations

import pytest

from nas.errors import ConfigError, NasError, SpaceError, SpecError
from nas.io import read_text


@pytest.mark.parametrize("error", [NasError, SpaceError, SpecError, ConfigError])
def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path, error):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: x\ninput: image\nstem: \xff\xfe\n")
    with pytest.raises(error) as info:
        read_text(path, error=error, what="space file", key="space")
    e = info.value
    assert type(e) is error
    assert (e.file, e.line, e.key) == (str(path), 3, "space")
    assert e.one_line() == (f"{path}:3: space: cannot read space file: not UTF-8 text (byte 0xff at offset 27); "
                            "save it as UTF-8")


@pytest.mark.parametrize("make, why", [
    (lambda p: p.mkdir(), "Is a directory"),
    (lambda p: None, "No such file or directory"),
])
def test_a_folder_or_a_missing_file(tmp_path, make, why):
    path = tmp_path / "x.yaml"
    make(path)
    with pytest.raises(SpecError) as info:
        read_text(path, error=SpecError, what="spec")
    assert info.value.one_line() == f"{path}: cannot read spec: {why}"


def test_text_comes_back_with_universal_newlines(tmp_path):
    path = tmp_path / "crlf.yaml"
    path.write_bytes("a: 1\r\nb: é\rc: 3\n".encode())
    assert read_text(path) == "a: 1\nb: é\nc: 3\n" == path.read_text()
